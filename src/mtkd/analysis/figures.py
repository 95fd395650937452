"""The report's plots, each a function of plain data that returns PNG bytes.

Figures are built with `matplotlib.figure.Figure` (no pyplot, no global state, Agg
rendering) and constrained layout; any number of tasks, models and classes fits because
sizes grow with the data and long tick labels are rotated.
"""
from __future__ import annotations

import io
import math

import numpy as np
from matplotlib import colormaps
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch, Rectangle
from matplotlib.ticker import MaxNLocator

TYPE_COLORS = {"teacher": "#4c72b0", "baseline": "#8c8c8c", "single": "#dd8452", "multi": "#55a868"}
TYPE_LABELS = {"teacher": "teacher", "baseline": "baseline (no KD)", "single": "single-teacher KD",
               "multi": "multi-teacher KD"}
CATEGORY_COLORS = ["#c44e52", "#dd8452", "#8172b3"]


def _png(fig: Figure) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    return buf.getvalue()


def _palette(names: list[str]) -> dict[str, tuple]:
    cmap = colormaps["tab10" if len(names) <= 10 else "tab20"]
    return {n: cmap(i % cmap.N) for i, n in enumerate(names)}


def _grid(n: int, max_cols: int = 2) -> tuple[int, int]:
    cols = min(max_cols, max(n, 1))
    return math.ceil(max(n, 1) / cols), cols


def gap_analysis(tasks: list[dict]) -> bytes:
    """tasks: [{"task", "metric", "teacher", "baseline", "bars": [(method, type, value %, gap closed % or None)]}].
    Left panel per task: the metric of every model; right panel: gap closed by each student."""
    n_max = max([len(t["bars"]) for t in tasks] + [1])
    fig = Figure(figsize=(11, len(tasks) * (0.32 * n_max + 1.6)), layout="constrained")
    axes = fig.subplots(len(tasks), 2, squeeze=False, width_ratios=[3, 2])
    for (ax, ax_gap), t in zip(axes, tasks):
        names = [b[0] for b in t["bars"]][::-1]
        values = np.array([np.nan if b[2] is None else b[2] for b in t["bars"]][::-1], dtype=float)
        colors = [TYPE_COLORS[b[1]] for b in t["bars"]][::-1]
        y = np.arange(len(names))
        finite = values[np.isfinite(values)]
        lo = max(0.0, math.floor(finite.min() - 5)) if finite.size and finite.min() >= 0 else \
            (math.floor(finite.min() - 5) if finite.size else 0.0)
        hi = (finite.max() if finite.size else 100.0)
        ax.barh(y, values - lo, left=lo, color=colors)
        for yi, v in zip(y, values):
            if np.isfinite(v):
                ax.text(v, yi, f" {v:.2f}", va="center", fontsize=8)
        for ref, style in ((t["teacher"], "--"), (t["baseline"], ":")):
            if ref is not None:
                ax.axvline(ref, color="black", linestyle=style, linewidth=1)
        ax.set_xlim(lo, hi + (hi - lo) * 0.15 + 1)
        ax.set_yticks(y, names, fontsize=8)
        ax.set_xlabel(f"{t['metric']} on eval (%)")
        ax.set_title(f"{t['task']}: {t['metric']} per model (axis starts at {lo:g})", fontsize=10)
        students = [b for b in t["bars"] if b[1] in ("single", "multi")][::-1]
        gy = np.arange(len(students))
        gaps = np.array([np.nan if b[3] is None else b[3] for b in students], dtype=float)
        ax_gap.barh(gy, np.nan_to_num(gaps), color=[TYPE_COLORS[b[1]] for b in students])
        for yi, g in zip(gy, gaps):
            if not np.isfinite(g):
                ax_gap.text(0, yi, " n/a", va="center", fontsize=8)
            else:
                ax_gap.text(g, yi, f" {g:.0f}% " if g >= 0 else f"{g:.0f}% ", va="center", fontsize=8,
                            ha="left" if g >= 0 else "right")
        if not students:
            ax_gap.text(50, 0, "no KD students", ha="center", va="center", color="#555")
        ax_gap.axvline(0, color="black", linewidth=0.8)
        ax_gap.axvline(100, color="black", linestyle="--", linewidth=1)
        g_f = gaps[np.isfinite(gaps)]
        ax_gap.set_xlim(min(0.0, g_f.min() if g_f.size else 0.0) * 1.4 - 15, max(110.0, g_f.max() if g_f.size else 0.0) + 25)
        ax_gap.set_yticks(gy, [b[0] for b in students], fontsize=8)
        ax_gap.set_xlabel("gap closed (%)\n0 = baseline, 100 = best teacher (val-selected)")
        ax_gap.set_title(f"{t['task']}: teacher-baseline gap closed", fontsize=10)
    handles = [Patch(color=c, label=TYPE_LABELS[k]) for k, c in TYPE_COLORS.items()]
    handles += [Line2D([], [], color="black", linestyle="--", linewidth=1, label="best teacher (selected on validation) / 100% gap"),
                Line2D([], [], color="black", linestyle=":", linewidth=1, label="baseline")]
    fig.legend(handles=handles, loc="outside lower center", ncols=6, fontsize=8)
    return _png(fig)


def agreement_breakdown(tasks: list[dict], regions: list[str]) -> bytes:
    """tasks: [{"task", "shares": [% per region], "models": {student: [acc % per region]}}]."""
    students = list(dict.fromkeys(s for t in tasks for s in t["models"]))
    colors = _palette(students)
    rows, cols = _grid(len(tasks))
    fig = Figure(figsize=(6.5 * cols, 3.8 * rows + 0.6), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    for ax, t in zip(axes, tasks):
        names = list(t["models"])
        width = 0.8 / max(len(names), 1)
        x = np.arange(len(regions))
        for i, name in enumerate(names):
            acc = np.array(t["models"][name], dtype=float)
            ax.bar(x - 0.4 + width * (i + 0.5), np.nan_to_num(acc), width, color=colors[name], label=name)
        for xi, share in zip(x, t["shares"]):
            if share == 0:
                ax.text(xi, 50, "no examples", ha="center", va="center", fontsize=8, color="#555")
        ax.set_xticks(x, [f"{r}\n({s:.1f}% of examples)" for r, s in zip(regions, t["shares"])], fontsize=8)
        ax.set_ylim(0, 105)
        ax.set_ylabel("student accuracy (%)")
        ax.set_title(f"{t['task']}: accuracy by teacher agreement", fontsize=10)
    for ax in axes[len(tasks):]:
        ax.set_visible(False)
    _shared_legend(fig, students, colors)
    return _png(fig)


def failure_categories(tasks: list[dict], categories: list[str]) -> bytes:
    """tasks: [{"task", "n": examples, "models": {student: {category: count, ...}}}]."""
    rows, cols = _grid(len(tasks))
    n_max = max([len(t["models"]) for t in tasks] + [1])
    fig = Figure(figsize=(max(5.5, 0.55 * n_max + 2.5) * cols, 4.2 * rows + 0.5), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    for ax, t in zip(axes, tasks):
        names = list(t["models"])
        x = np.arange(len(names))
        bottom = np.zeros(len(names))
        for cat, color in zip(categories, CATEGORY_COLORS):
            h = np.array([100.0 * t["models"][n][cat] / max(t["n"], 1) for n in names])
            ax.bar(x, h, 0.7, bottom=bottom, color=color, label=cat)
            bottom += h
        for xi, b in zip(x, bottom):
            ax.text(xi, b, f"{b:.1f}", ha="center", va="bottom", fontsize=7)
        ax.set_xticks(x, names, rotation=35, ha="right", fontsize=8)
        ax.set_ylim(0, max(bottom.max() if len(bottom) else 1.0, 1.0) * 1.15)
        ax.set_ylabel("errors (% of eval examples)")
        ax.set_title(f"{t['task']}: causes of student errors", fontsize=10)
    for ax in axes[len(tasks):]:
        ax.set_visible(False)
    _shared_legend(fig, categories, dict(zip(categories, CATEGORY_COLORS)))
    return _png(fig)


def ranking_heatmap(methods: list[str], tasks: list[str], ranks: np.ndarray) -> bytes:
    """ranks float [methods, tasks], NaN where a student was not run; 1 = best."""
    fig = Figure(figsize=(max(4.5, 1.1 * len(tasks) + 3.5), max(2.5, 0.42 * len(methods) + 1.6)), layout="constrained")
    ax = fig.subplots()
    if ranks.size == 0:
        ax.text(0.5, 0.5, "no student was evaluated", ha="center", va="center")
        ax.set_axis_off()
        return _png(fig)
    finite = ranks[np.isfinite(ranks)]
    vmax = max(finite.max() if finite.size else 1.0, 2.0)
    im = ax.imshow(np.ma.masked_invalid(ranks), cmap="viridis_r", vmin=1, vmax=vmax, aspect="auto")
    for i in range(len(methods)):
        for j in range(len(tasks)):
            r = ranks[i, j]
            dark = np.isfinite(r) and (r - 1) / (vmax - 1) > 0.5
            ax.text(j, i, "-" if not np.isfinite(r) else f"{r:.0f}", ha="center", va="center",
                    fontsize=9, color="white" if dark else "black")
    ax.set_xticks(range(len(tasks)), tasks, rotation=30 if len(tasks) > 4 else 0, ha="right" if len(tasks) > 4 else "center")
    ax.set_yticks(range(len(methods)), methods, fontsize=8)
    ax.set_xlabel("task")
    ax.set_title("Rank of each student method per task (1 = best)", fontsize=10)
    bar = fig.colorbar(im, ax=ax, label="rank (1 = best)")
    bar.locator = MaxNLocator(integer=True)
    bar.update_ticks()
    return _png(fig)


def reliability(task: str, curves: list[dict]) -> bytes:
    """curves: [{"label", "count": int [B], "conf": [B], "acc": [B], "ece"}] (NaN in empty bins)."""
    fig = Figure(figsize=(6, 6.2), layout="constrained")
    ax, ax_n = fig.subplots(2, 1, height_ratios=[3, 1], sharex=True)
    ax.plot([0, 1], [0, 1], color="black", linestyle="--", linewidth=1, label="perfect calibration")
    colors = _palette([c["label"] for c in curves])
    for c in curves:
        keep = np.asarray(c["count"]) > 0
        ax.plot(np.asarray(c["conf"])[keep], np.asarray(c["acc"])[keep], marker="o", markersize=4,
                color=colors[c["label"]], label=f"{c['label']} (ECE {c['ece']:.3f})")
        n_bins = len(c["count"])
        edges = np.linspace(0, 1, n_bins + 1)
        share = 100.0 * np.asarray(c["count"]) / max(np.sum(c["count"]), 1)
        ax_n.stairs(share, edges, color=colors[c["label"]])
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    ax.set_ylabel("accuracy in bin")
    ax.set_title(f"{task}: reliability diagram (eval)", fontsize=10)
    ax.legend(loc="upper left", fontsize=7)
    ax_n.set_xlabel("confidence (max probability)")
    ax_n.set_ylabel("examples (%)")
    return _png(fig)


def _shared_legend(fig: Figure, names: list[str], colors: dict) -> None:
    handles = [Patch(color=colors[n], label=n) for n in names]
    fig.legend(handles=handles, loc="outside lower center", ncols=min(len(names), 4) or 1, fontsize=8)


LINE_STYLES = {"baseline": ":", "single": "--", "multi": "-"}


def sweep_lines(param: str, xs: list[str], tasks: list[dict]) -> bytes:
    """A 1-D sweep, one panel per task: each method's metric against the swept value.
    tasks: [{"task", "metric", "lines": [(method, type, [value % or None per x])]}]. Numeric values
    are placed at their value (log2 axis when they span a factor of 8 or more), others evenly."""
    try:
        numbers = [float(x) for x in xs]
    except ValueError:
        numbers = None
    x = np.array(numbers if numbers else range(len(xs)), dtype=float)
    methods = list(dict.fromkeys(line[0] for t in tasks for line in t["lines"]))
    colors = _palette(methods)
    styles = {line[0]: LINE_STYLES.get(line[1], "-") for t in tasks for line in t["lines"]}
    rows, cols = _grid(len(tasks))
    fig = Figure(figsize=(6.5 * cols, 4.0 * rows + 0.8), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    for ax, t in zip(axes, tasks):
        for method, _, values in t["lines"]:
            y = np.array([np.nan if v is None else v for v in values], dtype=float)
            ax.plot(x, y, styles[method], marker="o", markersize=4, color=colors[method])
        if numbers and min(numbers) > 0 and max(numbers) / min(numbers) >= 8:
            ax.set_xscale("log", base=2)
        ax.set_xticks(x, xs)
        ax.minorticks_off()
        ax.set_xlabel(param)
        ax.set_ylabel(f"{t['metric']} on eval (%)")
        ax.set_title(f"{t['task']}: {t['metric']} vs {param}", fontsize=10)
    for ax in axes[len(tasks):]:
        ax.set_visible(False)
    handles = [Line2D([], [], color=colors[m], linestyle=styles[m], marker="o", markersize=4, label=m) for m in methods]
    fig.legend(handles=handles, loc="outside lower center", ncols=min(len(methods), 4) or 1, fontsize=8)
    return _png(fig)


def sweep_heatmap(title: str, x_name: str, xs: list[str], y_name: str, ys: list[str], values: np.ndarray,
                  metric: str, best: tuple[int, int] | None = None) -> bytes:
    """A joint grid: values float [len(ys), len(xs)] (NaN where missing), annotated; the `best` cell (row, column),
    selected by the caller (on validation), boxed."""
    fig = Figure(figsize=(max(4.5, 0.9 * len(xs) + 3.0), max(3.2, 0.55 * len(ys) + 2.0)), layout="constrained")
    ax = fig.subplots()
    im = ax.imshow(np.ma.masked_invalid(values), cmap="viridis", aspect="auto", origin="lower")
    for i in range(len(ys)):
        for j in range(len(xs)):
            v = values[i, j]
            dark = np.isfinite(v) and im.norm(v) < 0.5
            ax.text(j, i, "-" if not np.isfinite(v) else f"{v:.2f}", ha="center", va="center", fontsize=9,
                    color="white" if dark else "black")
    if best is not None:
        i, j = best
        ax.add_patch(Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, edgecolor="red", linewidth=2))
    ax.set_xticks(range(len(xs)), xs)
    ax.set_yticks(range(len(ys)), ys)
    ax.set_xlabel(x_name)
    ax.set_ylabel(y_name)
    ax.set_title(title + ("\n(box: best point, selected on validation)" if best is not None else ""), fontsize=10)
    fig.colorbar(im, ax=ax, label=f"{metric} on eval (%)")
    return _png(fig)
