"""Headroom (analysis/headroom.py) on hand-computed cases: ensembles, oracle, error overlap, the CI and the reading."""
import math

import numpy as np
import pytest

from mtkd.analysis import headroom

Y = np.array([0, 0, 1, 1, 1, 0])
PREDS = {"t1": [0, 0, 1, 0, 1, 1],    # wrong on 3, 5: 66.67%
         "t2": [0, 1, 1, 1, 0, 0],    # wrong on 1, 4: 66.67%
         "t3": [1, 0, 1, 1, 1, 0]}    # wrong on 0:    83.33% (the best)


def one_hot_logits(p, scale=2.0):
    return np.eye(2)[np.asarray(p)] * scale


def teachers(preds=PREDS):
    return {n: {"validation": one_hot_logits(p), "eval": one_hot_logits(p)} for n, p in preds.items()}


def test_ensembles_oracle_and_overlap_by_hand():
    r = headroom.task_headroom("toy", teachers(), {"validation": Y, "eval": Y}, "accuracy", 2, n_resamples=2000)
    ev = {x["model"]: x for x in r["rows"] if x["split"] == "eval"}
    assert r["best_teacher"] == "t3" and ev["t3"]["kind"] == "teacher (best)"
    assert ev["t1"]["value"] == pytest.approx(400 / 6) and ev["t3"]["value"] == pytest.approx(500 / 6)
    # every ensemble is right everywhere: the majority is right on each example (the errors never overlap)
    for e in headroom.ENSEMBLES:
        assert ev[e]["value"] == pytest.approx(100.0) and ev[e]["diff_vs_best"] == pytest.approx(100 / 6)
    assert ev["oracle"]["value"] == pytest.approx(100.0)
    pairs = {(p["teacher_a"], p["teacher_b"]): p for p in r["pairs"] if p["split"] == "eval"}
    assert pairs[("t1", "t2")]["both_wrong"] == 0 and pairs[("t1", "t2")]["ratio"] == 0
    assert pairs[("t1", "t3")]["expected_if_independent"] == pytest.approx(100 * (2 / 6) * (1 / 6))
    # the only discordant example is #0: a resample without it (P = (5/6)^6 = 0.33) gives 0 -> CI from 0
    assert ev["logit_average"]["ci_low"] == 0 and ev["logit_average"]["ci_high"] == pytest.approx(100 * 3 / 6, abs=17)
    assert r["headline"]["model"] == "logit_average"                 # ties on validation: the first ensemble
    assert "no headroom resolved" in r["reading"]


def test_weighted_and_vote_differ_from_the_average_where_they_should():
    # two weak teachers agree against a strong confident one: the vote follows them, the logit average the
    # confident one, and validation weights (t_strong 100, weak 50 each) tie with the vote's sum
    y = np.array([1, 1, 0, 0])
    strong = np.array([[0, 9.0], [0, 9.0], [9.0, 0], [9.0, 0]])                 # right everywhere, confident
    weak = np.array([[1.0, 0], [1.0, 0], [1.0, 0], [1.0, 0]])                   # always class 0
    z = np.stack([strong, weak, weak])
    ens = headroom.ensemble_preds(z, np.array([100.0, 50.0, 50.0]))
    assert ens["majority_vote"].tolist() == [0, 0, 0, 0]                        # two votes beat one
    assert ens["logit_average"].tolist() == [1, 1, 0, 0]                        # 9 > 1 + 1
    assert ens["weighted"].tolist() == [1, 1, 0, 0]                             # 0.5 * 9 > 0.25 + 0.25
    p = headroom.softmax(z).mean(0)
    assert ens["prob_average"].tolist() == p.argmax(-1).tolist()
    assert headroom.oracle_preds(z, y, best=1).tolist() == [1, 1, 0, 0]         # the strong one is right


def test_majority_vote_ties_go_to_the_most_probable_tied_class():
    z = np.stack([np.array([[3.0, 0, 0]]), np.array([[0, 0.5, 0]]), np.array([[0, 0, 0.2]])])   # one vote each
    assert headroom.ensemble_preds(z, np.ones(3))["majority_vote"].tolist() == [0]


def test_resolved_headroom_and_an_f1_task_with_its_positive_class():
    """Three teachers each wrong on a disjoint 20% of 600 examples: the vote is right everywhere, +20 pp
    over the best teacher with a CI far from 0; F1 of class 0 (pos_label 0) is the metric."""
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 600)
    order = rng.permutation(600)
    preds = {}
    for k in range(3):
        p = y.copy()
        wrong = order[k * 120:(k + 1) * 120]
        p[wrong] = 1 - p[wrong]
        preds[f"t{k}"] = p
    r = headroom.task_headroom("toy", teachers(preds), {"validation": y, "eval": y}, "f1", 2, pos_label=0,
                               n_resamples=1000)
    head = r["headline"]
    assert head["value"] == pytest.approx(100.0) and head["ci_low"] > 10
    best = next(x for x in r["rows"] if x["split"] == "eval" and x["model"] == r["best_teacher"])
    from sklearn.metrics import f1_score
    assert best["value"] == pytest.approx(100 * f1_score(y, preds[r["best_teacher"]], pos_label=0))
    assert "room to beat" in r["reading"]
    md = headroom.markdown([r])
    assert "## toy (f1)" in md and "room to beat" in md and "| t0 · t1 |" in md


def test_an_ensemble_worse_than_the_best_teacher_reads_so():
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, 500)
    good = y.copy()
    bad = [np.where(rng.random(500) < 0.45, 1 - y, y) for _ in range(2)]
    noisy = {"good": good, "bad1": bad[0], "bad2": np.where(bad[0] == y, bad[1], bad[0])}   # bad ones err together
    r = headroom.task_headroom("toy", teachers(noisy), {"validation": y, "eval": y}, "accuracy", 2, n_resamples=500)
    # the weighted logit average follows the perfect teacher less than the two that share errors
    assert r["best_teacher"] == "good"
    ev = {x["model"]: x for x in r["rows"] if x["split"] == "eval"}
    assert ev["majority_vote"]["ci_high"] < 0 and not math.isnan(ev["oracle"]["value"])


def test_mtkd_headroom_runs_only_the_teacher_stages_and_matches_the_logit_store(tmp_path, capsys):
    """`mtkd headroom CONFIG --out RUN`: data, teachers and logits only (no student folder), the printed table
    and RUN/headroom/*.csv, equal to task_headroom on the cached logits; a config with one teacher is refused."""
    import json
    from mtkd.cli import main
    cfg = tmp_path / "c.yaml"
    cfg.write_text("""
name: hr
tasks: [{name: demo, demo_size: 300}]
teachers:
  - {name: t1, model: tiny, epochs: 2, lr: 1.0e-3, max_length: 32}
  - {name: tf, kind: tfidf}
student: {model: tiny, layers: 1, epochs: 1, max_length: 32}
""")
    run = tmp_path / "run"
    assert main(["headroom", str(cfg), "--out", str(run)]) == 0
    out = capsys.readouterr().out
    assert not (run / "demo" / "students").exists()
    assert "## demo (accuracy)" in out and "| t1 · tf |" in out and (run / "headroom" / "headroom.csv").is_file()
    y = {s: np.array([json.loads(l)["label"] for l in (run / "demo" / "data" / f"{s}.jsonl").read_text().splitlines()])
         for s in ("validation", "eval")}
    z = {n: {s: np.load(run / "demo" / "logits" / n / f"{s}.npy") for s in y} for n in ("t1", "tf")}
    r = headroom.task_headroom("demo", z, y, "accuracy", 2)
    assert r["reading"] in out
    csv_rows = (run / "headroom" / "headroom.csv").read_text().splitlines()
    assert csv_rows[0] == ",".join(headroom.COLUMNS) and len(csv_rows) == 1 + 2 * (2 + 4 + 1)
    assert main(["headroom", str(run / "config.yaml")]) == 0 and "cached" in capsys.readouterr().out   # cached
    one = tmp_path / "one.yaml"
    one.write_text(cfg.read_text().replace("  - {name: tf, kind: tfidf}\n", ""))
    assert main(["headroom", str(one), "--out", str(tmp_path / "r1")]) == 2
    assert capsys.readouterr().err.count("\n") == 1


def test_the_headroom_table_opens_the_report(tmp_path):
    """analyze writes analysis/headroom.csv from the teachers' validation/eval logits (the run seed's) and
    success_metrics' headroom; the report's first section after the answer is that table."""
    import json
    import sys
    from pathlib import Path
    sys.path.insert(0, str(Path(__file__).parent))
    from _fake_run import build_fake_run
    from mtkd.analysis import analyze
    from mtkd.analysis.load import load_run
    from mtkd.report import build_report
    run = build_fake_run(tmp_path)
    analyze(run, n_resamples=300)
    md, _ = build_report(run)
    text = md.read_text()
    sections = [line for line in text.splitlines() if line.startswith("## ")]
    assert sections[:3] == ["## The answer", "## Contents", "## Headroom: the teachers together vs the best teacher"]
    t = load_run(run)[0]
    expected = headroom.from_task(t, n_resamples=300)
    success = json.loads((run / "analysis" / "success_metrics.json").read_text())
    assert success["headroom"][t.name]["reading"] == expected["reading"]
    assert expected["reading"] in text and expected["best_teacher"] == "t_a"
    rows = (run / "analysis" / "headroom.csv").read_text().splitlines()
    assert rows[0] == ",".join(headroom.COLUMNS) and len(rows) == 1 + 2 * 2 * (3 + 4 + 1)   # 2 tasks x 2 splits


def test_every_team_of_teachers_by_hand():
    """subset_headroom on the three toy teachers (validation = eval): the four teams, each team's best member
    chosen on validation (t3 wherever it is a member), its validation-best ensemble, and the hand-computed
    differences. t1+t2 (equal strength, disjoint errors): where two one-hot teachers disagree every ensemble
    ties and takes class 0 — right on #1 and #5, wrong on #3 and #4 — so 4/6, the best member's score, +0.
    All three: the majority is right everywhere, +100/6 over t3."""
    rows = headroom.subset_headroom("toy", teachers(), {"validation": Y, "eval": Y}, "accuracy", 2, n_resamples=500)
    by = {r["teachers"]: r for r in rows}
    assert list(by) == ["t1+t2", "t1+t3", "t2+t3", "t1+t2+t3"] and [r["size"] for r in rows] == [2, 2, 2, 3]
    assert by["t1+t2"]["best_member"] == "t1" and by["t1+t3"]["best_member"] == "t3" == by["t1+t2+t3"]["best_member"]
    assert by["t1+t2"]["spread_val"] == 0 and by["t1+t3"]["spread_val"] == pytest.approx(100 / 6)
    assert by["t1+t2"]["ensemble_eval"] == pytest.approx(400 / 6) and by["t1+t2"]["diff_vs_best"] == pytest.approx(0)
    assert by["t1+t2"]["error_ratio"] == 0                                    # no example both get wrong
    assert by["t1+t3"]["diff_vs_strongest_on_eval"] == by["t1+t3"]["diff_vs_best"]   # t3 is best on both splits
    assert by["t1+t2+t3"]["ensemble_eval"] == pytest.approx(100) and by["t1+t2+t3"]["diff_vs_best"] == pytest.approx(100 / 6)
    assert by["t1+t2+t3"]["ensemble"] == "logit_average"                      # all four tie on validation: the first
    lo, hi = by["t1+t2+t3"]["ci_low"], by["t1+t2+t3"]["ci_high"]
    assert lo == 0 and 0 < hi <= 50 + 1e-9                                    # as the task-level CI above
    md = headroom.subsets_markdown(rows)
    assert md.index("| t1+t2+t3 |") < md.index("| t1+t2 |")                   # largest headroom first


def test_mtkd_headroom_writes_the_teams_table_with_three_teachers(tmp_path, capsys):
    """With three or more teachers `mtkd headroom` also writes RUN/headroom/subsets.{csv,md}: one row per team,
    equal to subset_headroom on the cached logits."""
    import json
    from mtkd.cli import main
    cfg = tmp_path / "c.yaml"
    cfg.write_text("""
name: teams
tasks: [{name: demo, demo_size: 300}]
teachers: [{name: a, kind: tfidf}, {name: b, kind: tfidf, C: 0.05, ngram_max: 1}, {name: c, kind: tfidf, C: 100.0}]
student: {model: tiny, layers: 1, epochs: 1, max_length: 32}
""")
    run = tmp_path / "run"
    assert main(["headroom", str(cfg), "--out", str(run)]) == 0
    assert "which teams of teachers have headroom" in capsys.readouterr().out
    lines = (run / "headroom" / "subsets.csv").read_text().splitlines()
    assert lines[0] == ",".join(headroom.SUBSET_COLUMNS) and len(lines) == 1 + 4
    y = {s: np.array([json.loads(l)["label"] for l in (run / "demo" / "data" / f"{s}.jsonl").read_text().splitlines()])
         for s in ("validation", "eval")}
    z = {n: {s: np.load(run / "demo" / "logits" / n / f"{s}.npy") for s in y} for n in "abc"}
    rows = headroom.subset_headroom("demo", z, y, "accuracy", 2)
    assert [r["teachers"] for r in rows] == [l.split(",")[1] for l in lines[1:]]
    assert "| a+b+c |" in (run / "headroom" / "subsets.md").read_text() and (run / "headroom" / "subsets.png").is_file()
