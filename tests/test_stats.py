"""analysis/stats.py and significance.py against scikit-learn, SciPy, statsmodels and hand computations."""
import dataclasses
import json
import math
import zlib

import numpy as np
import pytest
from scipy import stats as sps
from sklearn.metrics import accuracy_score, f1_score, matthews_corrcoef

from _fake_run import build_fake_run
from mtkd.analysis import analyze, gap, stats
from mtkd.analysis.load import load_run
from mtkd.analysis.significance import significance


def sk(metric, y, p, c, pos_label=1):
    if metric == "accuracy":
        return 100 * accuracy_score(y, p)
    if metric == "f1":
        return 100 * f1_score(y, p, average="binary" if c == 2 else "macro", pos_label=pos_label, zero_division=0)
    return 100 * matthews_corrcoef(y, p)


@pytest.mark.parametrize("metric", ["accuracy", "f1", "matthews"])
@pytest.mark.parametrize("c", [2, 3, 4])
def test_metric_from_confusion_matches_sklearn(metric, c):
    rng = np.random.default_rng(c)
    y = rng.integers(0, c, 300)
    cases = [np.where(rng.random(300) < 0.7, y, rng.integers(0, c, 300)),   # a typical model
             np.zeros(300, int),                                             # one class predicted: MCC 0, F1 0/undefined
             np.where(y == c - 1, 0, y)]                                     # a class never predicted
    for p in cases:
        got = stats.metric_from_confusion(stats.confusion(y, p, c), metric)
        assert got == pytest.approx(sk(metric, y, p, c), abs=1e-9)
    y2 = np.where(y == c - 1, 0, y)            # a class absent from labels and predictions: left out of macro F1
    got = stats.metric_from_confusion(stats.confusion(y2, y2, c), metric)
    assert got == pytest.approx(sk(metric, y2, y2, c), abs=1e-9)


@pytest.mark.parametrize("metric", ["f1", "matthews"])
def test_bootstrap_resamples_are_index_resamples(metric):
    """Each bootstrap value is the metric (sklearn's) on a resample of example indices drawn by the seeded
    generator, the same indices for both models, averaged over a model's seeds."""
    rng = np.random.default_rng(1)
    c, n = 3, 200
    y = rng.integers(0, c, n)
    a = np.where(rng.random((2, n)) < 0.8, y, rng.integers(0, c, (2, n)))    # two seeds
    b = np.where(rng.random(n) < 0.6, y, rng.integers(0, c, n))[None, :]
    out = stats.bootstrap_metrics(y, {"a": a, "b": b}, metric, c, n_resamples=5, seed=3, chunk=5)
    idx = np.random.default_rng(3).integers(0, n, size=(5, n), dtype=np.int32)
    for r in range(5):
        i = idx[r]
        assert out["a"][r] == pytest.approx(np.mean([sk(metric, y[i], s[i], c) for s in a]), abs=1e-9)
        assert out["b"][r] == pytest.approx(sk(metric, y[i], b[0][i], c), abs=1e-9)


def test_paired_accuracy_difference_matches_scipy_bootstrap():
    """The percentile CI of an accuracy difference agrees with scipy.stats.bootstrap (paired, percentile) on the
    per-example correctness, and with the normal approximation mean ± 1.96 sd/sqrt(n)."""
    rng = np.random.default_rng(7)
    n = 1000
    y = rng.integers(0, 2, n)
    a = np.where(rng.random(n) < 0.85, y, 1 - y)
    b = np.where(rng.random(n) < 0.80, y, 1 - y)
    out = stats.bootstrap_metrics(y, {"a": a, "b": b}, "accuracy", 2)
    low, high = stats.percentile_ci(out["a"] - out["b"])
    ra, rb = 100.0 * (a == y), 100.0 * (b == y)
    ref = sps.bootstrap((ra, rb), lambda u, v, axis=-1: np.mean(u - v, axis=axis), paired=True, vectorized=True,
                        n_resamples=10_000, method="percentile", rng=np.random.default_rng(0)).confidence_interval
    assert low == pytest.approx(ref.low, abs=0.3) and high == pytest.approx(ref.high, abs=0.3)
    d = ra - rb
    half = 1.96 * d.std(ddof=1) / math.sqrt(n)
    assert low == pytest.approx(d.mean() - half, abs=0.3) and high == pytest.approx(d.mean() + half, abs=0.3)
    assert low < d.mean() < high


def test_bootstrap_is_deterministic_and_pooled_over_seeds():
    rng = np.random.default_rng(2)
    y = rng.integers(0, 2, 300)
    a = np.where(rng.random(300) < 0.8, y, 1 - y)
    one = stats.bootstrap_metrics(y, {"a": a}, "accuracy", 2, n_resamples=500)
    assert np.array_equal(one["a"], stats.bootstrap_metrics(y, {"a": a}, "accuracy", 2, n_resamples=500)["a"])
    assert not np.array_equal(one["a"], stats.bootstrap_metrics(y, {"a": a}, "accuracy", 2, 500, seed=1)["a"])
    twice = stats.bootstrap_metrics(y, {"a": np.stack([a, a])}, "accuracy", 2, n_resamples=500)
    assert np.allclose(twice["a"], one["a"])                       # two identical seeds = one seed
    assert one["a"].mean() == pytest.approx(100 * (a == y).mean(), abs=0.5)


def test_permutation_p_on_accuracy_is_mcnemar_by_randomization():
    # a right / b wrong on 8 examples, the reverse on 2, both right on 5: each swap flips one discordant
    # example's sign, so p = P(|2X - 10| >= 6) = 2 P(X <= 2), X ~ Bin(10, 1/2): the exact McNemar p
    y = np.zeros(15, int)
    a = np.array([0] * 8 + [1] * 2 + [0] * 5)
    b = np.array([1] * 8 + [0] * 2 + [0] * 5)
    p = stats.permutation_p(y, [(a, b)], "accuracy", 2, n_permutations=40_000)
    assert p == pytest.approx(sps.binomtest(2, 10, 0.5).pvalue, abs=0.006)
    assert p == stats.permutation_p(y, [(b, a)], "accuracy", 2, n_permutations=40_000)   # two-sided, same draws
    assert stats.permutation_p(y, [(a, a)], "accuracy", 2) == 1.0
    assert p != stats.permutation_p(y, [(a, b)], "accuracy", 2, n_permutations=40_000, seed=1)


def test_permutation_p_sees_an_f1_loss_that_right_wrong_counts_cannot():
    # a misses 600 of 2000 positives, b flags 600 of 18000 negatives: equally many errors each way (McNemar
    # and the accuracy test: p = 1), but F1 82.4 vs 87.0 -- the test is on the metric, so it sees it
    y = np.zeros(20_000, int)
    y[:2000] = 1
    a, b = y.copy(), y.copy()
    a[:600], b[2000:2600] = 0, 1
    assert stats.permutation_p(y, [(a, b)], "accuracy", 2) == 1.0
    assert stats.permutation_p(y, [(a, b)], "f1", 2, n_permutations=2000) < 0.01
    # several seed pairs: the test is of the mean difference over them (200 positives, 60 errors each way)
    y = np.zeros(2000, int)
    y[:200] = 1
    a, b = y.copy(), y.copy()
    a[:60], b[200:260] = 0, 1
    one = stats.permutation_p(y, [(a, b)], "f1", 2, n_permutations=4000)
    assert 0.03 < one < 0.2                                                           # alone: not significant
    # two seeds that repeat each other are not twice the evidence: one coin per example for both pairs
    assert stats.permutation_p(y, [(a, b)] * 2, "f1", 2, n_permutations=4000) == one
    a2, b2 = a.copy(), b.copy()                        # a second seed pair, discordant on other examples
    a2[:60], a2[60:120], b2[200:260], b2[260:320] = 1, 0, 0, 1
    assert stats.permutation_p(y, [(a, b), (a2, b2)], "f1", 2, n_permutations=4000) < 0.03   # new evidence
    assert stats.permutation_p(y, [(a, b), (a, a)], "f1", 2, n_permutations=4000) == one   # no discordance: no change
    assert stats.permutation_p(y, [(a, b), (b, a)], "f1", 2) == 1.0                    # opposite seeds: mean 0


@pytest.mark.parametrize("metric,n_classes,pos_label", [("f1", 3, 1), ("matthews", 3, 1), ("f1", 2, 0)])
def test_permutation_p_against_exact_enumeration_with_sklearn(metric, n_classes, pos_label):
    """Every one of the 2^k swap patterns of the k examples discordant in some seed pair (two pairs; one coin
    per example shared by both pairs), scored with scikit-learn on the swapped predictions: the exact
    permutation p, which the random swaps must approach."""
    rng = np.random.default_rng(7)
    y = rng.integers(0, n_classes, 40)
    pairs = []
    for flips in (4, 3):   # each pair: a and b differ on `flips` examples
        a = np.where(rng.random(40) < 0.7, y, rng.integers(0, n_classes, 40))
        b = a.copy()
        idx = rng.choice(40, flips, replace=False)
        b[idx] = np.where(a[idx] == y[idx], (y[idx] + 1) % n_classes, y[idx])
        pairs.append((a, b))
    union = np.unique(np.concatenate([np.flatnonzero(a != b) for a, b in pairs]))

    def stat(swapped):
        return np.mean([sk(metric, y, a2, n_classes, pos_label) - sk(metric, y, b2, n_classes, pos_label)
                        for a2, b2 in swapped])

    def swap(a, b, where):
        a2, b2 = a.copy(), b.copy()
        a2[where], b2[where] = b[where], a[where]
        return a2, b2

    observed, k, hits = abs(stat(pairs)), len(union), 0
    for code in range(2 ** k):
        where = union[np.array([(code >> i) & 1 for i in range(k)], bool)]
        hits += abs(stat([swap(a, b, where) for a, b in pairs])) >= observed - 1e-9
    exact = hits / 2 ** k
    p = stats.permutation_p(y, pairs, metric, n_classes, n_permutations=20_000, pos_label=pos_label)
    assert 0 < exact < 1 and p == pytest.approx(exact, abs=0.015)


def _null_rejection_rate(test, repeats=200, n=872, seeds=3, churn=0.03, level=0.05, seed=0):
    """Share of `repeats` simulated eval sets on which `test(labels, pairs)` gives p <= level, under a
    population null with correlated seeds: each example has a fixed preference (A right and B wrong, the
    reverse, or neither, symmetric in sign); each seed keeps it except on a `churn` share of examples."""
    rng = np.random.default_rng(seed)
    rejected = 0
    for _ in range(repeats):
        y = rng.integers(0, 2, n)
        base_a, base_b = rng.random(n) < 0.85, rng.random(n) < 0.85     # exchangeable: the null holds
        pairs = []
        for _ in range(seeds):
            ca = np.where(rng.random(n) < churn, ~base_a, base_a)
            cb = np.where(rng.random(n) < churn, ~base_b, base_b)
            pairs.append((np.where(ca, y, 1 - y), np.where(cb, y, 1 - y)))
        rejected += test(y, pairs) <= level
    return rejected / repeats


def test_permutation_p_keeps_its_size_with_correlated_seeds():
    """At alpha = 0.05 the pooled test over 3 correlated seeds rejects a true (population) null at most
    7% of the time over 200 simulated eval sets. An independent coin per seed pair rejects ~20%."""
    def test(y, pairs):
        return stats.permutation_p(y, pairs, "accuracy", 2, n_permutations=400, seed=1)
    assert _null_rejection_rate(test) <= 0.07


def test_holm_by_hand():
    # Holm: sorted 0.01, 0.03, 0.04 -> 3*0.01, max(0.03, 2*0.03), max(0.06, 1*0.04)
    assert stats.holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    h = stats.holm([0.01, math.nan, 0.04])                         # NaN is not a test
    assert h[0] == pytest.approx(0.02) and math.isnan(h[1]) and h[2] == pytest.approx(0.04)


def test_significance_rows_and_average_on_a_fake_run(tmp_path):
    """Rows per multi-teacher student vs the validation-selected best single; the permutation test per shared
    seed and on the mean over seeds; Holm over all rows of all tasks; the AVG's distribution is the mean of the tasks'."""
    run = build_fake_run(tmp_path, seeds=(5, 1, 2))
    tasks = load_run(run)
    assert [m.seeds for m in tasks[0].models if m.method in ("t_a", "multi_average")] == [[5], [5, 1, 2]]
    sigs, avg = significance(tasks, n_resamples=2000)
    rows = [r for s in sigs.values() for r in s["rows"]]
    assert [(r["task"], r["method"], r["selected"]) for r in rows] == [
        ("bin", "multi_average", True), ("bin", "multi_weighted", False),
        ("tri", "multi_average", True), ("tri", "multi_weighted", False)]
    t = tasks[0]
    by = {m.method: m for m in t.models}
    r = rows[0]
    pairs = [(by["multi_average"].seed_logits[s].argmax(1), by["kd_t_a"].seed_logits[s].argmax(1)) for s in (5, 1, 2)]
    test = dict(metric=t.metric, n_classes=len(t.label_names), n_permutations=2000, pos_label=t.pos_label,
                seed=[stats.SEED, zlib.crc32(b"bin/multi_average")])
    assert list(r["p_per_seed"]) == [5, 1, 2] and r["seeds"] == 3
    assert list(r["p_per_seed"].values()) == pytest.approx([stats.permutation_p(t.labels, [p], **test) for p in pairs])
    assert r["p_value"] == pytest.approx(stats.permutation_p(t.labels, pairs, **test))
    assert [x["p_holm"] for x in rows] == pytest.approx(stats.holm([x["p_value"] for x in rows]))
    assert r["diff_pp"] == pytest.approx(by["multi_average"].metric - by["kd_t_a"].metric)
    assert avg["diff_pp"] == pytest.approx(np.mean([s["headline"]["diff_pp"] for s in sigs.values()]))
    assert avg["ci_low"] < avg["diff_pp"] < avg["ci_high"]


def test_kl_sum_and_prob_average_are_one_method(tmp_path):
    """kl_sum trains exactly as prob_average: where both are present kl_sum is never selected (even with the
    best validation score) and is not in the Holm family; its row stays, marked duplicate_of."""
    run = build_fake_run(tmp_path, val_acc={"bin": {"multi_weighted": 0.99}})
    for task in ("bin", "tri"):
        path = run / task / "eval" / "manifest.json"
        m = json.loads(path.read_text())
        for e in m["models"]:
            e["method"] = {"multi_weighted": "multi_kl_sum", "multi_average": "multi_prob_average"}.get(e["method"], e["method"])
        path.write_text(json.dumps(m))
    tasks = load_run(run)
    from mtkd.analysis.gap import selection
    assert selection(tasks[0])["multi"].method == "multi_prob_average"     # kl_sum has the best validation
    sigs, _ = significance(tasks, n_resamples=500)
    rows = [r for s in sigs.values() for r in s["rows"]]
    twins = [r for r in rows if r["method"] == "multi_kl_sum"]
    assert len(twins) == 2 and all(r["duplicate_of"] == "multi_prob_average" and math.isnan(r["p_holm"]) for r in twins)
    kept = [r for r in rows if not r["duplicate_of"]]
    assert [r["p_holm"] for r in kept] == pytest.approx(stats.holm([r["p_value"] for r in kept]))   # a family of 2


def test_significance_tests_the_task_metric_and_its_positive_class(tmp_path, monkeypatch):
    """The p-value is the permutation test on the task's own metric and pos_label (the fake run's tasks
    score accuracy: the binary one is relabelled F1 of class 0 here), on the seed pairs in order when the
    two students share no seed; its result is what the row reports."""
    run = build_fake_run(tmp_path, seeds=(5, 1))
    bin_task = dataclasses.replace(load_run(run)[0], metric="f1", pos_label=0)
    for m in bin_task.models:
        if m.method == "kd_t_a":   # the reference at other seeds than the multi-teacher students: zip order
            m.seed_logits = {f"x{s}": v for s, v in m.seed_logits.items()}
            m.seeds = list(m.seed_logits)
    calls, real = [], stats.permutation_p

    def spy(labels, pairs, metric, n_classes, **kw):
        calls.append((pairs, metric, n_classes, kw))
        return real(labels, pairs, metric, n_classes, **kw)

    monkeypatch.setattr(stats, "permutation_p", spy)
    sigs, _ = significance([bin_task], n_resamples=1000)
    r = sigs["bin"]["rows"][0]
    by = {m.method: m for m in bin_task.models}
    assert r["reference"] == "kd_t_a" and list(r["p_per_seed"]) == ["5/x5", "1/x1"]
    assert {(metric, n, kw["pos_label"], kw["n_permutations"]) for _, metric, n, kw in calls} == {("f1", 2, 0, 1000)}
    joint = [c for c in calls if len(c[0]) == 2]   # the test over both seed pairs, first row first
    pairs = [(by[r["method"]].seed_logits[s].argmax(1), by["kd_t_a"].seed_logits[f"x{s}"].argmax(1)) for s in (5, 1)]
    assert all(np.array_equal(x, y) for (a, b), (c, d) in zip(joint[0][0], pairs) for x, y in ((a, c), (b, d)))
    assert r["p_value"] == pytest.approx(real(bin_task.labels, pairs, "f1", 2, **joint[0][3]))

def test_selection_ignores_eval_on_a_fake_run(tmp_path):
    """Guards selection on validation: models best on eval but not on validation (multi_average, kd_t_a, t_a on
    bin) are not selected anywhere - significance.csv `selected`, success_metrics, gap closed's teacher."""
    run = build_fake_run(tmp_path, val_acc={"bin": {"multi_average": 0.50, "multi_weighted": 0.90, "kd_t_a": 0.55,
                                                     "t_a": 0.60, "t_b": 0.95}})
    out = analyze(run, n_resamples=1000)
    success = json.loads((out / "success_metrics.json").read_text())["tasks"]
    assert success["bin"]["best_multi"]["method"] == "multi_weighted"
    assert success["bin"]["best_single"]["method"] == "kd_t_b"
    assert success["bin"]["best_teacher"]["method"] == "t_b"
    assert success["tri"]["best_multi"]["method"] == "multi_average"   # untouched task: as before
    lines = (out / "significance.csv").read_text().splitlines()
    assert "bin,multi_weighted,kd_t_b," in lines[2] and lines[2].split(",")[9] == "true"
    assert "bin,multi_average,kd_t_b," in lines[1] and lines[1].split(",")[9] == "false"
    tasks = load_run(run)
    sel = gap.selection(tasks[0])
    assert sel["multi"].metric < max(m.metric for m in tasks[0].of_type("multi"))   # not the best on eval


def test_runs_written_before_the_multi_seed_format_still_load(tmp_path):
    """Readers default sanely: without seeds, seed files, validation files or metrics and train files, a model
    is one seed (the config's), a teacher's validation metric comes from its validation logits, a student without
    one is NaN and never selected, and there is no train confidence."""
    run = build_fake_run(tmp_path, train=False)
    path = run / "bin" / "eval" / "manifest.json"
    man = json.loads(path.read_text())
    del man["seeds"]
    for m in man["models"]:
        for k in ("seeds", "seed_files", "seed_validation_files", "seed_metrics", "validation_metrics"):
            m.pop(k)
        if m["type"] != "teacher":
            m.pop("validation_file")
    path.write_text(json.dumps(man))
    t = load_run(run)[0]
    by = {m.method: m for m in t.models}
    assert by["t_a"].seeds == [0] and list(by["multi_average"].seed_logits) == [0]
    y_val = np.load(run / "bin" / "eval" / "labels_validation.npy")
    va = np.load(run / "bin" / "eval" / "t_a.validation.npy").argmax(1)
    assert by["t_a"].val_metric == pytest.approx(100 * (va == y_val).mean())
    assert math.isnan(by["kd_t_a"].val_metric) and by["kd_t_a"].val_logits is None
    assert gap.selection(t)["teacher"].method == "t_a" and gap.selection(t)["single"] is None
    assert t.train_logits == {} and t.train_labels is None
