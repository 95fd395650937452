"""Sweeps, grids and seeds on tiny models: only students are retrained; the statistics by hand."""
import csv
import json
import math
import os
import re

import numpy as np
import pytest
import yaml

from mtkd.cli import main
from mtkd.config import RunConfig
from mtkd.sweeps import Param, Point, Result, Sweep, best_markdown, results_table, seed_summary, t_critical, t_interval
from mtkd.tasks import TaskData

TINY = """
name: tiny
seed: 7
tasks: [{name: demo, demo_size: 300}]
teachers:
  - {name: t1, model: tiny, epochs: 1, lr: 1.0e-3, max_length: 32}
  - {name: tf, kind: tfidf}
student: {model: tiny, layers: 1, epochs: 1, lr: 2.0e-3, max_length: 32}
distill: {strategies: [average]}
"""
PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    d = tmp_path_factory.mktemp("sweeps")
    (d / "tiny.yaml").write_text(TINY)
    assert main(["evaluate", str(d / "tiny.yaml"), "--out", str(d / "base")]) == 0
    return d / "base"


def rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def student_logits(point, method="multi_average"):
    return np.load(point / "demo" / "students" / method / "logits_eval.npy")


def assert_reused(point, base):
    """The point's teacher and logit files are the base run's (hard links; a copy keeps the mtime)."""
    for rel in ("teachers/t1/manifest.json", "teachers/tf/manifest.json", "logits/t1/train.npy"):
        a, b = (point / "demo" / rel).stat(), (base / "demo" / rel).stat()
        assert a.st_ino == b.st_ino or a.st_mtime_ns == b.st_mtime_ns, rel


def test_temperature_sweep_retrains_only_students(base, capsys):
    capsys.readouterr()
    assert main(["sweep", str(base), "--param", "distill.temperature=1,4"]) == 0
    log = capsys.readouterr().out
    folder = base / "sweeps" / "T"
    table = rows(folder / "sweep_results.csv")
    assert [(r["point"], r["T"], r["method"]) for r in table] == [
        (f"T={t}", t, m) for t in ("1", "4") for m in ("no_kd", "kd_t1", "kd_tf", "multi_average")]
    assert all(r["demo_acc"] == r["AVG"] for r in table)
    # teachers and logits found cached in every point, never rebuilt; the baseline comes from the base run
    assert not re.search(r"build .*/(teachers|logits)/", log)
    assert re.search(r"cached .*T=4/demo/teachers/t1", log)
    for t in ("1", "4"):
        assert_reused(folder / f"T={t}", base)
        assert not (folder / f"T={t}" / "demo" / "students" / "no_kd").exists()
    assert {r["trained_in"] for r in table if r["method"] == "no_kd"} == {"base run"}
    assert not np.array_equal(student_logits(folder / "T=1"), student_logits(folder / "T=4"))
    assert (folder / "sweep_T.png").read_bytes().startswith(PNG)
    # best.md names the point of the highest validation AVG (first on ties) and reports its eval AVG; a tiny
    # student may score the same at both points, which best.md then says (the rule itself: test_best_markdown_*)
    multi = [r for r in table if r["method"] == "multi_average"]
    top = max(multi, key=lambda r: float(r["val_AVG"]))
    best_line = next(l for l in (folder / "best.md").read_text().splitlines() if l.startswith("| multi_average"))
    tied = len({(r["val_AVG"], r["AVG"]) for r in multi}) == 1
    assert [c.strip() for c in best_line.split("|")[3:6]] == \
        ["the same at every point" if tied else top["point"], top["val_AVG"], top["AVG"]]
    assert "selected on validation" in (folder / "best.md").read_text()


def test_calibrate_sweep_retrains_only_the_kd_students(base, capsys):
    """distill.calibrate is sweepable like T: teachers and the baseline reused, the KD targets change."""
    capsys.readouterr()
    assert main(["sweep", str(base), "--param", "distill.calibrate=false,true", "--no-single"]) == 0
    folder = base / "sweeps" / "calibrate"
    table = rows(folder / "sweep_results.csv")
    assert [(r["point"], r["method"]) for r in table] == [
        (f"calibrate={v}", m) for v in ("false", "true") for m in ("no_kd", "multi_average")]
    assert {r["trained_in"] for r in table if r["method"] == "no_kd"} == {"base run"}
    assert not np.array_equal(student_logits(folder / "calibrate=false"), student_logits(folder / "calibrate=true"))
    # the false point is the base run's student (same key), the true one is not
    assert np.array_equal(student_logits(folder / "calibrate=false"), student_logits(base))
    # calibrated_average calibrates already: refused in one line at the point that would calibrate twice
    capsys.readouterr()
    assert main(["sweep", str(base), "--param", "distill.calibrate=true", "--strategies", "calibrated_average",
                 "--name", "twice"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "already calibrates" in err


def test_best_markdown_selects_on_validation_and_reports_eval(tmp_path):
    """The point with the best validation AVG is named even when another point has the better eval AVG;
    the worst likewise by validation. Fails if best.md selected on eval."""
    param = Param("distill.temperature", ("1", "2", "4"))
    points = [Point(f"T={t}", (t,), RunConfig()) for t in param.values]
    sweep = Sweep(tmp_path, RunConfig(), tmp_path / "sweeps" / "T", [param], points, True)
    scores = {"1": (70.0, 90.0), "2": (80.0, 60.0), "4": (60.0, 95.0)}   # T: (validation AVG, eval AVG)
    results = [Result(pt, "multi_average", "multi", "point", {}, {"demo": scores[pt.values[0]][1]},
                      scores[pt.values[0]][1], {"demo": scores[pt.values[0]][0]}, scores[pt.values[0]][0])
               for pt in points]
    line = next(l for l in best_markdown(sweep, results).splitlines() if l.startswith("| multi_average"))
    cells = [c.strip() for c in line.split("|")[1:-1]]
    assert cells[2:5] == ["T=2", "80.00", "60.00"]    # best on validation, its (worse) eval reported
    assert cells[5:8] == ["T=4", "60.00", "95.00"]    # worst on validation


def test_best_per_task_selects_on_each_tasks_validation(tmp_path):
    """With two tasks, best.md also names each task's own validation-best point (not the AVG's, not eval's)."""
    param = Param("distill.temperature", ("1", "2", "4"))
    points = [Point(f"T={t}", (t,), RunConfig()) for t in param.values]
    sweep = Sweep(tmp_path, RunConfig(), tmp_path / "sweeps" / "T", [param], points, True)
    # T: ({task: validation}, {task: eval}); AVG-best on validation is T=1, a's is T=2, b's is T=4
    scores = {"1": ({"a": 80.0, "b": 80.0}, {"a": 70.0, "b": 70.0}),
              "2": ({"a": 90.0, "b": 60.0}, {"a": 50.0, "b": 99.0}),
              "4": ({"a": 60.0, "b": 85.0}, {"a": 99.0, "b": 40.0})}
    results = [Result(pt, "multi_average", "multi", "point", {}, scores[pt.values[0]][1],
                      float(np.mean(list(scores[pt.values[0]][1].values()))), scores[pt.values[0]][0],
                      float(np.mean(list(scores[pt.values[0]][0].values())))) for pt in points]
    flat = {"a": 55.0, "b": 65.0}   # the baseline, from the base run: no point is chosen for it
    results += [Result(pt, "no_kd", "baseline", "base run", {}, flat, 60.0, flat, 60.0) for pt in points]
    text = best_markdown(sweep, results, {"a": "accuracy", "b": "f1"})
    rows = [[c.strip() for c in l.split("|")[1:-1]] for l in text.splitlines() if l.startswith("| multi_average")]
    assert rows[0][2:5] == ["T=1", "80.00", "70.00"]                 # the AVG table
    assert rows[1:] == [["multi_average", "multi", "a", "accuracy", "T=2", "90.00", "50.00"],
                        ["multi_average", "multi", "b", "f1", "T=4", "85.00", "40.00"]]
    base = [[c.strip() for c in l.split("|")[1:-1]] for l in text.splitlines() if l.startswith("| no_kd")][1:]
    assert [r[4] for r in base] == ["the same at every point (from the base run)"] * 2
    # sweep_results: each task's validation metric next to val_AVG, from the validation scores (not eval)
    tasks = [TaskData(n, ("x", "y"), "accuracy", {}) for n in ("a", "b")]
    table = results_table(sweep, tasks, results)
    cols = [table.columns.index(c) for c in ("val_AVG", "a_val", "b_val")]
    assert [[row[i] for i in cols] for row in table.rows[:3]] == [["80.00", "80.00", "80.00"],
                                                                 ["75.00", "90.00", "60.00"],
                                                                 ["72.50", "60.00", "85.00"]]


def test_grid_writes_annotated_heatmaps(base):
    assert main(["sweep", str(base), "--param", "distill.temperature=1,4", "--param", "distill.alpha=0.5,0.9",
                 "--name", "grid"]) == 0
    folder = base / "sweeps" / "grid"
    table = rows(folder / "sweep_results.csv")
    assert sorted({r["point"] for r in table}) == ["T=1_alpha=0.5", "T=1_alpha=0.9", "T=4_alpha=0.5", "T=4_alpha=0.9"]
    means = {m: np.mean([float(r["val_AVG"]) for r in table if r["method"] == m]) for m in ("kd_t1", "kd_tf")}
    best_single = max(means, key=means.get)
    for method in ("multi_average", best_single):
        assert (folder / f"grid_demo_{method}.png").read_bytes().startswith(PNG)
    assert (folder / "best.md").is_file() and not list(folder.glob("sweep_*.png"))


def test_fixed_setting_beside_a_swept_param(base, capsys):
    """A --param with one value is a fixed setting of every point; the plot's axis is the varying param."""
    assert main(["sweep", str(base), "--param", "distill.alpha=0.5", "--param", "distill.temperature=1,4",
                 "--no-single", "--name", "fixed"]) == 0
    folder = base / "sweeps" / "fixed"
    assert [r["point"] for r in rows(folder / "sweep_results.csv") if r["method"] == "multi_average"] == \
        ["alpha=0.5_T=1", "alpha=0.5_T=4"]
    assert (folder / "sweep_T.png").read_bytes().startswith(PNG) and not list(folder.glob("grid_*.png"))
    # the fixed alpha reached every point's config, the swept T likewise
    for t in ("1", "4"):
        cfg = yaml.safe_load((folder / f"alpha=0.5_T={t}" / "config.yaml").read_text())
        assert cfg["distill"]["alpha"] == 0.5 and cfg["distill"]["temperature"] == float(t)
    best = (folder / "best.md").read_text()
    assert "Swept: T (`distill.temperature`) ∈ {1, 4}. Fixed: alpha (`distill.alpha`) = 0.5." in best
    # a fixed setting given first, then a grid: the heat map's axes are the two varying params
    assert main(["sweep", str(base), "--param", "distill.calibrate=false", "--param", "distill.temperature=1,4",
                 "--param", "distill.alpha=0.5,0.9", "--no-single", "--name", "fixed_grid"]) == 0
    grid = base / "sweeps" / "fixed_grid"
    assert (grid / "grid_demo_multi_average.png").read_bytes().startswith(PNG)
    assert sorted({r["point"] for r in rows(grid / "sweep_results.csv")}) == [
        f"calibrate=false_T={t}_alpha={a}" for t in ("1", "4") for a in ("0.5", "0.9")]
    capsys.readouterr()   # a key given twice is named, whatever comes first
    assert main(["sweep", str(base), "--param", "distill.alpha=0.5", "--param", "student.lr=1e-3",
                 "--param", "student.lr=2e-3", "--name", "twice"]) == 2
    assert "--param 'student.lr' is given twice" in capsys.readouterr().err
    capsys.readouterr()   # three varying params: refused in one line, nothing written
    assert main(["sweep", str(base), "--param", "distill.alpha=0.5,0.9", "--param", "distill.temperature=1,4",
                 "--param", "student.lr=1e-3,2e-3", "--name", "three"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "got 3 with several values" in err and not (base / "sweeps" / "three").exists()


def test_seeds_summary(base):
    assert main(["seeds", str(base), "--seeds", "1,2"]) == 0
    folder = base / "sweeps" / "seeds"
    for s in ("1", "2"):
        assert_reused(folder / f"seed={s}", base)
        assert (folder / f"seed={s}" / "demo" / "students" / "no_kd").is_dir()   # the baseline depends on the seed
    assert not np.array_equal(student_logits(folder / "seed=1", "no_kd"), student_logits(folder / "seed=2", "no_kd"))
    summary = rows(folder / "seed_summary.csv")
    methods = [r for r in summary if r["type"] != "paired_difference"]
    assert [r["method"] for r in methods] == ["no_kd", "kd_t1", "kd_tf", "multi_average"]
    for r in summary:
        assert r["n"] == "2" and all(math.isfinite(float(r[c])) for c in ("mean", "std", "ci95_low", "ci95_high"))
        assert float(r["ci95_low"]) <= float(r["mean"]) <= float(r["ci95_high"])
    for r in methods:   # steadiness: worst seed and churn (its arithmetic is checked by hand in test_stability.py)
        assert r["worst_seed"] in ("1", "2") and float(r["worst"]) <= float(r["mean"])
        assert 0.0 <= float(r["churn_ci95_low"]) <= float(r["churn"]) <= float(r["churn_ci95_high"]) <= 100.0
    no_kd = [np.load(folder / f"seed={s}" / "demo" / "students" / "no_kd" / "logits_eval.npy").argmax(1) for s in "12"]
    assert float(methods[0]["churn"]) == pytest.approx(100 * np.mean(no_kd[0] != no_kd[1]), abs=0.005)
    (paired,) = [r for r in summary if r["type"] == "paired_difference"]
    assert paired["method"].startswith("multi_average - kd_")
    assert 0.0 <= float(paired["share_multi_wins"]) <= 1.0
    assert "paired by seed" in (folder / "seed_summary.md").read_text()


def test_t_interval_by_hand():
    iv = t_interval([1.0, 2.0, 3.0])
    assert (iv.n, iv.mean, iv.std) == (3, 2.0, 1.0)
    assert iv.high - iv.mean == pytest.approx(4.303 / math.sqrt(3), rel=1e-3)
    assert iv.mean - iv.low == pytest.approx(iv.high - iv.mean)
    assert math.isnan(t_interval([5.0]).low) and math.isnan(t_interval([5.0]).std)
    assert t_critical(2) == pytest.approx(4.303, abs=1e-3) and t_critical(30) == pytest.approx(2.042, abs=1e-3)
    assert t_critical(40) == pytest.approx(2.0211, abs=1e-3)
    assert t_interval([1.0, 2.0, 3.0]).high == pytest.approx(2 + 4.303 / math.sqrt(3), rel=1e-4)


def test_paired_difference_by_hand():
    task = TaskData("demo", ("neg", "pos"), "accuracy", {})
    scores = {"kd_a": [81, 81, 81], "kd_b": [70, 70, 70], "multi_x": [80, 82, 84], "multi_y": [60, 60, 60]}
    types = {"kd_a": "single", "kd_b": "single", "multi_x": "multi", "multi_y": "multi"}
    results = [Result(Point(f"seed={s}", (str(s),), None), m, types[m], "point", {}, {"demo": float(v[s])}, float(v[s]),
                      {"demo": float(v[s])}, float(v[s])) for s in range(3) for m, v in scores.items()]
    table, sentences = seed_summary([task], results)
    (row,) = [r for r in table.rows if r[2] == "paired_difference"]
    half = 4.303 * 2 / math.sqrt(3)                               # diffs -1, 1, 3: mean 1, std 2
    assert row[:6] == ["demo", "multi_x - kd_a", "paired_difference", "3", "1.00", "2.00"]
    assert float(row[6]) == pytest.approx(1 - half, abs=0.01) and float(row[7]) == pytest.approx(1 + half, abs=0.01)
    assert row[-2:] == ["0.67", "0"] and "2/3 seeds" in sentences[0]


def test_seed_summary_selects_on_validation():
    """Guards selection on validation in the seed summary: kd_a and multi_x are best on eval, kd_b and multi_y on
    validation, so the paired difference is multi_y - kd_b, computed on eval."""
    task = TaskData("demo", ("neg", "pos"), "accuracy", {})
    scores = {"kd_a": [81, 81, 81], "kd_b": [70, 70, 70], "multi_x": [80, 82, 84], "multi_y": [60, 62, 61]}
    val = {"kd_a": 70.0, "kd_b": 75.0, "multi_x": 70.0, "multi_y": 72.0}
    types = {"kd_a": "single", "kd_b": "single", "multi_x": "multi", "multi_y": "multi"}
    results = [Result(Point(f"seed={s}", (str(s),), None), m, types[m], "point", {}, {"demo": float(v[s])}, float(v[s]),
                      {"demo": val[m]}, val[m]) for s in range(3) for m, v in scores.items()]
    table, _ = seed_summary([task], results)
    (row,) = [r for r in table.rows if r[2] == "paired_difference"]
    assert row[1] == "multi_y - kd_b" and row[4] == "-9.00"          # eval diffs -10, -8, -9


@pytest.mark.parametrize("param,phrase", [
    ("distill.temprature=1,2", "did you mean 'distill.temperature'"),
    ("teachers.0.lr=1e-3,1e-4", "only student-side params"),
    ("tasks.0.demo_size=100", "only student-side params"),
    ("student.lrr=1e-3", "did you mean 'lr'"),
    ("distill.alpha=0.5,1.5", "distill.alpha must be in [0, 1]"),
    ("distill.temperature", "must look like key=v1,v2"),
])
def test_bad_params_are_one_line_errors(base, capsys, param, phrase):
    before = sorted(p.name for p in (base / "sweeps").glob("*")) if (base / "sweeps").is_dir() else []
    capsys.readouterr()
    assert main(["sweep", str(base), "--param", param, "--name", "bad"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("mtkd: error:") and phrase in err, err
    after = sorted(p.name for p in (base / "sweeps").glob("*")) if (base / "sweeps").is_dir() else []
    assert after == before


def test_a_student_trained_with_the_same_key_is_linked_not_retrained(base, capsys):
    """A sweep point whose student has the key of one trained already (the base run's, or another sweep's
    point: a T sweep and a T x alpha grid share cells) links that folder (hard links) instead of training
    it again; a point with a new key trains. Fails if shared cells were retrained."""
    assert main(["sweep", str(base), "--param", "distill.temperature=2", "--param", "distill.alpha=0.5,0.9",
                 "--no-single", "--name", "cells_a"]) == 0
    capsys.readouterr()
    assert main(["sweep", str(base), "--param", "distill.alpha=0.5", "--param", "distill.temperature=2,3",
                 "--no-single", "--name", "cells_b"]) == 0
    log = capsys.readouterr().out
    shared, new = base / "sweeps/cells_b/alpha=0.5_T=2", base / "sweeps/cells_b/alpha=0.5_T=3"
    donor = base / "sweeps/cells_a/T=2_alpha=0.5"
    assert re.search(r"cached .*alpha=0\.5_T=2/demo/students/multi_average \(linked: .*T=2_alpha=0\.5", log)
    assert re.search(r"build .*alpha=0\.5_T=3/demo/students/multi_average", log)
    assert not re.search(r"build .*alpha=0\.5_T=2/demo/students", log)
    f = "demo/students/multi_average/logits_eval.npy"
    assert (shared / f).stat().st_ino == (donor / f).stat().st_ino
    assert (new / f).stat().st_ino != (donor / f).stat().st_ino
    # the base run's own setting (T 6, alpha 0.7): its student, linked
    capsys.readouterr()
    assert main(["sweep", str(base), "--param", "distill.temperature=6", "--no-single", "--name", "as_base"]) == 0
    assert not re.search(r"build .*/students/", capsys.readouterr().out)
    assert (base / "sweeps/as_base/T=6" / f).stat().st_ino == (base / f).stat().st_ino


def test_reuse_links_another_runs_stages(base, capsys, tmp_path):
    """`mtkd evaluate CONFIG --out NEW --reuse RUN`: every stage with RUN's key is linked, nothing trained (the
    eval tables, derived from them, are rewritten);
    a stage whose key differs (another alpha) is built; a --reuse that is not a run is one line."""
    capsys.readouterr()
    assert main(["evaluate", str(base / "config.yaml"), "--out", str(tmp_path / "again"), "--reuse", str(base)]) == 0
    log = capsys.readouterr().out
    assert not re.search(r"build .*/(data|teachers|logits|students)", log) and log.count("(linked: ") >= 6
    f = "demo/students/multi_average/logits_eval.npy"
    assert (tmp_path / "again" / f).stat().st_ino == (base / f).stat().st_ino
    assert main(["evaluate", str(base / "config.yaml"), "--out", str(tmp_path / "other"), "--reuse", str(base),
                 "distill.alpha=0.4", "distill.single_teacher=false"]) == 0
    log = capsys.readouterr().out
    assert re.search(r"build .*other/demo/students/multi_average", log)
    assert re.search(r"cached .*other/demo/students/no_kd \(linked", log)
    # the no-KD student's metrics.json scores binary F1 of pos_label: another pos_label is another student
    assert main(["train-baseline", str(base / "config.yaml"), "--out", str(tmp_path / "pos"), "--reuse", str(base),
                 "tasks.0.pos_label=negative"]) == 0
    log = capsys.readouterr().out
    assert re.search(r"build .*pos/demo/students/no_kd", log) and re.search(r"cached .*pos/demo/teachers/t1 \(linked", log)
    assert main(["evaluate", str(base / "config.yaml"), "--out", str(tmp_path / "x"), "--reuse", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "not a run directory" in err and not (tmp_path / "x").exists()


def test_a_stale_stage_is_not_replaced_by_a_donor_without_recompute(tmp_path):
    """stages.run: a donor with the same key fills a missing folder; a stale folder is still refused
    unless recompute (then the donor is linked, nothing built)."""
    from mtkd import stages
    from mtkd.errors import MtkdError
    built = []

    def build(tmp, work):
        built.append(1)
        (tmp / "x.txt").write_text(str(len(built)))
    stages.run(tmp_path / "donor", {"k": 1}, build, log=lambda _: None)
    stages.run(tmp_path / "a", {"k": 1}, build, log=lambda _: None, donors=[tmp_path / "donor"])
    assert len(built) == 1 and (tmp_path / "a/x.txt").read_text() == "1"
    stages.run(tmp_path / "b", {"k": 2}, build, log=lambda _: None)      # b: built from another key
    with pytest.raises(MtkdError, match="other inputs"):
        stages.run(tmp_path / "b", {"k": 1}, build, log=lambda _: None, donors=[tmp_path / "donor"])
    stages.run(tmp_path / "b", {"k": 1}, build, recompute=True, log=lambda _: None, donors=[tmp_path / "donor"])
    assert len(built) == 2 and (tmp_path / "b/x.txt").stat().st_ino == (tmp_path / "donor/x.txt").stat().st_ino
    # a donor whose file no longer matches its manifest is passed over: the stage is built
    (tmp_path / "donor/x.txt").unlink()
    (tmp_path / "donor/x.txt").write_text("tampered")
    stages.run(tmp_path / "c", {"k": 1}, build, log=lambda _: None, donors=[tmp_path / "donor"])
    assert len(built) == 3 and (tmp_path / "c/x.txt").read_text() == "3"


def test_recorded_manifest_fields_count_like_the_key(tmp_path):
    """stages.run(recorded=...): a field the key's canonical form cannot hold (the teachers' order) makes
    a finished stage stale when it differs, for the stage itself and for a donor; equal, it is cached."""
    from mtkd import stages
    from mtkd.errors import MtkdError
    built = []

    def build(tmp, work):
        built.append(1)
        (tmp / "x.txt").write_text(str(len(built)))
    ab, ba = {"teachers": ["a", "b"]}, {"teachers": ["b", "a"]}
    m = stages.run(tmp_path / "s", {"k": 1}, build, log=lambda _: None, recorded=ab)
    assert m["teachers"] == ["a", "b"] and len(built) == 1
    stages.run(tmp_path / "s", {"k": 1}, build, log=lambda _: None, recorded=ab)
    assert len(built) == 1                                                  # same order: cached
    with pytest.raises(MtkdError, match=r"other inputs \(teachers: recorded \['a', 'b'\], now \['b', 'a'\]\)"):
        stages.run(tmp_path / "s", {"k": 1}, build, log=lambda _: None, recorded=ba)
    stages.run(tmp_path / "t", {"k": 1}, build, log=lambda _: None, donors=[tmp_path / "s"], recorded=ba)
    assert len(built) == 2 and (tmp_path / "t/x.txt").read_text() == "2"   # the donor's order differs: built
    stages.run(tmp_path / "s", {"k": 1}, build, recompute=True, log=lambda _: None, recorded=ba)
    assert len(built) == 3 and stages.check(tmp_path / "s", {"k": 1}, ba)[0] is not None


def test_report_shows_sweeps_and_hand_written_findings(base, capsys, tmp_path):
    """`mtkd report` carries every finished sweep of the run and of a run nested in it (tables from their CSVs,
    plots embedded in the HTML), and RUN/findings.md after the verdict; none of it when absent. Works on a copy
    of the base run (its own sweeps and findings stay out of the module's run)."""
    import base64
    import shutil
    run = tmp_path / "run"
    shutil.copytree(base, run, copy_function=os.link)
    assert main(["report", str(run)]) == 0
    assert "## Findings" not in (run / "report.md").read_text()
    (run / "findings.md").write_text("# Findings\n\n")   # only the heading: no section
    assert main(["report", str(run)]) == 0
    assert "## Findings" not in (run / "report.md").read_text()
    assert main(["sweep", str(run), "--param", "distill.alpha=0.5,0.9", "--no-single", "--name", "a_rep"]) == 0
    nested = run / "nested"
    assert main(["evaluate", str(run / "config.yaml"), "--out", str(nested), "--reuse", str(run)]) == 0
    assert main(["sweep", str(nested), "--param", "distill.temperature=2", "--no-single", "--name", "T2"]) == 0
    (run / "findings.md").write_text("## Findings\n\nMany voices **did not** beat one on `demo`.\n\n- a\n- b\n")
    capsys.readouterr()
    assert main(["report", str(run)]) == 0
    md, page = (run / "report.md").read_text(), (run / "report.html").read_text()
    assert md.index("## The answer") < md.index("## Findings") < md.index("## What this run contains")
    assert "Many voices **did not** beat one on `demo`." in md
    assert "<b>did not</b>" in page and "<code>demo</code>" in page and "<li>a</li><li>b</li>" in page
    for rel in ("sweeps/a_rep", "nested/sweeps/T2"):
        assert f"## Sweep {rel}" in md
        best = rows(run / rel / "best.csv")
        assert {r["method"] for r in best} == {"no_kd", "multi_average"}
        # the best table in the report is best.csv's, row by row
        line = next(l for l in md[md.index(f"## Sweep {rel}"):].splitlines() if l.startswith("| multi_average"))
        m = next(r for r in best if r["method"] == "multi_average")
        assert [c.strip() for c in line.split("|")[1:-1]] == list(m.values())
    png = run / "sweeps" / "a_rep" / "sweep_alpha.png"
    assert md.count("![sweeps/a_rep: sweep_alpha](sweeps/a_rep/sweep_alpha.png)") == 1
    assert base64.b64encode(png.read_bytes()).decode() in page   # embedded, not linked
    start = md.index("## Sweep sweeps/a_rep")
    sweep_md = md[start:md.index("\n## ", start + 1)]
    assert "Best multi-teacher student" not in sweep_md   # this sweep has no single-teacher student
    assert re.search(r"Best overall \(selected on validation\): (multi_average|no_kd) at", sweep_md)


def test_sweep_sections_of_odd_folders(tmp_path):
    """Without training: an older sweep (no summary, no best.csv: its best.md is shown), a seeds summary
    (stored with list dashes), a sweep whose table is not UTF-8 (left out in one line, the rest shown), a
    folder named like a plot, a nested folder that is no run; plots only from sweep.json's outputs."""
    from mtkd.report.build import md_to_html, sweep_blocks, to_html, to_markdown

    def sweep(folder, info, files):
        folder.mkdir(parents=True)
        for name, content in files.items():
            (folder / name).write_bytes(content if isinstance(content, bytes) else content.encode())
        (folder / "sweep.json").write_text(json.dumps(info))
    sweep(tmp_path / "sweeps" / "old", {"base_run": "runs/x", "params": {"distill.temperature": ["1", "2"]},
                                        "outputs": ["sweep_results.csv", "sweep_results.md", "best.md"]},
          {"sweep_results.csv": "point,method\nT=1,no_kd\n", "best.md": "# Best point\n\nBest overall: kd_t1.\n",
           "stray.png": PNG})
    sweep(tmp_path / "sweeps" / "seeds", {"base_run": "runs/x", "params": {"seed": ["1", "2"]},
                                          "outputs": ["seed_summary.csv", "seed_summary.md"],
                                          "summary": ["- **demo**: no difference", "one sentence"]},
          {"seed_summary.csv": "task,method,mean\ndemo,no_kd,50.0\n"})
    sweep(tmp_path / "sweeps" / "zbroken", {"base_run": "runs/x", "params": {"seed": ["1"]},
                                            "outputs": ["seed_summary.csv", "x.png"]},
          {"seed_summary.csv": b"\xff\xfe\x00bad"})
    (tmp_path / "sweeps" / "zbroken" / "x.png").mkdir()
    (tmp_path / "other" / "sweeps" / "hidden").mkdir(parents=True)   # no run.json in other/: not a run
    (tmp_path / "other" / "sweeps" / "hidden" / "sweep.json").write_text("{}")
    blocks = sweep_blocks(tmp_path)
    md = to_markdown(blocks)
    assert [b[1] for b in blocks if b[0] == "h2"] == ["Sweep sweeps/old", "Sweep sweeps/seeds", "Sweep sweeps/zbroken"]
    assert "Best overall: kd_t1." in md and "stray" not in md and "# Best point" not in md
    assert "`mtkd seeds` of the run x" in md and "- demo: no difference" in md and "- - " not in md
    assert "`mtkd sweep` of the run x: distill.temperature = 1, 2" in md
    assert re.search(r"sweeps/zbroken is unreadable \(\w+: .*\): sweep left out", md)
    to_html(blocks, tmp_path)   # renders (no image to read)
    # the findings subset: escaped text, code before bold, a list right after a paragraph line, CRLF
    page = md_to_html("Intro <script>x</script>\r\n- **a** `b**c**`\r\n  more\r\n- d\r\n#1 is no heading\r\n### H\r\n")
    assert page == ("<p>Intro &lt;script&gt;x&lt;/script&gt;</p>\n<ul><li><b>a</b> <code>b**c**</code> more</li>"
                    "<li>d</li></ul>\n<p>#1 is no heading</p>\n<h3>H</h3>")
    assert md_to_html("") == ""
    # pipe tables (header when a rule follows it) and links; a table ends a paragraph
    page = md_to_html("See [the study](https://x.org/a?b=1&c=2):\n| task | pp |\n|---|--:|\n| `sst2` | **+1.5** |\n"
                      "| mrpc | 0 |\nafter\n\n| no | rule |\n")
    assert page == ('<p>See <a href="https://x.org/a?b=1&amp;c=2">the study</a>:</p>\n'
                    "<table><tr><th>task</th><th>pp</th></tr><tr><td><code>sst2</code></td><td><b>+1.5</b></td></tr>"
                    "<tr><td>mrpc</td><td>0</td></tr></table>\n<p>after</p>\n"
                    "<table><tr><td>no</td><td>rule</td></tr></table>")
    assert md_to_html("[x](javascript:alert(1)) [y](sweeps/T/best.md)") == \
        '<p>[x](javascript:alert(1)) <a href="sweeps/T/best.md">y</a></p>'
    # `\|` is a pipe inside a cell (a code span too), as on GitHub; an unescaped one splits the cell
    assert md_to_html("| `a \\| b` | c\\|d | e |") == \
        "<table><tr><td><code>a | b</code></td><td>c|d</td><td>e</td></tr></table>"
