"""Steadiness over seeds (analysis.stability) and its columns in the multi-seed summary, against hand computations."""
import math

import numpy as np
import pytest

from mtkd.analysis.stability import churn, churn_interval, disagreement, stability
from mtkd.sweeps import Point, Result, seed_summary
from mtkd.tasks import TaskData

# three seeds, four eval examples: pairs (1,2) differ on example 2, (1,3) on 0 and 2, (2,3) on 0
PREDS = {1: np.array([0, 1, 1, 0]), 2: np.array([0, 1, 0, 0]), 3: np.array([1, 1, 0, 0])}


def test_churn_by_hand():
    """Churn is the mean over seed pairs of the share of examples predicted differently: (1/4 + 2/4 + 1/4) / 3."""
    p = np.stack(list(PREDS.values()))
    np.testing.assert_allclose(disagreement(p), [2 / 3, 0, 2 / 3, 0])
    assert churn(p) == pytest.approx(100 / 3)
    assert churn(p[:2]) == pytest.approx(25.0)                        # one pair
    assert churn(np.stack([p[0], p[0], p[0]])) == 0.0                 # identical seeds never churn
    assert math.isnan(churn(p[:1]))                                   # one seed: no pair


def test_churn_interval_is_a_bootstrap_over_examples():
    """The interval holds the churn, stays within the per-example extremes, narrows with more examples, and is a
    point when every example disagrees equally."""
    rng = np.random.default_rng(0)
    base = rng.integers(0, 2, 400)
    flip = lambda share: np.where(rng.random(400) < share, 1 - base, base)
    p = np.stack([base, flip(0.1), flip(0.2)])
    lo, hi = churn_interval(p)
    assert lo < churn(p) < hi and 0 < lo and hi < 100
    lo_small, hi_small = churn_interval(p[:, :40])
    assert hi_small - lo_small > hi - lo
    assert churn_interval(np.stack([base, 1 - base])) == (100.0, 100.0)
    assert all(math.isnan(v) for v in churn_interval(p[:1]))


def test_stability_spread_and_worst_seed():
    st = stability({1: 80.0, 2: 82.0, 3: 84.0}, PREDS)
    assert (st.n_seeds, st.mean, st.std, st.worst, st.worst_seed) == (3, 82.0, 2.0, 80.0, 1)
    assert st.churn == pytest.approx(100 / 3) and st.churn_low <= st.churn <= st.churn_high
    one = stability({5: 70.0})
    assert one.worst == 70.0 and math.isnan(one.std) and math.isnan(one.churn)


def test_seed_summary_columns_by_hand():
    """`mtkd seeds` rows carry worst, worst_seed and churn (with its interval), computed per method over its seeds."""
    task = TaskData("demo", ("neg", "pos"), "accuracy", {})
    scores = {"kd_a": [80.0, 82.0, 84.0], "multi_x": [75.0, 75.0, 76.0]}
    types = {"kd_a": "single", "multi_x": "multi"}
    steady = np.array([0, 1, 1, 0])
    results = [Result(Point(f"seed={s}", (str(s),), None), m, types[m], "point", {}, {"demo": v[s - 1]}, v[s - 1],
                      {"demo": v[s - 1]}, v[s - 1], {"demo": PREDS[s] if m == "kd_a" else steady})
               for s in (1, 2, 3) for m, v in scores.items()]
    table, _ = seed_summary([task], results)
    col = {c: i for i, c in enumerate(table.columns)}
    rows = {r[col["method"]]: r for r in table.rows}
    a, x = rows["kd_a"], rows["multi_x"]
    assert [a[col[c]] for c in ("std", "worst", "worst_seed", "churn")] == ["2.00", "80.00", "1", "33.33"]
    assert float(a[col["churn_ci95_low"]]) <= 33.33 <= float(a[col["churn_ci95_high"]])
    assert [x[col[c]] for c in ("worst", "worst_seed", "churn", "churn_ci95_low", "churn_ci95_high")] == \
        ["75.00", "1", "0.00", "0.00", "0.00"]
    paired = rows["multi_x - kd_a"]
    assert paired[col["churn"]] == "" and paired[col["share_multi_wins"]] == "0.00"


def test_analysis_steadiness_table_on_a_multi_seed_run(tmp_path):
    """RUN/analysis/steadiness.csv: one row per model with several seeds (students here; teachers have one), its
    churn recomputed by hand from the per-seed eval logits the run wrote; a one-seed run has no such table."""
    import csv
    import json
    from _fake_run import build_fake_run
    from mtkd.analysis.run import analyze
    run = build_fake_run(tmp_path / "multi", seeds=(0, 3, 4))
    out = analyze(run, n_resamples=200)
    with open(out / "steadiness.csv", newline="") as f:
        rows = {(r["task"], r["model"]): r for r in csv.DictReader(f)}
    man = json.loads((run / "bin" / "eval" / "manifest.json").read_text())
    students = [m for m in man["models"] if m["type"] != "teacher"]
    assert set(rows) == {(t, m["method"]) for t in ("bin", "tri") for m in students}
    entry = next(m for m in students if m["method"] == "multi_average")
    preds = [np.load(run / "bin" / "eval" / entry["seed_files"][s]).argmax(1) for s in ("0", "3", "4")]
    by_hand = 100 * np.mean([np.mean(preds[i] != preds[j]) for i, j in ((0, 1), (0, 2), (1, 2))])
    row = rows[("bin", "multi_average")]
    assert float(row["churn (%)"]) == pytest.approx(by_hand, abs=0.005) and row["seeds"] == "3"
    accs = {s: m["eval"]["accuracy"] for s, m in entry["seed_metrics"].items()}
    assert float(row["worst (%)"]) == pytest.approx(min(accs.values()), abs=0.005)
    assert row["worst seed"] == min(accs, key=accs.get)
    assert float(row["metric (%)"]) == pytest.approx(np.mean(list(accs.values())), abs=0.005)
    assert "steadiness" in [t["name"] for t in json.loads((out / "manifest.json").read_text())["tables"]]
    single = analyze(build_fake_run(tmp_path / "one"), n_resamples=200)
    assert not (single / "steadiness.csv").exists()
    # accuracy by agreement region pools the seeds too (the mean of each seed's region accuracy)
    from mtkd.analysis import agreement
    labels = np.load(run / "bin" / "eval" / man["labels_eval"])
    teachers = np.stack([np.load(run / "bin" / "eval" / m["file"]).argmax(1) for m in man["models"] if m["type"] == "teacher"])
    region = agreement.regions(teachers)
    by_hand = np.mean([agreement.region_accuracy(p, labels, region) for p in preds], axis=0)
    with open(out / "agreement_accuracy.csv", newline="") as f:
        row = next(r for r in csv.DictReader(f) if (r["task"], r["model"]) == ("bin", "multi_average"))
    cells = list(row.values())[3:3 + len(by_hand)]
    assert [float(c) if c != "n/a" else math.nan for c in cells] == pytest.approx(list(by_hand), abs=0.005, nan_ok=True)
    assert float(row["overall acc (%)"]) == pytest.approx(100 * np.mean([np.mean(p == labels) for p in preds]), abs=0.005)
