"""The report's figures are readable at the size the report shows them (its column is 1,100 px): no text under
10 px, no text cut off at the figure's edge, no tick labels on top of each other, intervals where the data has
them; drawn with many models and four tasks, as the study's."""
import numpy as np
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.text import Text

from mtkd.analysis import figures
from mtkd.report import plots

COLUMN = 1100
TASKS = ["sst2", "mnli", "qqp", "mrpc"]
STUDENTS = ["no_kd", "kd_minilm_l6", "kd_minilm_l3"] + [f"multi_{s}" for s in (
    "average", "weighted", "best_per_sample", "learned_gating", "prob_average", "calibrated_average",
    "entropy_weighted", "confidence_aware", "ae_kd", "agreement", "curriculum", "learned_gating_joint")]
TYPES = {s: "baseline" if s == "no_kd" else "single" if s.startswith("kd_") else "multi" for s in STUDENTS}


@pytest.fixture
def drawn(monkeypatch):
    """The Figure objects the plotting functions render (instead of their PNG bytes)."""
    out = []
    monkeypatch.setattr(figures, "_png", lambda fig: out.append(fig) or b"")
    monkeypatch.setattr(plots, "_png", lambda fig: out.append(fig) or b"")
    return out


def check(fig) -> list[str]:
    """Problems of a drawn figure at its displayed size (the PNG at figures.DPI, shrunk to the column if wider)."""
    fig.set_dpi(figures.DPI)
    canvas = FigureCanvasAgg(fig)
    drawn_texts = []   # the texts actually drawn (a tick outside the axis's limits is not)
    draw = Text.draw

    def record(self, renderer):
        drawn_texts.append(self)
        return draw(self, renderer)
    Text.draw = record
    try:
        canvas.draw()
    finally:
        Text.draw = draw
    renderer = canvas.get_renderer()
    width_px = fig.get_figwidth() * figures.DPI
    scale = min(1.0, COLUMN / width_px)
    box = fig.bbox
    texts = [t for t in drawn_texts if t.get_visible() and t.get_text().strip()]
    out = []
    for t in texts:
        px = t.get_fontsize() * figures.DPI / 72 * scale
        if px < 10:
            out.append(f"{t.get_text()!r} is {px:.1f} px")
        e = t.get_window_extent(renderer)
        if e.x0 < box.x0 - 1 or e.x1 > box.x1 + 1 or e.y0 < box.y0 - 1 or e.y1 > box.y1 + 1:
            out.append(f"{t.get_text()!r} is cut off at the edge")
    for ax in fig.axes:
        if not ax.get_visible():
            continue
        for axis in (ax.xaxis, ax.yaxis):
            labels = [t for t in axis.get_ticklabels() if t in drawn_texts and t.get_text()]
            boxes = [t.get_window_extent(renderer) for t in labels]
            for i in range(len(boxes) - 1):
                if boxes[i].overlaps(boxes[i + 1]):
                    out.append(f"tick labels {labels[i].get_text()!r} and {labels[i + 1].get_text()!r} overlap")
    if width_px > COLUMN + 1:
        out.append(f"{width_px:.0f} px wide")
    return out


def _gap_tasks():
    rng = np.random.default_rng(0)
    out = []
    for task in TASKS:
        bars = [(t, "teacher", 80 + rng.normal(), None) for t in ("minilm_l6", "minilm_l3", "tfidf", "cnn")]
        bars += [(s, TYPES[s], 75 + rng.normal(), None if s == "no_kd" else rng.normal(0, 300)) for s in STUDENTS]
        ci = {b[0]: (b[2] - 2, b[2] + 2) for b in bars}
        gap_ci = {b[0]: (b[3] - 900, b[3] + 900) for b in bars if b[3] is not None}
        out.append({"task": task, "metric": "accuracy", "teacher": 83.26, "baseline": 82.8, "bars": bars,
                    "ci": ci, "gap_ci": gap_ci})
    return out


def test_every_figure_reads_at_its_displayed_size(drawn):
    rng = np.random.default_rng(1)
    figures.gap_analysis(_gap_tasks())
    figures.agreement_breakdown([{"task": t, "shares": [80.0, 20.0, 0.0],
                                  "models": {s: list(rng.uniform(40, 90, 3)) for s in STUDENTS},
                                  "highlight": {"baseline": "no_kd", "best single": "kd_minilm_l6",
                                                "best multi": "multi_weighted"}} for t in TASKS],
                                ["all agree", "partial disagree", "full disagree"])
    figures.failure_categories([{"task": t, "n": 800, "models": {s: {"a": 10, "b": 60, "c": 90} for s in STUDENTS}}
                                for t in TASKS], ["a", "b", "c"])
    figures.ranking_heatmap(STUDENTS, TASKS, rng.integers(1, 16, (len(STUDENTS), len(TASKS))).astype(float))
    bins = 15
    curve = {"count": rng.integers(0, 50, bins), "conf": np.linspace(0.3, 1, bins), "acc": rng.uniform(0, 1, bins),
             "ece": 0.0404, "seed": 42}
    figures.reliability("sst2", [{**curve, "label": "best teacher (val): minilm_l6"},
                                 {**curve, "label": "best student (val): multi_learned_gating_joint"}])
    plots.forest([{"task": t, "metric": "f1", "reference": "kd_minilm_l6",
                   "rows": [(s, d, d - 1.5, d + 1.5, s == "multi_weighted", "")
                            for s, d in zip(STUDENTS[3:], rng.normal(0, 3, 12))]} for t in TASKS])
    grid = rng.uniform(60, 90, (4, 4))
    plots.sweep_grids("sst2: sst2_acc over T × alpha", "T", ["1", "2", "4", "8"], "alpha", ["0.3", "0.5", "0.7", "0.9"],
                      [(s, grid, (1, 2)) for s in STUDENTS[3:9]], "sst2_acc")
    assert len(drawn) == 7
    found = {fig.texts[0].get_text() if fig.texts else str(i): check(fig) for i, fig in enumerate(drawn)}
    assert {k: v for k, v in found.items() if v} == {}


def test_intervals_are_drawn_where_the_numbers_have_them(drawn):
    """The gap figure draws a line for every interval it is given (metric and gap closed); the reliability legend
    gives ECE in % and names the seed."""
    tasks = _gap_tasks()[:1]
    figures.gap_analysis(tasks)
    fig = drawn[-1]
    n_ci = len(tasks[0]["ci"]) + len(tasks[0]["gap_ci"])
    segments = [line for ax in fig.axes for line in ax.get_lines()
                if len(line.get_xdata()) == 2 and line.get_xdata()[0] != line.get_xdata()[1]]
    assert len(segments) == n_ci
    figures.reliability("sst2", [{"label": "best teacher (val): t", "count": np.ones(15), "conf": np.linspace(0, 1, 15),
                                  "acc": np.linspace(0, 1, 15), "ece": 0.0404, "seed": 42}])
    legend = [t.get_text() for t in drawn[-1].legends[0].get_texts()]
    assert "best teacher (val): t, seed 42: ECE 4.04%" in legend
