"""The report's own figures, drawn from the analysis's tables (RUN/report_files/): the forest plot of the answer
and, per task of a joint sweep, every selected student's grid on one shared colour scale."""
from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from mtkd.analysis.figures import PER_ROW, SMALL, WIDTH, _grid, _png, _span, heat_cells

SIGN_COLORS = {1: "#2a7f3f", -1: "#c0392b", 0: "#555555"}   # CI above 0, below 0, containing 0


def forest(tasks: list[dict]) -> bytes:
    """tasks: [{"task", "metric", "reference", "rows": [(method, diff, ci_low, ci_high, selected, duplicate_of)]}]:
    one panel per task, every multi-teacher strategy's difference from the validation-selected single-teacher
    student with its 95% interval; the validation-selected strategy a filled square, a duplicate hollow."""
    names = list(dict.fromkeys(r[0] for t in tasks for r in t["rows"]))
    rows, cols = _grid(len(tasks))
    fig = Figure(figsize=(WIDTH, rows * (0.17 * len(names) + 0.95) + 0.4), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    for ax in axes[len(tasks):]:
        ax.set_visible(False)
    y_of = {n: len(names) - 1 - i for i, n in enumerate(names)}
    for i, (ax, t) in enumerate(zip(axes, tasks)):
        for method, diff, lo, hi, selected, twin in t["rows"]:
            side = 1 if lo > 0 else -1 if hi < 0 else 0
            color = SIGN_COLORS[side]
            y = y_of[method]
            if np.isfinite(lo) and np.isfinite(hi):
                ax.plot([lo, hi], [y, y], color=color, linewidth=2.2 if selected else 1.3, alpha=0.5 if twin else 1)
            if np.isfinite(diff):
                ax.plot([diff], [y], "s" if selected else "o", markersize=7 if selected else 4.5,
                        markerfacecolor="white" if twin else color, markeredgecolor=color)
        ax.axvline(0, color="black", linewidth=0.9, zorder=1.5)
        values = [x for r in t["rows"] for x in r[1:4]]
        ax.set_xlim(*_span(values, include=[0]))
        ax.set_ylim(-0.7, len(names) - 0.3)
        labels = [_label(n, t) for n in names]
        ax.set_yticks(range(len(names)), labels[::-1], fontsize=SMALL)
        ax.tick_params(axis="y", labelleft=i % cols == 0, length=0)
        ax.tick_params(axis="x", labelsize=SMALL)
        ax.grid(axis="x", color="#e5e5e5", linewidth=0.8)
        ax.set_axisbelow(True)
        metric = {"f1": "F1", "mcc": "MCC"}.get(t["metric"], t["metric"])
        ax.set_xlabel(f"multi − single (pp {metric})", fontsize=SMALL + 1)
        ax.set_title(f"{t['task']}: vs {t['reference']}", fontsize=10)
    handles = [Line2D([], [], color=SIGN_COLORS[1], marker="o", label="95% CI above 0"),
               Line2D([], [], color=SIGN_COLORS[-1], marker="o", label="95% CI below 0"),
               Line2D([], [], color=SIGN_COLORS[0], marker="o", label="95% CI contains 0"),
               Line2D([], [], color="black", marker="s", linestyle="", markersize=7,
                      label="selected on validation")]
    if any(r[5] for t in tasks for r in t["rows"]):
        handles.append(Line2D([], [], color="black", marker="o", markerfacecolor="white", linestyle="",
                              label="trains as another (=)"))
    fig.legend(handles=handles, loc="outside lower center", ncols=len(handles), fontsize=SMALL + 1)
    return _png(fig)


def _label(method: str, task: dict) -> str:
    twin = next((r[5] for r in task["rows"] if r[0] == method and r[5]), "")
    return method.removeprefix("multi_") + (f" (= {twin.removeprefix('multi_')})" if twin else "")


def sweep_grids(title: str, x_name: str, xs: list[str], y_name: str, ys: list[str], grids: list[tuple], metric: str) -> bytes:
    """grids: [(label, values [len(ys), len(xs)] (NaN where missing), best cell (row, column) or None)]: one panel
    each, all on one colour scale (one colour bar), the validation-selected cell boxed."""
    finite = np.concatenate([g[1][np.isfinite(g[1])] for g in grids]) if grids else np.array([])
    vmin, vmax = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
    if vmax - vmin < 1e-9:   # one value everywhere: a scale around it (else each panel normalises on its own)
        vmin, vmax = vmin - 0.5, vmax + 0.5
    rows, cols = _grid(len(grids), min(PER_ROW, 3))
    fig = Figure(figsize=(min(WIDTH, 3.3 * cols + 1.2), rows * max(2.6, 0.42 * len(ys) + 1.5) + 0.5),
                 layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    for ax in axes[len(grids):]:
        ax.set_visible(False)
    for i, (ax, (label, values, best)) in enumerate(zip(axes, grids)):
        heat_cells(ax, xs, ys, values, best, vmin, vmax)
        ax.set_title(label, fontsize=9)
        ax.set_xlabel(x_name, fontsize=SMALL + 1)
        if i % cols == 0:
            ax.set_ylabel(y_name, fontsize=SMALL + 1)
    fig.suptitle(title + " (box: best cell, selected on validation)", fontsize=10)
    if grids:
        fig.colorbar(axes[0].images[0], ax=list(axes[:len(grids)]), label=f"{metric} on eval (%)", shrink=0.9)
    return _png(fig)
