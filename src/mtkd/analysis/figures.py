"""The report's plots, each a function of plain data that returns PNG bytes.

Figures are built with `matplotlib.figure.Figure` (no pyplot, no global state, Agg rendering) and
constrained layout. They are drawn for the report's 1,100 px column: at DPI 100 a figure is at most
WIDTH inches wide, so it is shown at its own size and its smallest text (8 pt) is 11 px on screen.
Tasks are panels side by side (up to PER_ROW in a row) in the order given, which is the run's task
order everywhere; intervals are drawn wherever the numbers have them; values are read from the tables,
so no value label sits on a bar or a reference line.
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

DPI = 100          # pixels per inch of the PNG: a figure of WIDTH inches fills the report's 1,100 px column
WIDTH = 11.0       # inches: the widest figure
PER_ROW = 4        # task panels side by side
SMALL = 8          # pt: the smallest text (11 px at DPI 100)
ROW_IN = 0.2       # inches per model row in the per-model panels
TYPE_COLORS = {"teacher": "#4c72b0", "baseline": "#555555", "single": "#dd8452", "multi": "#55a868"}
TYPE_LABELS = {"teacher": "teacher", "baseline": "baseline (no KD)", "single": "single-teacher KD",
               "multi": "multi-teacher KD"}
CATEGORY_COLORS = ["#c44e52", "#dd8452", "#8172b3"]
HIGHLIGHT = {"baseline": "#555555", "best single": "#dd8452", "best multi": "#55a868"}


def _png(fig: Figure) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI)
    return buf.getvalue()


def _palette(names: list[str]) -> dict[str, tuple]:
    cmap = colormaps["tab10" if len(names) <= 10 else "tab20"]
    return {n: cmap(i % cmap.N) for i, n in enumerate(names)}


def _grid(n: int, max_cols: int = PER_ROW) -> tuple[int, int]:
    cols = min(max_cols, max(n, 1))
    return math.ceil(max(n, 1) / cols), cols


def _panels(fig, n: int, sharey: bool = False):
    """n task panels, PER_ROW to a row; the unused ones hidden."""
    rows, cols = _grid(n)
    axes = fig.subplots(rows, cols, squeeze=False, sharey=sharey).ravel()
    for ax in axes[n:]:
        ax.set_visible(False)
    return axes[:n]


def _span(values, pad: float = 0.08, include=()) -> tuple[float, float]:
    """x limits around the finite values (and `include`), padded."""
    v = np.array([x for x in [*values, *include] if x is not None and np.isfinite(x)], dtype=float)
    if not v.size:
        return 0.0, 1.0
    lo, hi = float(v.min()), float(v.max())
    width = (hi - lo) or max(abs(hi), 1.0)
    return lo - pad * width, hi + pad * width


def _interval_rows(ax, names: list[str], points: dict, cis: dict, colors: dict, y_of: dict) -> None:
    """One dot per name with its 95% interval as a line (no interval where it is missing)."""
    for name in names:
        v = points.get(name)
        if v is None or not np.isfinite(v):
            continue
        lo, hi = cis.get(name, (None, None))
        if lo is not None and hi is not None and np.isfinite(lo) and np.isfinite(hi):
            ax.plot([lo, hi], [y_of[name]] * 2, color=colors[name], linewidth=1.6, solid_capstyle="butt")
        ax.plot([v], [y_of[name]], "o", color=colors[name], markersize=4.5)


def _rows_axis(ax, names: list[str], first: bool) -> dict:
    y_of = {n: len(names) - 1 - i for i, n in enumerate(names)}
    ax.set_ylim(-0.7, len(names) - 0.3)
    ax.set_yticks(range(len(names)), names[::-1], fontsize=SMALL)
    ax.tick_params(axis="y", labelleft=first, length=0 if not first else 3.5)
    ax.tick_params(axis="x", labelsize=SMALL)
    ax.grid(axis="x", color="#e5e5e5", linewidth=0.8)
    ax.set_axisbelow(True)
    return y_of


def gap_analysis(tasks: list[dict]) -> bytes:
    """tasks: [{"task", "metric", "teacher", "baseline", "bars": [(method, type, value %, gap closed % or None)],
    optional "ci": {method: (low, high)} (the metric's 95% interval), "gap_ci": {student: (low, high)}}].
    Top: every model's official metric with its interval (dashed: best teacher, dotted: baseline); bottom: the
    share of the baseline-to-best-teacher gap each KD student closes, with its interval (0 and 100 marked)."""
    models = list(dict.fromkeys(b[0] for t in tasks for b in t["bars"]))
    students = list(dict.fromkeys(b[0] for t in tasks for b in t["bars"] if b[1] in ("single", "multi")))
    kind = {b[0]: b[1] for t in tasks for b in t["bars"]}
    colors = {m: TYPE_COLORS[kind[m]] for m in models}
    rows = _grid(len(tasks))[0]
    h_top, h_bottom = ROW_IN * len(models) + 0.9, ROW_IN * max(len(students), 1) + 1.0
    fig = Figure(figsize=(WIDTH, rows * (h_top + h_bottom) + 0.5), layout="constrained")
    top, bottom = fig.subfigures(2, 1, height_ratios=[h_top, h_bottom])
    for i, (ax, t) in enumerate(zip(_panels(top, len(tasks)), tasks)):
        y_of = _rows_axis(ax, models, i % PER_ROW == 0)
        values = {b[0]: b[2] for b in t["bars"]}
        _interval_rows(ax, models, values, t.get("ci", {}), colors, y_of)
        for ref, style in ((t["teacher"], "--"), (t["baseline"], ":")):
            if ref is not None:
                ax.axvline(ref, color="black", linestyle=style, linewidth=1, zorder=0)
        ci = [x for pair in t.get("ci", {}).values() for x in pair]
        ax.set_xlim(*_span([*values.values(), *ci], include=[t["teacher"], t["baseline"]]))
        ax.set_xlabel(f"{t['metric']} on eval (%)", fontsize=SMALL + 1)
        ax.set_title(t["task"], fontsize=10)
    top.suptitle("Every model's official metric (dot) with its 95% interval", fontsize=10)
    for i, (ax, t) in enumerate(zip(_panels(bottom, len(tasks)), tasks)):
        y_of = _rows_axis(ax, students, i % PER_ROW == 0)
        gaps = {b[0]: b[3] for b in t["bars"] if b[1] in ("single", "multi")}
        _interval_rows(ax, students, gaps, t.get("gap_ci", {}), colors, y_of)
        for ref, style in ((0, "-"), (100, "--")):
            ax.axvline(ref, color="black", linestyle=style, linewidth=0.9, zorder=0)
        ci = [x for pair in t.get("gap_ci", {}).values() for x in pair]
        ax.set_xlim(*_span([*gaps.values(), *ci], include=[0, 100]))
        ax.xaxis.set_major_locator(MaxNLocator(4))
        ax.set_xlabel("gap closed (%)", fontsize=SMALL + 1)
        denom = None if t["teacher"] is None or t["baseline"] is None else t["teacher"] - t["baseline"]
        ax.set_title(f"{t['task']}" + ("" if denom is None else f" (gap {denom:.2f} pp)"), fontsize=10)
    bottom.suptitle("Gap closed by each KD student: 0 = baseline, 100 = best teacher (selected on validation)",
                    fontsize=10)
    handles = [Patch(color=c, label=TYPE_LABELS[k]) for k, c in TYPE_COLORS.items() if k in kind.values()]
    handles += [Line2D([], [], color="black", linestyle="--", linewidth=1, label="best teacher / 100%"),
                Line2D([], [], color="black", linestyle=":", linewidth=1, label="baseline")]
    fig.legend(handles=handles, loc="outside lower center", ncols=len(handles), fontsize=SMALL + 1)
    return _png(fig)


def agreement_breakdown(tasks: list[dict], regions: list[str]) -> bytes:
    """tasks: [{"task", "shares": [% per region], "models": {student: [acc % per region]},
    optional "highlight": {"baseline" | "best single" | "best multi": student}}]. One panel per task over its
    non-empty regions: every student a grey dot, the highlighted ones (validation-selected) in colour."""
    fig = Figure(figsize=(WIDTH, 3.4 * _grid(len(tasks))[0] + 0.5), layout="constrained")
    for ax, t in zip(_panels(fig, len(tasks), sharey=True), tasks):
        keep = [i for i, s in enumerate(t["shares"]) if s > 0]
        x = np.arange(len(keep))
        marked = {name: role for role, name in (t.get("highlight") or {}).items() if name}
        for name, acc in t["models"].items():
            y = np.array([acc[i] for i in keep], dtype=float)
            if name not in marked:
                ax.plot(x, y, "o", color="#bbbbbb", markersize=4, zorder=1)
        for j, (name, role) in enumerate(marked.items()):
            if name in t["models"]:
                y = np.array([t["models"][name][i] for i in keep], dtype=float)
                ax.plot(x + (j - 1) * 0.08, y, "o-", color=HIGHLIGHT[role], markersize=6, linewidth=1.2, zorder=2)
        ax.set_xticks(x, [f"{regions[i]}\n{t['shares'][i]:.1f}% of examples" for i in keep], fontsize=SMALL)
        ax.set_xlim(-0.5, len(keep) - 0.5)
        ax.set_ylim(0, 102)
        ax.tick_params(axis="y", labelsize=SMALL)
        ax.set_ylabel("accuracy (%)", fontsize=SMALL + 1)
        ax.set_title(t["task"], fontsize=10)
        ax.grid(axis="y", color="#e5e5e5", linewidth=0.8)
    roles = list(dict.fromkeys(r for t in tasks for r, n in (t.get("highlight") or {}).items() if n))
    handles = [Line2D([], [], color=HIGHLIGHT[r], marker="o", label=f"{r} (selected on validation)" if r != "baseline"
                      else r) for r in roles]
    handles.append(Line2D([], [], color="#bbbbbb", marker="o", linestyle="", label="every other student"))
    fig.legend(handles=handles, loc="outside lower center", ncols=len(handles), fontsize=SMALL + 1)
    return _png(fig)


def failure_categories(tasks: list[dict], categories: list[str]) -> bytes:
    """tasks: [{"task", "n": examples, "models": {student: {category: count, ...}}}]. One panel per task: each
    student's errors as % of eval examples, split by cause (bar length = error rate)."""
    names = list(dict.fromkeys(n for t in tasks for n in t["models"]))
    rows = _grid(len(tasks))[0]
    fig = Figure(figsize=(WIDTH, rows * (ROW_IN * len(names) + 1.0) + 0.5), layout="constrained")
    for i, (ax, t) in enumerate(zip(_panels(fig, len(tasks)), tasks)):
        y_of = _rows_axis(ax, names, i % PER_ROW == 0)
        y = np.array([y_of[n] for n in t["models"]])
        left = np.zeros(len(y))
        for cat, color in zip(categories, CATEGORY_COLORS):
            w = np.array([100.0 * m[cat] / max(t["n"], 1) for m in t["models"].values()])
            ax.barh(y, w, 0.7, left=left, color=color, label=cat)
            left += w
        ax.set_xlim(0, max(left.max() if len(left) else 1.0, 1.0) * 1.05)
        ax.xaxis.set_major_locator(MaxNLocator(4))
        ax.set_xlabel("errors (% of eval examples)", fontsize=SMALL + 1)
        ax.set_title(t["task"], fontsize=10)
    handles = [Patch(color=c, label=n) for n, c in zip(categories, CATEGORY_COLORS)]
    fig.legend(handles=handles, loc="outside lower center", ncols=len(handles), fontsize=SMALL + 1)
    return _png(fig)


def ranking_heatmap(methods: list[str], tasks: list[str], ranks: np.ndarray) -> bytes:
    """ranks float [methods, tasks], NaN where a student was not run; 1 = best."""
    fig = Figure(figsize=(min(WIDTH, max(4.5, 0.9 * len(tasks) + 3.5)), max(2.5, 0.3 * len(methods) + 1.4)),
                 layout="constrained")
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
    ax.set_yticks(range(len(methods)), methods, fontsize=SMALL)
    ax.set_xlabel("task")
    ax.set_title("Rank of each student method per task (1 = best)", fontsize=10)
    bar = fig.colorbar(im, ax=ax, label="rank (1 = best)")
    bar.locator = MaxNLocator(integer=True)
    bar.update_ticks()
    return _png(fig)


def reliability(task: str, curves: list[dict]) -> bytes:
    """curves: [{"label", "count": int [B], "conf": [B], "acc": [B], "ece": fraction, optional "seed"}]
    (NaN in empty bins). ECE is shown in %, as in the tables; the seed of the logits is named."""
    fig = Figure(figsize=(5.4, 5.0), layout="constrained")
    ax, ax_n = fig.subplots(2, 1, height_ratios=[3, 1], sharex=True)
    ax.plot([0, 1], [0, 1], color="black", linestyle="--", linewidth=1)
    colors = _palette([c["label"] for c in curves])
    handles = [Line2D([], [], color="black", linestyle="--", linewidth=1, label="perfect calibration")]
    for c in curves:
        keep = np.asarray(c["count"]) > 0
        seed = f", seed {c['seed']}" if c.get("seed") is not None else ""
        ax.plot(np.asarray(c["conf"])[keep], np.asarray(c["acc"])[keep], marker="o", markersize=4,
                color=colors[c["label"]])
        handles.append(Line2D([], [], color=colors[c["label"]], marker="o", markersize=4,
                              label=f"{c['label']}{seed}: ECE {100 * c['ece']:.2f}%"))
        edges = np.linspace(0, 1, len(c["count"]) + 1)
        ax_n.stairs(100.0 * np.asarray(c["count"]) / max(np.sum(c["count"]), 1), edges, color=colors[c["label"]])
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    ax.set_ylabel("accuracy in bin", fontsize=SMALL + 1)
    ax.set_title(f"{task}: reliability diagram (eval)", fontsize=10)
    ax_n.set_xlabel("confidence (max probability)", fontsize=SMALL + 1)
    ax_n.set_ylabel("examples (%)", fontsize=SMALL + 1)
    for a in (ax, ax_n):
        a.tick_params(labelsize=SMALL)
    fig.legend(handles=handles, loc="outside lower center", ncols=1, fontsize=SMALL)
    return _png(fig)


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
    rows, cols = _grid(len(tasks), 2)
    fig = Figure(figsize=(5.4 * cols, 3.6 * rows + 0.8), layout="constrained")
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
    fig.legend(handles=handles, loc="outside lower center", ncols=min(len(methods), 4) or 1, fontsize=SMALL)
    return _png(fig)


def sweep_heatmap(title: str, x_name: str, xs: list[str], y_name: str, ys: list[str], values: np.ndarray,
                  metric: str, best: tuple[int, int] | None = None, vmin: float | None = None,
                  vmax: float | None = None) -> bytes:
    """A joint grid: values float [len(ys), len(xs)] (NaN where missing), annotated; the `best` cell (row, column),
    selected by the caller (on validation), boxed. vmin/vmax: a colour scale shared with comparable grids."""
    fig = Figure(figsize=(max(4.5, 0.9 * len(xs) + 3.0), max(3.2, 0.55 * len(ys) + 2.0)), layout="constrained")
    ax = fig.subplots()
    heat_cells(ax, xs, ys, values, best, vmin, vmax)
    ax.set_xlabel(x_name)
    ax.set_ylabel(y_name)
    ax.set_title(title + ("\n(box: best point, selected on validation)" if best is not None else ""), fontsize=10)
    fig.colorbar(ax.images[0], ax=ax, label=f"{metric} on eval (%)")
    return _png(fig)


def heat_cells(ax, xs: list[str], ys: list[str], values: np.ndarray, best=None, vmin=None, vmax=None) -> None:
    """An annotated heatmap of values [len(ys), len(xs)] on ax (NaN: "-"), the `best` cell boxed in red."""
    im = ax.imshow(np.ma.masked_invalid(values), cmap="viridis", aspect="auto", origin="lower", vmin=vmin, vmax=vmax)
    for i in range(len(ys)):
        for j in range(len(xs)):
            v = values[i, j]
            dark = np.isfinite(v) and im.norm(v) < 0.5
            ax.text(j, i, "-" if not np.isfinite(v) else f"{v:.2f}", ha="center", va="center", fontsize=9,
                    color="white" if dark else "black")
    if best is not None:
        i, j = best
        ax.add_patch(Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, edgecolor="red", linewidth=2))
    ax.set_xticks(range(len(xs)), xs, fontsize=SMALL)
    ax.set_yticks(range(len(ys)), ys, fontsize=SMALL)
