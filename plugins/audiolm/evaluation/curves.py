"""Training curves for the report: every stage's scalars read back from its TensorBoard events and
drawn as inline SVG line charts (vector, no plotting dependency, one file with the report)."""
from __future__ import annotations

import html
import math
from pathlib import Path

MAX_CHARTS_PER_STAGE = 8
SKIP = ("lr-", "epoch", "hp_metric")


def read_scalars(tb_dir: str | Path) -> dict[str, list[tuple[int, float, float]]]:
    """Tag -> [(step, value, minutes since the stage's first event)] of every scalar in a TensorBoard log
    folder (empty when there is none); minutes are wall-clock time, so they include any pause or resume."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    tb_dir = Path(tb_dir)
    if not tb_dir.is_dir() or not any(tb_dir.rglob("events.out.tfevents.*")):
        return {}
    acc = EventAccumulator(str(tb_dir), size_guidance={"scalars": 0})
    acc.Reload()
    events = {tag: acc.Scalars(tag) for tag in acc.Tags().get("scalars", [])}
    starts = [e.wall_time for es in events.values() for e in es[:1]]
    t0 = min(starts) if starts else 0.0
    out = {}
    for tag, es in events.items():
        points = [(int(e.step), float(e.value), (e.wall_time - t0) / 60) for e in es if math.isfinite(e.value)]
        if points:
            out[tag] = points
    return out


def chart_tags(scalars: dict[str, list[tuple[int, float, float]]]) -> list[str]:
    """The tags worth a chart: validation first, then training; per-level and bookkeeping tags left out."""
    tags = [t for t in scalars if not any(t.startswith(s) for s in SKIP) and "/level" not in t]
    return sorted(tags, key=lambda t: (not t.startswith("val"), t))[:MAX_CHARTS_PER_STAGE]


def svg_chart(title: str, points: list[tuple[int, float, float]], width: int = 800, height: int = 200) -> str:
    """A line chart of (step, value, minutes) points with min/max labels on both axes (log y when the values
    span 100x); the x labels give the step and the wall-clock minutes."""
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    m0, m1 = points[0][2], points[-1][2]
    log_y = min(ys) > 0 and max(ys) / min(ys) > 100
    ty = [math.log10(y) for y in ys] if log_y else ys
    x0, x1 = min(xs), max(xs) if max(xs) > min(xs) else min(xs) + 1
    y0, y1 = min(ty), max(ty) if max(ty) > min(ty) else min(ty) + 1
    left, right, top, bottom = 60, 10, 24, 22
    w, h = width - left - right, height - top - bottom

    def sx(x: float) -> float:
        return left + (x - x0) / (x1 - x0) * w

    def sy(y: float) -> float:
        return top + (1 - (y - y0) / (y1 - y0)) * h

    line = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in zip(xs, ty))
    fmt = (lambda v: f"{10 ** v:.3g}") if log_y else (lambda v: f"{v:.3g}")
    esc = html.escape(title + (" (log scale)" if log_y else ""))
    return (
        f"<svg xmlns='http://www.w3.org/2000/svg' width='{width}' height='{height}' role='img' aria-label='{esc}'>"
        f"<rect x='{left}' y='{top}' width='{w}' height='{h}' fill='#fafafa' stroke='#ccc'/>"
        f"<text x='{left}' y='16' font-size='13' font-family='sans-serif'>{esc}</text>"
        f"<polyline fill='none' stroke='#1f77b4' stroke-width='1.5' points='{line}'/>"
        f"<text x='{left - 4}' y='{top + 10}' font-size='11' text-anchor='end' font-family='monospace'>{fmt(y1)}</text>"
        f"<text x='{left - 4}' y='{top + h}' font-size='11' text-anchor='end' font-family='monospace'>{fmt(y0)}</text>"
        f"<text x='{left}' y='{height - 6}' font-size='11' font-family='monospace'>step {x0} ({m0:.0f} min)</text>"
        f"<text x='{left + w}' y='{height - 6}' font-size='11' text-anchor='end' font-family='monospace'>step {x1} ({m1:.0f} min)</text>"
        "</svg>"
    )


def stage_curves(run_dir: str | Path, stages: list[str]) -> dict[str, dict[str, list[tuple[int, float, float]]]]:
    """Stage -> the scalars worth a chart, for the stages of a run that logged any."""
    out = {}
    for stage in stages:
        scalars = read_scalars(Path(run_dir) / stage / "tb")
        tags = chart_tags(scalars)
        if tags:
            out[stage] = {t: scalars[t] for t in tags}
    return out
