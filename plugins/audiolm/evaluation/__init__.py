"""``soundstage eval RUN_DIR``: figures of a finished run (codec, LMs, semantic tokens, continuations).

``evaluate_run(run_dir, EvalConfig(...))`` (``evaluate.py``) writes ``RUN_DIR/eval/eval.json`` and
``report.html``. Nothing is imported here, so the CLI can add the ``eval`` verb without torch.
"""
