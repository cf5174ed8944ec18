"""``soundstage eval RUN_DIR``: figures of a finished run (codec, LMs, semantic tokens, continuations).

``evaluate_run(run_dir, EvalConfig(...))`` writes ``RUN_DIR/eval/eval.json`` and ``report.html``.
"""
from .evaluate import EvalConfig, evaluate_run

__all__ = ["EvalConfig", "evaluate_run"]
