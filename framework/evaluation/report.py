"""``report.html``: the figures of ``eval.json`` as tables, then each prompt with its continuation
(audio players and spectrograms; media files sit beside the report and are linked relatively)."""
from __future__ import annotations

import html
import math
from pathlib import Path
from typing import Any

STYLE = """body{font-family:sans-serif;max-width:1100px;margin:2em auto;color:#222}
table{border-collapse:collapse;margin:.5em 0 1.5em}td,th{border:1px solid #ccc;padding:3px 8px;text-align:left}
th{background:#f3f3f3}td.num{text-align:right;font-family:monospace}.note{color:#666;font-size:90%}
img{width:100%;max-width:900px;height:240px;image-rendering:pixelated}"""

SECTIONS = (
    ("codec", "Codec reconstruction (held-out audio)"),
    ("lm", "LM validation (token shards)"),
    ("semantic_tokens", "Semantic tokens vs. phonemes"),
    ("voice_classifier", "Voice classifier (training voices, held-out utterances)"),
    ("continuation", "Continuations"),
)


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return "nan" if math.isnan(value) else f"{value:.4g}"
    return html.escape(str(value))


def _flatten(d: dict[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    rows = []
    for k, v in d.items():
        if isinstance(v, dict):
            rows.extend(_flatten(v, f"{prefix}{k}."))
        else:
            rows.append((f"{prefix}{k}", v))
    return rows


def _table(d: dict[str, Any]) -> str:
    rows = "".join(
        f"<tr><td>{html.escape(k)}</td><td class='num'>{_fmt(v)}</td></tr>" for k, v in _flatten(d)
    )
    return f"<table><tr><th>figure</th><th>value</th></tr>{rows}</table>"


def _example(ex: dict[str, Any]) -> str:
    def player(name: str | None) -> str:
        return f"<audio controls preload='none' src='{html.escape(name)}'></audio>" if name else ""

    voice = ""
    if ex.get("voice"):
        voice = (f"voice <b>{html.escape(ex['voice'])}</b>; continuation classified as "
                 f"<b>{html.escape(str(ex.get('predicted_voice')))}</b>, real audio as "
                 f"<b>{html.escape(str(ex.get('real_predicted_voice')))}</b>")
    return (
        f"<h3>{html.escape(ex['key'])}</h3><p class='note'>{voice}</p>"
        f"<table><tr><th>prompt</th><th>continuation (generated)</th><th>real audio after the prompt</th></tr>"
        f"<tr><td>{player(ex['prompt_wav'])}</td><td>{player(ex['continuation_wav'])}</td><td>{player(ex.get('real_wav'))}</td></tr></table>"
        f"<p class='note'>spectrogram, top to bottom: prompt, continuation, real audio</p>"
        f"<img src='{html.escape(ex['spectrogram'])}' alt='mel spectrogram of {html.escape(ex['key'])}'>"
    )


def write_report(path: Path, figures: dict[str, Any], examples: list[dict[str, Any]]) -> Path:
    """Write the HTML report; ``examples`` name their media files relative to ``path``'s folder."""
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>soundstage eval</title><style>{STYLE}</style></head><body>",
             f"<h1>Evaluation of {html.escape(str(figures.get('run_dir', '')))}</h1>"]
    for note in figures.get("notes", []):
        parts.append(f"<p class='note'>{html.escape(note)}</p>")
    for key, title in SECTIONS:
        if key in figures:
            parts.append(f"<h2>{html.escape(title)}</h2>{_table(figures[key])}")
    if examples:
        parts.append("<h2>Prompts and continuations</h2>")
        parts.extend(_example(ex) for ex in examples)
    parts.append("</body></html>")
    path.write_text("\n".join(parts))
    return path
