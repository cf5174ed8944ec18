"""The natural-voice speech engine: Kokoro-82M (int8 ONNX, shipped on PyPI) reading espeak-ng's phonemes.

``model``: assemble, checksum and extend the ONNX graph (durations out, a pitch factor in);
``phonemes``: espeak-ng IPA -> Kokoro's symbols; ``voices``: the five styles and seeded blends;
``synth``: one utterance -> audio with phoneme timings. Needs the ``natural`` extra
(``pip install 'soundstage[natural]'``); nothing here imports it until a voice is synthesised.
"""
