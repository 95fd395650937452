"""The best student against the best teacher and the teacher ensemble (analysis/versus.py), by hand."""
from pathlib import Path

import numpy as np

from mtkd.analysis import headroom, versus
from mtkd.analysis.load import Model, TaskEval


def _lg(preds, C=2):
    """Logits whose argmax is `preds` (margin 2)."""
    z = np.zeros((len(preds), C))
    z[np.arange(len(preds)), preds] = 2.0
    return z


def _model(method, type_, val_metric, eval_seeds, val_pred):
    seed_logits = {s: _lg(p) for s, p in eval_seeds.items()}
    return Model(method, type_, next(iter(seed_logits.values())), float("nan"), seeds=list(seed_logits),
                 seed_logits=seed_logits, val_metric=val_metric, val_logits=_lg(val_pred))


Y = np.array([0, 1] * 50)                                         # 100 eval examples
YV = np.array([0, 1] * 5)


def _flip(y, k):
    out = y.copy()
    out[:k] = 1 - out[:k]
    return out


def _task():
    # teachers: A right on 90 (val 100), B right on 80 (val 80), C right on 70 (val 60); errors on the first k
    a, b, c = _flip(Y, 10), _flip(Y, 20), _flip(Y, 30)
    models = [_model("A", "teacher", 100.0, {0: a}, YV), _model("B", "teacher", 80.0, {0: b}, _flip(YV, 2)),
              _model("C", "teacher", 60.0, {0: c}, _flip(YV, 4)),
              _model("no_kd", "baseline", 50.0, {0: _flip(Y, 40)}, _flip(YV, 5)),
              # the validation-best student: 85 and 75 right at its two seeds (mean 80)
              _model("multi_x", "multi", 90.0, {0: _flip(Y, 15), 1: _flip(Y, 25)}, YV),
              _model("kd_A", "single", 70.0, {0: Y}, _flip(YV, 3))]   # perfect on eval, but not chosen
    return TaskEval("hand", ["neg", "pos"], "accuracy", 2.0, Y, models, ["A", "B", "C"], "eval", Y, {}, Path("m"),
                    val_labels=YV)


def test_student_against_teacher_and_ensemble_by_hand():
    t = _task()
    room = headroom.from_task(t, n_resamples=500)
    row = versus.task_row(t, room, n_resamples=2000)
    # selection on validation, never eval: kd_A is perfect on eval but multi_x is the validation-best student
    assert row["best student"] == "multi_x" and row["best teacher"] == "A"
    assert row["student (%)"] == 80.0 and row["teacher (%)"] == 90.0
    assert row["student − teacher (pp)"] == -10.0 and row["ci_high"] < 0
    # the ensembles of A, B, C (errors nested in the first 30 eval / 4 validation examples): every ensemble is
    # right wherever two of three teachers are — 80% on validation (a tie: the first, logit_average, is the
    # headline) and on eval all but the first 20 examples, 80%; the student (80%) is level with it
    assert (row["ensemble"], row["ensemble (%)"]) == ("logit_average", 80.0) == (room["headline"]["model"], 80.0)
    assert row["student − ensemble (pp)"] == 0.0 and row["ens ci_low"] < 0 < row["ens ci_high"]
    assert row["reading"] == "below the best teacher; level with the ensemble"


def test_level_reading_and_no_ensemble_with_one_teacher():
    t = _task()
    one = TaskEval("one", t.label_names, "accuracy", 2.0, Y, [t.models[0], t.models[4]], ["A"], "eval", Y, {},
                   Path("m"), val_labels=YV)
    row = versus.task_row(one, None, n_resamples=500)
    assert row["ensemble"] is None and np.isnan(row["ensemble (%)"]) and row["reading"] == "below the best teacher"
    assert versus.reading((0.5, -1.0, 2.0), (3.0, 1.0, 5.0)) == "level with the best teacher; above the ensemble"
    assert versus.task_row(TaskEval("none", t.label_names, "accuracy", 2.0, Y, t.models[:3], ["A", "B", "C"], "eval",
                                    Y, {}, Path("m"), val_labels=YV), None) is None
