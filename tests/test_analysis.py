"""Analyses checked against hand computations (see the comments for every expected number)."""
import math
from pathlib import Path

import numpy as np
import pytest

from mtkd.analysis import agreement, calibration, confidence, diversity, failures, gap
from mtkd.analysis.load import Model, TaskEval

# Hand-made 3-class case, 3 teachers, 8 examples.
#            ex: 0  1  2  3  4  5  6  7
T1 = np.array([0, 0, 0, 1, 2, 0, 1, 0])
T2 = np.array([0, 0, 1, 1, 1, 1, 1, 1])
T3 = np.array([0, 1, 2, 1, 0, 2, 1, 1])
TP = np.stack([T1, T2, T3])
Y = np.array([0, 0, 2, 1, 1, 2, 0, 2])
S = np.array([0, 1, 2, 0, 1, 1, 0, 1])   # student
# distinct labels per example: 1 2 3 1 3 3 1 2
# regions: all {0, 3, 6}, partial {1, 7}, full {2, 4, 5}   (full = no two teachers agree)
# every teacher wrong at ex 6 (1,1,1 vs 0) and ex 7 (0,1,1 vs 2); the student fixes ex 6.


def test_regions_three_teachers_three_classes():
    r = agreement.regions(TP)
    A, P, F = agreement.ALL, agreement.PARTIAL, agreement.FULL
    assert r.tolist() == [A, P, F, A, F, F, A, P]
    # shares: 3/8, 2/8, 3/8
    assert agreement.region_shares(r) == [("all agree", 3, 37.5), ("partial disagree", 2, 25.0),
                                          ("full disagree", 3, 37.5)]
    # student right at 0, 2, 4, 6: all {0 Y, 3 N, 6 Y} = 2/3; partial {1 N, 7 N} = 0; full {2 Y, 4 Y, 5 N} = 2/3
    acc = agreement.region_accuracy(S, Y, r)
    assert acc == pytest.approx([200 / 3, 0.0, 200 / 3])
    # teacher 1 right at 0, 1, 3: all 2/3, partial {1 Y, 7 N} = 1/2, full 0/3
    assert agreement.region_accuracy(T1, Y, r) == pytest.approx([200 / 3, 50.0, 0.0])


def test_regions_one_and_two_teachers():
    one = agreement.regions(T1[None, :])
    assert (one == agreement.ALL).all()
    two = agreement.regions(np.stack([T1, T2]))
    # T1 vs T2 disagree at ex 2, 4, 5, 7: with two teachers every disagreement is full
    assert np.flatnonzero(two == agreement.FULL).tolist() == [2, 4, 5, 7]
    assert not (two == agreement.PARTIAL).any()
    empty = agreement.region_accuracy(S, Y, two)
    assert math.isnan(empty[1])


def test_failure_categories_exclusive_and_exhaustive():
    # student errors at ex 1, 3, 5, 7:
    #   ex 1: label 0, teachers 0 0 1 -> disagreement, two right   -> error on disagreement
    #   ex 3: label 1, teachers 1 1 1 -> every teacher right        -> transfer failure
    #   ex 5: label 2, teachers 0 1 2 -> one right                  -> error on disagreement
    #   ex 7: label 2, teachers 0 1 1 -> every teacher wrong        -> all teachers wrong
    # the student is right at ex 6 where every teacher is wrong     -> fixed all-wrong = 1
    cat = failures.categorize(S, TP, Y)
    assert cat.tolist() == [-1, 2, -1, 1, -1, 2, -1, 0]
    assert failures.failure_counts(S, TP, Y) == {
        "errors": 4, "all teachers wrong": 1, "transfer failure": 1, "error on disagreement": 2,
        "fixed all-wrong": 1}


def test_failure_categories_one_teacher():
    # one teacher T1 (right at 0, 1, 3); student errors 1, 3, 5, 7 -> transfer, transfer, wrong, wrong;
    # the student is right at 2, 4, 6 where T1 is wrong -> fixed all-wrong = 3
    c = failures.failure_counts(S, T1[None, :], Y)
    assert c == {"errors": 4, "all teachers wrong": 2, "transfer failure": 2, "error on disagreement": 0,
                 "fixed all-wrong": 3}


def test_diversity_hand_example():
    # pairwise: T1/T2 equal at 0,1,3,6 (4/8); T1/T3 at 0,3,6 (3/8); T2/T3 at 0,3,6,7 (4/8)
    assert diversity.pairwise_agreement(TP, ["a", "b", "c"]) == [("a", "b", 50.0), ("a", "c", 37.5), ("b", "c", 50.0)]
    # oracle: some teacher right everywhere but ex 6 and 7 -> 6/8
    assert diversity.oracle_accuracy(TP, Y) == 75.0
    # majority: 0 0 [0,1,2 tie->0] 1 [2,1,0 tie->0] [tie->0] 1 1 ; right at 0, 1, 3 -> 3/8
    maj = diversity.majority_vote(TP, 3)
    assert maj.tolist() == [0, 0, 0, 1, 0, 0, 1, 1]
    assert 100 * (maj == Y).mean() == 37.5
    # Fleiss: counts per example [3,0,0] [2,1,0] [1,1,1] [0,3,0] [1,1,1] [1,1,1] [0,3,0] [1,2,0]
    # P_i = (sum n_ij^2 - 3) / 6 = 1, 1/3, 0, 1, 0, 0, 1, 1/3 -> P_bar = 11/24
    # p_j = 9/24, 12/24, 3/24 -> P_e = 13/32; kappa = (11/24 - 13/32) / (19/32) = 5/57
    counts = diversity.vote_counts(TP, 3)
    assert counts[7].tolist() == [1, 2, 0]
    assert diversity.fleiss_kappa(counts) == pytest.approx(5 / 57)


def test_fleiss_kappa_textbook():
    # Fleiss (1971) style example as given on Wikipedia ("Fleiss' kappa", worked example):
    # 10 subjects, 14 raters, 5 categories; P_bar = 0.378, P_e = 0.213, kappa = 0.210
    table = np.array([[0, 0, 0, 0, 14], [0, 2, 6, 4, 2], [0, 0, 3, 5, 6], [0, 3, 9, 2, 0], [2, 2, 8, 1, 1],
                      [7, 7, 0, 0, 0], [3, 2, 6, 3, 0], [2, 5, 3, 2, 2], [6, 5, 2, 1, 0], [0, 2, 2, 3, 7]])
    assert diversity.fleiss_kappa(table) == pytest.approx(0.210, abs=5e-4)
    # perfect agreement on varied categories -> 1; a single rater -> undefined
    assert diversity.fleiss_kappa(np.array([[3, 0], [0, 3]])) == pytest.approx(1.0)
    assert math.isnan(diversity.fleiss_kappa(np.array([[1, 0], [0, 1]])))


def test_calibration_hand_computed():
    probs = np.array([[0.9, 0.1], [0.65, 0.35], [0.3, 0.7], [0.72, 0.28]])
    y = np.array([0, 1, 1, 1])
    # conf .9 (right, bin 13), .65 (wrong, bin 9), .7 (right) and .72 (wrong) share bin 10:
    # ECE = 1/4*|1-.9| + 1/4*|0-.65| + 2/4*|.5-.71| = .025 + .1625 + .105 = .2925
    assert calibration.ece(probs, y) == pytest.approx(0.2925)
    # NLL = -(ln .9 + ln .35 + ln .7 + ln .28) / 4
    assert calibration.nll(np.log(probs), y) == pytest.approx(2.7848232 / 4, abs=1e-6)
    # Brier = (.02 + .845 + .18 + 1.0368) / 4
    assert calibration.brier(probs, y) == pytest.approx(0.52045)
    # 3 classes: (.5-0)^2 + (.3-0)^2 + (.2-1)^2 = .98
    assert calibration.brier(np.array([[0.5, 0.3, 0.2]]), np.array([2])) == pytest.approx(0.98)
    # from logits: log_softmax agrees with log(softmax)
    logits = np.array([[2.0, -1.0, 0.5]])
    assert confidence.log_softmax(logits) == pytest.approx(np.log(confidence.softmax(logits)))


def test_confidence_hand_computed():
    logits = np.array([[0.0, 0.0], [math.log(99), 0.0]])   # probabilities .5/.5 and .99/.01
    s = confidence.confidence_stats(logits)
    assert s["mean max prob"] == pytest.approx((0.5 + 0.99) / 2)
    h2 = -(0.99 * math.log(0.99) + 0.01 * math.log(0.01))
    assert s["mean entropy"] == pytest.approx((math.log(2) + h2) / 2)
    assert s["pct max>0.95"] == 50.0
    # T = 2: .99/.01 becomes sqrt(99)/(sqrt(99)+1) = .9087 < .95
    s2 = confidence.confidence_stats(logits, 2.0)
    assert s2["mean max prob"] == pytest.approx((0.5 + math.sqrt(99) / (math.sqrt(99) + 1)) / 2)
    assert s2["pct max>0.95"] == 0.0
    assert confidence.entropy(np.array([[1.0, 0.0]]))[0] == 0.0


def _task(metrics: dict[str, tuple], name: str = "x") -> TaskEval:
    """metrics: {method: (type, eval metric[, validation metric])}; validation = eval when not given."""
    models = [Model(m, v[0], np.zeros((2, 2)), v[1], val_metric=v[-1]) for m, v in metrics.items()]
    return TaskEval(name, ["a", "b"], "accuracy", 2.0, np.zeros(2, int), models,
                    [m for m, v in metrics.items() if v[0] == "teacher"], "eval", np.zeros(2, int), {}, Path("m"))


def test_gap_and_advantage():
    assert gap.gap_closed(80.0, 60.0, 90.0) == pytest.approx(200 / 3)
    assert math.isnan(gap.gap_closed(80.0, 60.0, 60.0))          # zero denominator
    assert math.isnan(gap.gap_closed(80.0, float("nan"), 90.0))  # no baseline
    # the verdict is the CI's: above 0, below 0, containing 0 (whatever the size of the difference)
    assert [gap.verdict(lo, hi) for lo, hi in ((0.01, 3.0), (-3.0, -0.01), (-0.5, 9.0), (0.0, 1.0), (math.nan, 1.0))] \
        == ["multi-teacher better", "multi-teacher worse", "no significant difference", "no significant difference", "n/a"]
    t = _task({"ta": ("teacher", 90.0), "tb": ("teacher", 85.0), "no_kd": ("baseline", 70.0),
               "kd_ta": ("single", 80.0), "kd_tb": ("single", 78.0), "m_avg": ("multi", 81.5), "m_w": ("multi", 75.0)})
    s = gap.task_summary(t, {"headline": {"ci_low": 0.2, "ci_high": 2.9, "p_value": 0.01, "p_holm": 0.02},
                             "gap_ci": {"m_avg": (50.0, 65.0)}})
    # advantage = 81.5 - 80 = 1.5 pp; gap closed by m_avg = (81.5 - 70) / (90 - 70) = 57.5 %
    assert s["advantage_pp"] == 1.5 and s["verdict"] == "multi-teacher better" and s["selected_on"] == "validation"
    assert s["best_student"] == {"method": "m_avg", "value": 81.5, "validation": 81.5, "gap_closed_pct": 57.5,
                                 "gap_closed_ci_pct": [50.0, 65.0]}
    assert s["gap_closed_pct"]["m_w"] == 25.0
    assert gap.task_summary(t)["verdict"] == "n/a"                 # no CI, no verdict
    agg = gap.success_metrics([t, _task({"ta": ("teacher", 90.0), "kd_ta": ("single", 80.0)}, "y")])
    assert agg["n_tasks_compared"] == 1 and agg["average_advantage_pp"] == 1.5
    assert agg["tasks"]["y"]["verdict"] == "n/a"
    assert agg["average_gap_closed_by_best_student_pct"] == 57.5   # second task has no baseline


def test_best_is_selected_on_validation():
    """Guards selection on validation: the model best on eval but not on validation is never the "best";
    ties go to the first in config order; a model without a validation metric is never selected."""
    t = _task({"ta": ("teacher", 95.0, 80.0), "tb": ("teacher", 85.0, 90.0), "no_kd": ("baseline", 70.0),
               "kd_ta": ("single", 84.0, 70.0), "kd_tb": ("single", 78.0, 75.0), "kd_tc": ("single", 99.0, 75.0),
               "m_avg": ("multi", 90.0, 60.0), "m_w": ("multi", 76.0, 76.0), "m_x": ("multi", 99.0, math.nan)})
    s = gap.task_summary(t)
    assert s["best_teacher"] == {"method": "tb", "value": 85.0, "validation": 90.0}
    assert s["best_single"]["method"] == "kd_tb"                    # tie with kd_tc on validation: config order
    assert s["best_multi"]["method"] == "m_w" and s["best_student"]["method"] == "m_w"
    assert s["advantage_pp"] == -2.0                                # reported on eval: 76 - 78
    assert s["gap_closed_pct"]["m_w"] == pytest.approx(100 * 6 / 15)   # (76 - 70) / (85 - 70): teacher tb, not ta


def test_steadiness_scores_the_tasks_positive_class():
    """The steadiness table's metric is the task's official one with its pos_label: here binary F1 of class 0
    (label order [duplicate, not_duplicate], the positive class first), not of class 1.
    gold 0 0 0 1 1 1 1 1; seed 1 predicts 0 0 1 1 1 1 1 0: class 0 TP 2, FN 1, FP 1 -> F1 4/6 = 66.67 %
    (class 1: 8/10 = 80 %); seed 2 predicts 0 1 1 1 1 1 1 1: class 0 TP 1, FN 2 -> F1 2/4 = 50 % (class 1: 83.33 %).
    Mean 58.33, sample sd 16.67 / sqrt(2) = 11.79, worst 50 at seed 2; the seeds differ on 2 of 8 examples: churn 25 %."""
    from mtkd.analysis.run import _steadiness_rows
    y = np.array([0, 0, 0, 1, 1, 1, 1, 1])
    onehot = lambda p: np.eye(2)[p]   # noqa: E731
    seeds = {1: onehot([0, 0, 1, 1, 1, 1, 1, 0]), 2: onehot([0, 1, 1, 1, 1, 1, 1, 1])}
    m = Model("multi_average", "multi", seeds[1], 58.33, seeds=[1, 2], seed_logits=seeds)
    t = TaskEval("dup", ["duplicate", "not_duplicate"], "f1", 2.0, y, [m], [], "eval", y, {}, Path("m"), pos_label=0)
    [row] = _steadiness_rows([t])
    assert row[:8] == ["dup", "multi_average", "multi", "2", "58.33", "11.79", "50.00", "2"]
    assert row[8] == "25.00"


def _example_model(method, kind, correct, labels):
    """A model right exactly on the examples where `correct` is True (2 classes), eval metric = its accuracy."""
    pred = np.where(correct, labels, 1 - labels)
    logits = np.eye(2)[pred].astype(np.float32)
    acc = 100.0 * float(correct.mean())
    return Model(method, kind, logits, acc, seeds=[42], seed_logits={42: logits}, val_metric=acc)


def _gap_task(teacher_right: int, n: int = 400) -> TaskEval:
    """400 examples; the no-KD baseline is right on the first 300, the teacher on the first `teacher_right`, the
    single-teacher student on the first 310 and the multi-teacher one on the first 305."""
    labels = np.arange(n) % 2
    first = lambda k: np.arange(n) < k   # noqa: E731
    models = [_example_model("t", "teacher", first(teacher_right), labels),
              _example_model("no_kd", "baseline", first(300), labels),
              _example_model("kd_t", "single", first(310), labels),
              _example_model("m_avg", "multi", first(305), labels)]
    return TaskEval("x", ["a", "b"], "accuracy", 2.0, labels, models, ["t"], "eval", labels, {}, Path("m"))


def test_gap_closed_is_undefined_where_the_teacher_is_not_above_the_baseline():
    from mtkd.analysis import significance
    from mtkd.report.answer import _no_gap
    # teacher right on 360 of 400, baseline on 300: the gap (+15 pp) has a CI far above 0 -> gap closed defined
    sig = significance.task_significance(_gap_task(360), n_resamples=500)
    s = gap.task_summary(_gap_task(360), sig)
    assert sig["gap_defined"] and s["best_student"]["gap_closed_pct"] == pytest.approx(100 * 10 / 60, abs=1e-4)   # kd_t: 310
    lo, hi = s["best_student"]["gap_closed_ci_pct"]
    assert lo < 100 * 10 / 60 < hi and _no_gap(s) == "n/a"
    # teacher right on 302: +0.5 pp over the baseline, its CI reaches below 0 -> no share of it is reported,
    # where the ratio would otherwise say the student closed 500% of it
    assert gap.gap_closed(310 / 4, 300 / 4, 302 / 4) == pytest.approx(500.0)
    sig = significance.task_significance(_gap_task(302), n_resamples=500)
    s = gap.task_summary(_gap_task(302), sig)
    assert not sig["gap_defined"] and sig["gap_denominator_ci"][0] <= 0 < sig["gap_denominator_ci"][1]
    assert s["best_student"]["gap_closed_pct"] is None and s["gap_closed_pct"]["m_avg"] is None
    assert sig["gap_ci"] == {} and sig["gap_samples"] is None
    assert s["teacher_minus_baseline_pp"] == pytest.approx(0.5)
    assert _no_gap(s).startswith("n/a: teacher − baseline +0.50 [")
    agg = gap.success_metrics([_gap_task(302)], {"x": sig})
    assert agg["average_gap_closed_by_best_student_pct"] is None
