"""The report's plots, drawn with matplotlib (the ``report`` extra) as inline SVG.

matplotlib is imported only here and only when a plot is drawn; without it the report says
which extra to install where the plots would have been. The object-oriented API (``Figure``)
is used, so no global pyplot state or GUI backend is touched.
"""

from __future__ import annotations

import io as _io

from sceneparser.errors import missing_extra
from sceneparser.evaluation.report.analysis import IOU_BINS, LEVELS

LEVEL_COLOURS = {"object": "#1f77b4", "part": "#ff7f0e", "affordance": "#2ca02c"}


def _figure(width: float, height: float):
    from matplotlib.figure import Figure  # optional dependency: the report extra

    fig = Figure(figsize=(width, height), dpi=100, layout="constrained")
    return fig


def _svg(fig) -> str:
    buf = _io.StringIO()
    fig.savefig(buf, format="svg")
    text = buf.getvalue()
    return text[text.index("<svg"):]  # drop the XML prologue and doctype: the SVG sits inline in HTML


def available() -> str | None:
    """None when plots can be drawn, else the message naming the extra to install."""
    try:
        import matplotlib  # noqa: F401
    except ImportError as exc:
        missing = missing_extra(exc)
        return str(missing) if missing else f"matplotlib cannot be imported: {exc}"
    return None


def iou_histograms(levels: dict) -> str:
    """Best same-name IoU of every ground-truth object and part (0 when nothing of its name was predicted)."""
    fig = _figure(8.0, 2.8)
    axes = fig.subplots(1, 2, sharey=False)
    edges = [i / IOU_BINS for i in range(IOU_BINS)]
    for ax, level in zip(axes, ("object", "part")):
        counts = levels[level].iou_hist
        ax.bar(edges, counts, width=1.0 / IOU_BINS, align="edge", color=LEVEL_COLOURS[level], edgecolor="white")
        ax.axvline(0.5, color="black", linestyle="--", linewidth=1)
        ax.axvline(0.1, color="grey", linestyle=":", linewidth=1)
        ax.set_xlim(0, 1)
        ax.set_title(f"{level}s: best IoU per ground truth (n={sum(counts)})", fontsize=10)
        ax.set_xlabel("IoU with the best same-name prediction")
        ax.set_ylabel("ground-truth items")
    return _svg(fig)


def error_bars(levels: dict, miss_types, extra_types) -> str:
    """Misses (left) and extra predictions (right) per level, stacked by error type."""
    fig = _figure(9.0, 2.4)
    axes = fig.subplots(1, 2)
    palette = ["#7f7f7f", "#bcbd22", "#ff7f0e", "#9467bd", "#d62728"]
    for ax, side, types in ((axes[0], "misses", miss_types), (axes[1], "extras", extra_types)):
        left = [0] * len(LEVELS)
        for t, colour in zip(types, palette[-len(types):]):
            vals = [getattr(levels[lv], side)[t] for lv in LEVELS]
            ax.barh(list(LEVELS), vals, left=left, color=colour, label=t)
            left = [a + b for a, b in zip(left, vals)]
        ax.invert_yaxis()
        ax.set_title("missed ground truth (fn)" if side == "misses" else "extra predictions (fp)", fontsize=10)
        ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5), frameon=False)
    return _svg(fig)


def calibration(pairs: list) -> str:
    """Share of correct predictions per confidence-score bin (objects), with the bin sizes."""
    fig = _figure(4.5, 2.8)
    ax = fig.subplots()
    bins = 10
    n = [0] * bins
    ok = [0] * bins
    for s, correct in pairs:
        b = min(bins - 1, max(0, int(s * bins)))
        n[b] += 1
        ok[b] += bool(correct)
    xs = [(b + 0.5) / bins for b in range(bins) if n[b]]
    ys = [ok[b] / n[b] for b in range(bins) if n[b]]
    ax.plot([0, 1], [0, 1], color="grey", linestyle=":", linewidth=1)
    ax.plot(xs, ys, marker="o", color=LEVEL_COLOURS["object"])
    for x, y, c in zip(xs, ys, [n[b] for b in range(bins) if n[b]]):
        ax.annotate(str(c), (x, y), textcoords="offset points", xytext=(0, 5), fontsize=7, ha="center")
    ax.set_xlim(0, 1)
    ax.set_ylim(-0.02, 1.05)
    ax.set_xlabel("confidence score")
    ax.set_ylabel("share matched (IoU >= 0.5)")
    ax.set_title(f"objects: score vs correctness (n={len(pairs)})", fontsize=10)
    return _svg(fig)
