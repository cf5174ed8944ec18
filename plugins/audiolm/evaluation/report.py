"""``report.html``: the diagnosis, AudioLM's table with its floors and ceilings, the other figures,
every stage's training curves (inline SVG) and the clips (audio players, wide spectrograms).
Media files sit beside the report and are linked relatively."""
from __future__ import annotations

import html
import math
from pathlib import Path
from typing import Any

from .curves import svg_chart
from .protocol import ROWS

STYLE = """body{font-family:sans-serif;max-width:1200px;margin:2em auto;color:#222}
table{border-collapse:collapse;margin:.5em 0 1.5em}td,th{border:1px solid #ccc;padding:3px 8px;text-align:left}
th{background:#f3f3f3}td.num{text-align:right;font-family:monospace}.note{color:#666;font-size:90%}
.pass{color:#176a1d;font-weight:bold}.fail{color:#b00020;font-weight:bold}.na{color:#888}
img.spec{width:100%;min-width:800px;height:auto;image-rendering:pixelated}audio{width:190px}"""

ROW_TITLES = {
    "original": "original audio (floor for PER, ceiling for voice)",
    "codec": "codec reconstruction",
    "resynthesis": "resynthesis from the semantic tokens, no acoustic prompt",
    "resynthesis_prompted": "resynthesis with the 3 s acoustic prompt (generated part)",
    "continuation": "continuation of the prompt (generated part)",
}
OTHER_SECTIONS = (
    ("lm", "LM validation (token shards)"),
    ("codec", "Codec signal figures (held-out audio)"),
    ("semantic_tokens", "Semantic tokens vs. phonemes"),
    ("measuring_models", "Measuring models (trained on the training voices, cached per corpus)"),
)


def _fmt(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return "nan" if math.isnan(value) else f"{value:.3g}"
    return html.escape(str(value))


def flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested figures as one level: ``{"codec": {"per": 0.3}}`` -> ``{"codec.per": 0.3}``."""
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def _table(d: dict[str, Any]) -> str:
    rows = "".join(f"<tr><td>{html.escape(k)}</td><td class='num'>{_fmt(v)}</td></tr>" for k, v in flatten(d).items())
    return f"<table><tr><th>figure</th><th>value</th></tr>{rows}</table>"


def _meaning(check: dict[str, Any]) -> str:
    if check.get("not_judged"):
        return "not judged: " + check["not_judged"]
    noise = ""
    if check.get("resolved") is False:
        low, high = check["margin_interval"]
        noise = (f"Within what these clips resolve: the 95% interval of the margin to the target, {low:+.3f} to "
                 f"{high:+.3f}, spans it; more clips (--num-clips) would settle it. ")
    return noise + (check["if_failed"] if check["passed"] is False else "")


def _diagnosis(checks: list[dict[str, Any]]) -> str:
    if not checks:
        return ""
    cells = []
    for c in checks:
        verdict = {True: "<span class='pass'>pass</span>", False: "<span class='fail'>FAIL</span>"}.get(
            c["passed"], "<span class='na'>not judged</span>" if c.get("not_judged") else "<span class='na'>not measured</span>")
        if c["passed"] is not None and c.get("resolved") is False:
            verdict += " <span class='na'>(within noise)</span>"
        cells.append(f"<tr><td>{verdict}</td><td>{html.escape(c['check'])}</td><td class='num'>{_fmt(c['value'])}</td>"
                     f"<td class='num'>{_fmt(c['target'])}</td><td>{html.escape(c['stage'])}</td>"
                     f"<td class='note'>{html.escape(_meaning(c))}</td></tr>")
    return ("<h2>Diagnosis: which stage learns, which does not</h2><table><tr><th></th><th>check</th><th>value</th>"
            "<th>target</th><th>stage</th><th>what it means</th></tr>" + "".join(cells) + "</table>")


def _protocol_table(protocol: dict[str, Any]) -> str:
    rows, refs, spans = protocol.get("rows", {}), protocol.get("references", {}), protocol.get("intervals", {})

    def cell(row: str, figure: str) -> str:
        span = spans.get(row, {}).get(figure)
        low_high = f"<br><span class='note'>{_fmt(span[0])}-{_fmt(span[1])}</span>" if span else ""
        return f"<td class='num'>{_fmt(rows.get(row, {}).get(figure))}{low_high}</td>"

    head = ("<tr><th>row</th><th>PER (whole clip)</th><th>PER (after the prompt)</th>"
            "<th>speaker similarity to the prompt</th><th>consistency (first vs last second)</th></tr>")
    body = "".join(f"<tr><td>{html.escape(ROW_TITLES[r])}</td>{cell(r, 'per')}{cell(r, 'per_after_prompt')}"
                   f"{cell(r, 'speaker_similarity')}{cell(r, 'consistency')}</tr>" for r in ROWS)
    plaus = protocol.get("semantic_plausibility", {})
    first = protocol.get("first_levels") or {}
    ceiling = (f" The codec's reconstruction from only its first {first['levels']} RVQ level(s), the ones the acoustic "
               f"generator makes first, reads at PER {_fmt(first.get('per'))}: the content ceiling of that step."
               if first.get("levels") else "")
    if first.get("teacher_forced_per") is not None:
        accuracy = " / ".join(_fmt(a) for a in first.get("teacher_forced_accuracy", []))
        ceiling += (f" The coarse LM's most likely codes given the true ones before each (accuracy per level {accuracy}) "
                    f"read at PER {_fmt(first['teacher_forced_per'])}: what is left between that and resynthesis "
                    "is what generating from its own samples costs.")
    if first.get("generated_coarse_per") is not None:
        ceiling += (f" The resynthesis's own generated codes decoded from those {first['levels']} levels alone (the fine "
                    f"LM's dropped) read at PER {_fmt(first['generated_coarse_per'])}: above the resynthesis row, the fine "
                    "levels add content; below it, they add noise.")
    return (
        f"<h2>AudioLM's table ({protocol.get('clips')} held-out clips of {_fmt(protocol.get('clip_seconds'))} s, "
        f"{_fmt(protocol.get('prompt_seconds'))} s prompts)</h2><table>{head}{body}</table>"
        f"<p class='note'>Under each figure, its 95% interval over resamples of the clips (bootstrap): how far it "
        f"could move with other clips and sampling draws. Speaker similarity references: same speaker (real audio after the prompt) "
        f"{_fmt(refs.get('same_speaker'))}, different speaker {_fmt(refs.get('different_speaker'))}. PER references: the "
        f"original {_fmt(rows.get('original', {}).get('per'))} (floor), each transcript scored against another clip's "
        f"phones {_fmt(refs.get('per_mismatched_transcripts'))} (chance). Semantic-LM perplexity of the continuations "
        f"{_fmt(plaus.get('continuation_ppl'))} vs of the real audio after the same prompts {_fmt(plaus.get('real_ppl'))} "
        f"(ratio {_fmt(plaus.get('ratio'))}).{html.escape(ceiling)}</p>"
    )


def _curves(curves: dict[str, dict[str, list[tuple[int, float, float]]]]) -> str:
    if not curves:
        return ""
    parts = ["<h2>Training curves (from each stage's TensorBoard events)</h2>"]
    for stage, tags in curves.items():
        parts.append(f"<h3>{html.escape(stage)}</h3>")
        parts.extend(svg_chart(tag, points) for tag, points in tags.items())
    return "".join(parts)


def _clip(entry: dict[str, Any]) -> str:
    players = "".join(
        f"<td>{html.escape(r)}<br><audio controls preload='none' src='{html.escape(entry['wavs'][r])}'></audio></td>" for r in ROWS)
    return (f"<h3>{html.escape(entry['key'])} <span class='note'>voice {html.escape(entry['voice'])}</span></h3>"
            f"<table><tr>{players}</tr></table><p class='note'>spectrogram, top to bottom: {', '.join(ROWS)}</p>"
            f"<img class='spec' src='{html.escape(entry['spectrogram'])}' alt='mel spectrograms of {html.escape(entry['key'])}'>")


def _words_table(words: dict[str, Any]) -> str:
    rows = words.get("rows", {})
    body = "".join(f"<tr><td>{html.escape(ROW_TITLES.get(r, r))}</td><td class='num'>{_fmt(v.get('wer'))}</td></tr>"
                   for r, v in rows.items())
    example = words.get("example") or {}
    heard = "".join(f"<li>{html.escape(k)}: {html.escape(str(v))}</li>" for k, v in example.items())
    return (f"<h2>Word error rate (pocketsphinx, {words.get('utterances')} whole English utterances, "
            f"{words.get('reference_words')} words)</h2><table><tr><th>row</th><th>WER</th></tr>{body}</table>"
            f"<p class='note'>A recognizer trained on real speech: the original's WER is the floor (near 0.9 on "
            f"the espeak-ng corpus, about 0.3 on the natural-voice one). First utterance as heard:</p><ul>{heard}</ul>")


def write_report(path: Path, figures: dict[str, Any], clips: list[dict[str, Any]],
                 curves: dict[str, dict[str, list[tuple[int, float, float]]]] | None = None) -> Path:
    """Write the HTML report; ``clips`` name their media files relative to ``path``'s folder."""
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>soundstage eval</title><style>{STYLE}</style></head><body>",
             f"<h1>Evaluation of {html.escape(str(figures.get('run_dir', '')))}</h1>"]
    if figures.get("description"):
        parts.append(f"<p>Recipe <b>{html.escape(str(figures.get('recipe')))}</b>: {html.escape(str(figures['description']))}</p>")
    for note in figures.get("notes", []):
        parts.append(f"<p class='note'>{html.escape(note)}</p>")
    parts.append(_diagnosis(figures.get("diagnosis", [])))
    if figures.get("protocol"):
        parts.append(_protocol_table(figures["protocol"]))
    if figures.get("words"):
        parts.append(_words_table(figures["words"]))
    for key, title in OTHER_SECTIONS:
        if key in figures:
            parts.append(f"<h2>{html.escape(title)}</h2>{_table(figures[key])}")
    parts.append(_curves(curves or {}))
    if clips:
        parts.append("<h2>Clips</h2>")
        parts.extend(_clip(c) for c in clips)
    parts.append("</body></html>")
    path.write_text("\n".join(parts))
    return path
