"""The benchmarks' own logic (bench/): what the quality bench computes and keeps, what the study bench
publishes. Fast: hand-built arrays and the fake run of tests/_fake_run.py, no training."""
from __future__ import annotations

import math
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from mtkd.analysis.load import Model, TaskEval

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
import quality_cpu  # noqa: E402
import study_cpu  # noqa: E402


def _train_task() -> TaskEval:
    """Three teachers, two labelled train examples at T = 1: on the first all predict class 0 (agree), on the
    second A says 0 and B, C say 1 (disagree); gold = [0, 1]."""
    train = {"A": [[1.0, 0.0], [2.0, 0.0]], "B": [[1.0, 0.0], [0.0, 2.0]], "C": [[1.0, 0.0], [0.0, 2.0]]}
    models = [Model(t, "teacher", np.zeros((2, 2), np.float32), 50.0, val_metric=80.0) for t in train]
    return TaskEval("hand", ["neg", "pos"], "accuracy", 1.0, np.array([0, 1]), models, list(train), "eval",
                    np.array([0, 1]), {}, Path("x"), train_labels=np.array([0, 1]),
                    train_logits={t: np.array(v, np.float32) for t, v in train.items()})


def test_targets_table_hand_computed():
    """The average target's accuracy and its mean max prob where the teachers agree / disagree, by hand:
    agree: mean logits [1, 0] -> sigmoid(1); disagree: [2/3, 4/3] -> sigmoid(2/3); prob_average there:
    (sigmoid(-2) + 2 sigmoid(2)) / 3."""
    table = quality_cpu.targets_table(_train_task(), {})
    assert "all teachers agree (50%; T = 1)" in table.columns[2]
    rows = {r[0]: r for r in table.rows}
    assert "average (calibrated)" not in rows   # no temperatures: raw targets only
    sig = lambda x: 1 / (1 + math.exp(-x))   # noqa: E731
    assert [float(v) for v in rows["average"][1:]] == pytest.approx(
        [100.0, sig(1), sig(2 / 3), sig(2 / 3) - sig(1)], abs=0.006)
    assert float(rows["prob_average"][3]) == pytest.approx((sig(-2) + 2 * sig(2)) / 3, abs=0.006)
    # with temperatures, each strategy also gets its calibrated row (A's logits halved: the disagreement flatter)
    rows = {r[0]: r for r in quality_cpu.targets_table(_train_task(), {"A": 2.0, "B": 1.0, "C": 1.0}).rows}
    assert float(rows["average (calibrated)"][3]) == pytest.approx(sig(4 / 3 - 1 / 3), abs=0.006)
    # no teacher train logits in the run: no table
    task = _train_task()
    task.train_logits.pop("C")
    assert quality_cpu.targets_table(task, {}) is None


def test_findings_kept_when_tables_are_rewritten():
    new = ["# Page", "", "## Headline", "new table", "## Every student", "rows"]
    # a findings section between two sections is put back before "## Every student", alone
    old = "# Page\n\n## Headline\nold table\n## Findings\n\nWritten by hand.\n\n## Every student\nold rows\n"
    assert quality_cpu.with_findings(new, old) == \
        ["# Page", "", "## Headline", "new table", "## Findings\n\nWritten by hand.", "", "## Every student", "rows"]
    # a findings section at the end of the page is kept too (up to the end), and a ### inside it stays in it
    old = "# Page\n## Findings\nBy hand.\n### detail\nmore\n"
    assert quality_cpu.with_findings(new, old)[4] == "## Findings\nBy hand.\n### detail\nmore"
    assert quality_cpu.with_findings(new, "# Page\n## Headline\nx\n") == new
    # a heading with trailing blanks and CRLF line ends is still the findings heading
    assert quality_cpu.with_findings(new, "# Page\r\n## Findings \r\nBy hand.\r\n## Every student\r\n")[4] == \
        "## Findings \r\nBy hand."


def test_publish_carries_the_findings_and_drops_removed_ones(tmp_path):
    """--publish: DEST/findings.md goes into the report; once removed from DEST, the run's old copy goes too."""
    from _fake_run import build_fake_run
    run = build_fake_run(tmp_path)
    dest = tmp_path / "docs"
    dest.mkdir()
    (dest / "findings.md").write_text("## Findings\n\nMany voices **beat** one on `bin`.\n")
    with open(tmp_path / "log.txt", "w") as log:
        study_cpu.publish(run, dest, log)
    report = (dest / "report.md").read_text()
    assert "Many voices **beat** one" in report and (dest / "report.html").is_file()
    assert (dest / "results").is_dir() and (dest / "analysis").is_dir()
    (dest / "findings.md").unlink()
    with open(tmp_path / "log.txt", "a") as log:
        study_cpu.publish(run, dest, log)
    assert "Many voices" not in (dest / "report.md").read_text() and not (run / "findings.md").exists()


def test_study_timing_counts_every_built_stage_once(tmp_path):
    """timing.md/.json: minutes per task and stage from the manifests; the main run, the sweeps and the whole
    study's compute, a stage hard-linked into the sweep base counted once (by inode), not twice."""
    import json
    import os
    run = tmp_path / "run"

    def stage(rel, seconds, kind="multi"):
        (run / rel).mkdir(parents=True)
        (run / rel / "manifest.json").write_text(json.dumps({"seconds": seconds, "type": kind}))
    stage("sst2/teachers/t", 30.0, "teacher")
    stage("sst2/students/multi_average", 60.0)
    stage("sst2/students/multi_average@seed1", 120.0)
    (run / "sweep_base/sst2/students/multi_average").mkdir(parents=True)
    os.link(run / "sst2/students/multi_average/manifest.json", run / "sweep_base/sst2/students/multi_average/manifest.json")
    stage("sweep_base/sweeps/T/T=2/sst2/students/multi_average", 300.0)
    assert study_cpu.compute_seconds(run) == {"main run": 210.0, "sweeps": 300.0, "all": 510.0}
    text, data = study_cpu.timing_report(run, ["sst2"], "machine: test", [("main run (mtkd run)", 6.0)])
    assert data["minutes"]["sst2"] == {"teachers": 0.5, "students (multi)": 3.0, "students, run seed only": 1.0}
    assert data["one_seed_of_every_student_min"] == 1.0 and data["ratio"] == round(1 / 60, 3)
    assert data["compute_hours"]["all"] == round(510 / 3600, 3)
    assert "| students (multi) | 3.0 | 3.0 |" in text and "- main run (mtkd run): 0.1 min" in text


def test_study_set_overrides_reach_the_run_and_its_timing(tmp_path, monkeypatch):
    """--set KEY=VALUE goes to `mtkd run` as its override and is named in timing.md/.json; a bad one ends the
    bench with one line before any mtkd command runs."""
    import json
    calls = []
    monkeypatch.setattr(study_cpu, "run_mtkd", lambda args, log: calls.append(args) or 1.0)
    run = tmp_path / "run"
    argv = ["study_cpu.py", "--out", str(run), "--no-sweeps", "--set", "mixed_precision=bf16", "--set", "seeds=[42]"]
    monkeypatch.setattr(sys, "argv", argv)
    study_cpu.main()
    assert len(calls) == 1 and calls[0][0] == "run"
    assert calls[0][-2:] == ["mixed_precision=bf16", "seeds=[42]"]
    assert "config overrides: `mixed_precision=bf16`, `seeds=[42]`" in (run / "timing.md").read_text()
    assert json.loads((run / "timing.json").read_text())["overrides"] == ["mixed_precision=bf16", "seeds=[42]"]
    calls.clear()
    monkeypatch.setattr(sys, "argv", [*argv[:-1], "mixed_precision=fp8"])
    with pytest.raises(SystemExit) as e:
        study_cpu.main()
    assert str(e.value).startswith("error: ") and "mixed_precision" in str(e.value) and not calls


def test_study_runs_a_config_without_the_default_sweep_tasks(tmp_path, monkeypatch):
    """A config without sst2/mrpc (configs/voices_bags.yaml: mnli and qqp) runs with --no-sweeps; a named sweep
    task the config lacks is still refused in one line."""
    calls = []
    monkeypatch.setattr(study_cpu, "run_mtkd", lambda args, log: calls.append(args) or 1.0)
    run = tmp_path / "run"
    config = str(Path(__file__).resolve().parents[1] / "configs" / "voices_bags.yaml")
    monkeypatch.setattr(sys, "argv", ["study_cpu.py", "--config", config, "--out", str(run), "--no-sweeps"])
    study_cpu.main()
    assert len(calls) == 1 and calls[0][0] == "run"
    monkeypatch.setattr(sys, "argv", ["study_cpu.py", "--config", config, "--out", str(run), "--sweep-tasks", "sst2"])
    with pytest.raises(SystemExit) as e:
        study_cpu.main()
    assert str(e.value) == f"error: task 'sst2' is not in {config} (its tasks: mnli, qqp)"


def test_across_runs_pairs_two_runs_on_the_same_examples(tmp_path, capsys):
    """Two runs built from the same seed hold the same eval examples: a model against itself across them is
    exactly 0 with p = 1, another model gives the within-run paired bootstrap difference; runs with other eval
    examples, an unknown model or a bad spec end with one line."""
    import across_runs
    from mtkd.analysis.load import load_run
    from tests._fake_run import build_fake_run
    a, b = build_fake_run(tmp_path / "a"), build_fake_run(tmp_path / "b")
    same = across_runs.compare(f"{a}:multi_average", f"{b}:multi_average", "bin", n_resamples=500)
    assert same["diff"] == 0 and same["ci"] == (0.0, 0.0) and same["p"] == 1.0
    r = across_runs.compare(f"{a}:kd_t_a", f"{b}:multi_average", "bin", n_resamples=500)
    t = {x.name: x for x in load_run(a, "eval")}["bin"]
    m = {x.method: x for x in t.models}
    assert r["diff"] == pytest.approx(m["multi_average"].metric - m["kd_t_a"].metric)
    assert r["ci"][0] <= r["diff"] <= r["ci"][1] and 0 < r["p"] <= 1
    other = build_fake_run(tmp_path / "c", seed=5)   # other labels on the "same" task
    for argv, msg in (([f"{a}:kd_t_a", f"{other}:kd_t_a", "--task", "bin"], "eval labels differ"),
                      ([f"{a}:nope", f"{b}:kd_t_a", "--task", "bin"], "has no model 'nope' on bin"),
                      ([f"{a}:kd_t_a", f"{b}:kd_t_a", "--task", "x"], "has no task 'x'"),
                      ([str(a), f"{b}:kd_t_a", "--task", "bin"], "expected RUN_OR_PUBLISHED_FOLDER:MODEL"),
                      ([f"{a}:kd_t_a", f"{b}:kd_t_a", "--task", "bin", "--resamples", "0"], "--resamples must be")):
        with pytest.raises(SystemExit) as e:
            across_runs.main(argv)
        assert str(e.value).startswith("error: ") and msg in str(e.value) and "\n" not in str(e.value)


def _student(method: str, labels: np.ndarray, right: int, seeds=(42, 1), kind="multi") -> Model:
    """A student right on `right` eval examples at every seed (the others: the wrong class); which ones moves
    with the seed, so every seed is a different model with the same accuracy."""
    seed_logits = {}
    for i, s in enumerate(seeds):
        ok = np.roll(np.arange(len(labels)) < right, 7 * i)
        seed_logits[s] = np.eye(2, dtype=np.float32)[np.where(ok, labels, 1 - labels)]
    return Model(method, kind, seed_logits[seeds[0]], 100.0 * right / len(labels), seeds=list(seeds),
                 seed_logits=seed_logits)


def test_effects_table_pairs_one_factor_at_a_time():
    """A student against itself in the variant without the factor: 50% -> 75% on 200 examples is +25 pp with a
    CI far from 0 and a tiny p; pairs not run (transfer+calibrated here) and unpaired students give no row; the
    mean over a contrast's multi-teacher students follows them (no p)."""
    labels = np.arange(200) % 2
    models = [_student("m [plain]", labels, 100), _student("m [transfer]", labels, 150),
              _student("n [plain]", labels, 100), _student("n [transfer]", labels, 110),
              _student("m [calibrated]", labels, 100), _student("lone [transfer]", labels, 120),
              _student("other_seeds [plain]", labels, 100), _student("other_seeds [transfer]", labels, 100, (42,))]
    pool = TaskEval("hand", ["neg", "pos"], "accuracy", 1.0, labels, models, [], "eval", labels, {}, Path("x"))
    rows = quality_cpu.effects_table(pool).rows
    assert [r[:3] for r in rows] == [["transfer set", "m", "plain → transfer"], ["transfer set", "n", "plain → transfer"],
                                     ["transfer set", "**mean of the 2 multi-teacher students**", "plain → transfer"],
                                     ["calibration", "m", "plain → calibrated"]]
    m, n, mean, calib = rows
    assert [float(x) for x in m[3:6]] == [50.0, 75.0, 25.0] and float(n[5]) == 5.0
    assert 15.0 < float(m[6]) < 25.0 < float(m[7]) < 35.0 and float(m[9]) < 1e-3
    assert float(mean[5]) == 15.0 and float(mean[6]) < 15.0 < float(mean[7]) and mean[8:] == ["", ""]
    assert [float(x) for x in calib[5:8]] == [0.0, 0.0, 0.0] and float(calib[8]) == 1.0   # the same predictions
    assert quality_cpu.effects_table(replace(pool, models=models[4:])) is None
    # single-teacher students get their own mean row
    singles = [_student("kd_a [plain]", labels, 100, kind="single"), _student("kd_a [transfer]", labels, 90, kind="single"),
               _student("kd_b [plain]", labels, 100, kind="single"), _student("kd_b [transfer]", labels, 70, kind="single")]
    rows = quality_cpu.effects_table(replace(pool, models=singles)).rows
    assert rows[2][1] == "**mean of the 2 single-teacher students**" and float(rows[2][5]) == -10.0


def test_sweep_singles_keep_the_cached_ones_and_add_a_new_best(tmp_path):
    """A best single that changes with more seeds is added after the singles the sweep base already has
    (its sweeps stay cached); without a base, only the best ones."""
    base = tmp_path / "sweep_base"
    assert study_cpu.sweep_singles(["minilm_l3"], base) == ["minilm_l3"]
    base.mkdir()
    (base / "config.yaml").write_text("distill:\n  single_teacher:\n  - minilm_l6\n  - minilm_l3\n")
    assert study_cpu.sweep_singles(["minilm_l3"], base) == ["minilm_l6", "minilm_l3"]
    assert study_cpu.sweep_singles(["cnn", "minilm_l6"], base) == ["minilm_l6", "minilm_l3", "cnn"]


def test_compare_tables_hand_computed(tmp_path):
    """B - A per model and task on each task's official (first) column, z in A's seed sd, the students' mean
    over tasks (teachers shown, never averaged); a folder without a master table: one error line."""
    import compare_tables

    def folder(name, rows):
        d = tmp_path / name
        (d / "results").mkdir(parents=True)
        (d / "config.yaml").write_text("tasks:\n  - {name: sst2}\n  - qqp\n")
        head = "method,type,sst2_acc,sst2_acc_sd,sst2_ece,sst2_ece_sd,qqp_f1,qqp_f1_sd,qqp_acc,qqp_acc_sd,AVG,AVG_sd\n"
        (d / "results" / "master_results.csv").write_text(head + "".join(r + "\n" for r in rows))
        return d
    a = folder("a", ["t,teacher,80,,5,,70,,75,,75,", "no_kd,baseline,78,1.0,4,0.1,60,2.0,74,1,69,1",
                     "multi_average,multi,79,0.5,3,0.1,65,,76,,72,"])
    b = folder("b", ["t,teacher,81,,9,,70,,75,,75.5,", "no_kd,baseline,79,,1,,56,,70,,67.5,",
                     "multi_average,multi,78,,1,,66,,70,,72,", "multi_new,multi,90,,1,,90,,90,,90,"])
    lines, mean = compare_tables.compare(a, b)
    text = "\n".join(lines)
    assert "| t | teacher | +1.00 | +0.00 |" in text
    assert "| no_kd | baseline | +1.00 (z +1.0) | -4.00 (z -2.0) |" in text
    assert "| multi_average | multi | -1.00 (z -2.0) | +1.00 |" in text and "multi_new" not in text
    assert mean == pytest.approx((1 - 4 - 1 + 1) / 4)
    assert "- sst2: students' mean B - A +0.00 (min -1.00, max +1.00, n=2); within 2 sd of A's mean: 2 of 2" in text
    assert "- qqp: students' mean B - A -1.50 (min -4.00, max +1.00, n=2); within 2 sd of A's mean: 1 of 1" in text
    lo, hi = compare_tables.mean_ci([1.0, -4.0, -1.0, 1.0])
    assert f"mean B - A {mean:+.2f} (95% bootstrap CI over students [{lo:+.2f}, {hi:+.2f}])" in text
    assert -4.0 <= lo < mean < hi <= 1.0 and compare_tables.mean_ci([2.0] * 5) == (2.0, 2.0)
    (b / "results" / "master_results.csv").write_text("method,type,sst2_acc,qqp_f1\nno_kd,baseline,abc,1\n")
    with pytest.raises(ValueError, match="not a number"):
        compare_tables.compare(a, b)
    (b / "results" / "master_results.csv").write_text("")
    with pytest.raises(ValueError, match="not a master table"):
        compare_tables.compare(a, b)
    (b / "results" / "master_results.csv").unlink()
    with pytest.raises(ValueError, match="master_results.csv not found"):
        compare_tables.compare(a, b)


def test_precision_bench_sides_compute_in_their_dtypes():
    """bench/precision.py's mechanism: a Trainer made under mixed_precision bf16 autocasts to bf16 once the
    process precision is switched back to it, one made under 'no' stays float32; the guard fails when both
    sides were made in float32 (bf16 never in force)."""
    import copy
    import torch
    from transformers import BertConfig, BertForSequenceClassification
    import precision
    from _common import Stepper
    from mtkd import runtime
    from mtkd.models import Encoded
    torch.manual_seed(0)
    model = BertForSequenceClassification(BertConfig(vocab_size=50, hidden_size=16, num_hidden_layers=1,
                                                     num_attention_heads=2, intermediate_size=32, num_labels=2))
    data = Encoded.from_lists([[1, 5, 7, 2], [1, 9, 2]], None, 0)
    loss_fn = lambda logits, feats, idx: (logits.sum(), {})
    modes = {"float32": "no", "bf16": "bf16"}
    try:
        steppers = {}
        for side, mode in modes.items():
            runtime.set_precision(mode)
            steppers[side] = Stepper(copy.deepcopy(model), data, loss_fn)
        precision.check_dtypes(steppers, modes, data.batch([0, 1]))   # passes
        runtime.set_precision("no")
        plain = {side: Stepper(copy.deepcopy(model), data, loss_fn) for side in modes}
        with pytest.raises(SystemExit, match="bf16 side computed in torch.float32"):
            precision.check_dtypes(plain, modes, data.batch([0, 1]))
    finally:
        runtime.set_precision("no")


def test_teacher_costs_reads_each_teachers_time_and_scores(tmp_path):
    """bench/teacher_costs.py: per task and teacher, the fit and score minutes of the stage manifests and the
    official metric recomputed from the cached logits (here a TF-IDF teacher on the demo task, checked by hand
    against its logits and labels); a teacher stage still missing is left out, not an error."""
    import json
    import teacher_costs
    import yaml
    from mtkd.cli import main
    cfg = {"name": "costs", "tasks": [{"name": "demo", "demo_size": 300}],
           "teachers": [{"name": "tf", "kind": "tfidf"}, {"name": "tf2", "kind": "tfidf", "C": 0.5}],
           "student": {"model": "tiny", "layers": 1}}
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(cfg))
    run = tmp_path / "run"
    assert main(["extract-logits", str(tmp_path / "c.yaml"), "--out", str(run)]) == 0
    import shutil
    shutil.rmtree(run / "demo" / "logits" / "tf2")
    rows = teacher_costs.teacher_rows(run)
    assert [(r["task"], r["teacher"]) for r in rows] == [("demo", "tf")]
    r = rows[0]
    y = [json.loads(l)["label"] for l in (run / "demo" / "data" / "eval.jsonl").read_text().splitlines()]
    pred = np.load(run / "demo" / "logits" / "tf" / "eval.npy").argmax(1)
    assert r["eval"] == pytest.approx(100 * float(np.mean(pred == np.array(y))))
    assert r["fit_min"] * 60 == json.loads((run / "demo" / "teachers" / "tf" / "manifest.json").read_text())["seconds"]
    assert r["n_scored"] == sum(len((run / "demo" / "data" / f"{s}.jsonl").read_text().splitlines())
                                for s in ("train", "validation", "eval"))
    assert "| demo | tf |" in teacher_costs.markdown(rows, run)


def test_a_stopped_benchmark_stops_its_mtkd_command(tmp_path):
    """SIGTERM to a benchmark (bench/_common.run_mtkd) terminates the command it is waiting for: no orphan
    keeps the cores and the run's stage locks."""
    import os
    import signal
    import subprocess
    import time
    bench = Path(__file__).resolve().parents[1] / "bench"
    child_pid = tmp_path / "child.pid"
    child = f"import os, time; open({str(child_pid)!r}, 'w').write(str(os.getpid())); time.sleep(120)"
    parent = (f"import sys; sys.path.insert(0, {str(bench)!r}); import _common\n"
              f"with open({str(tmp_path / 'log.txt')!r}, 'w') as log:\n"
              f"    _common.run_mtkd([], log, command=[sys.executable, '-c', {child!r}])\n")
    proc = subprocess.Popen([sys.executable, "-c", parent], stderr=subprocess.DEVNULL)
    deadline = time.time() + 60
    while not (child_pid.is_file() and child_pid.read_text()) and time.time() < deadline:
        time.sleep(0.1)
    pid = int(child_pid.read_text())
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) != 0
    deadline = time.time() + 30
    while time.time() < deadline:
        try:
            os.kill(pid, 0)              # still there (or a zombie not yet reaped by init)
        except ProcessLookupError:
            break
        if Path(f"/proc/{pid}/stat").is_file() and Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z":
            break
        time.sleep(0.1)
    else:
        os.kill(pid, signal.SIGKILL)
        raise AssertionError("the benchmark's command outlived it")
