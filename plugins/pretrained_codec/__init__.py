"""Published codecs from local ``transformers`` checkpoints, used as is (``pretrained_codec``, ``mimi_semantic``).

EnCodec, DAC and Mimi fill the codec role under the same token contract as the trained
``soundstream``; Mimi's first codebook can also fill the semantic-tokenizer role. ``transformers``
is imported only when a checkpoint is read (``pip install 'soundstage[ssl]'``); see
docs/pretrained_codecs.md.
"""
