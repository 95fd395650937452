"""End to end on tiny models built in code: the table, determinism, kill-and-resume, stale caches."""
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

from mtkd.cli import main

TINY = """
name: tiny
seed: 7
tasks: [{name: demo, demo_size: 600}]
teachers:
  - {name: t1, model: tiny, epochs: 2, lr: 1.0e-3, max_length: 32}
  - {name: t2, model: tiny, layers: 1, epochs: 2, lr: 2.0e-3, max_length: 32}
  - {name: tf, kind: tfidf}
student: {model: tiny, layers: 1, epochs: 2, lr: 2.0e-3, max_length: 32}
"""


@pytest.fixture(scope="module")
def tiny_cfg(tmp_path_factory):
    p = tmp_path_factory.mktemp("cfg") / "tiny.yaml"
    p.write_text(TINY)
    return p


@pytest.fixture(scope="module")
def tiny_run(tiny_cfg, tmp_path_factory):
    out = tmp_path_factory.mktemp("run") / "r"
    assert main(["run", str(tiny_cfg), "--out", str(out)]) == 0
    return out


def table(out: Path) -> str:
    return (out / "results" / "master_results.csv").read_text()


def student_logits(out: Path) -> dict:
    return {p.parent.name: p.read_bytes() for p in sorted((out / "demo" / "students").glob("*/logits_eval.npy"))}


def test_run_writes_the_study_table(tiny_run):
    lines = table(tiny_run).splitlines()
    assert lines[0] == "method,type,demo_acc,demo_ece,AVG"
    rows = {l.split(",")[0]: l.split(",")[1] for l in lines[1:]}
    assert rows == {"t1": "teacher", "t2": "teacher", "tf": "teacher", "no_kd": "baseline",
                    "kd_t1": "single", "kd_t2": "single", "kd_tf": "single", "multi_average": "multi",
                    "multi_weighted": "multi", "multi_best_per_sample": "multi", "multi_learned_gating": "multi"}
    logits = student_logits(tiny_run)
    assert len(logits) == 8 and len(set(logits.values())) == 8      # every student trained differently
    assert (tiny_run / "config.yaml").is_file() and (tiny_run / "report.html").is_file()


def test_rerun_from_saved_config_is_cached_and_identical(tiny_run, capsys):
    before = table(tiny_run)
    assert main(["run", str(tiny_run / "config.yaml")]) == 0
    out = capsys.readouterr().out
    assert "build" not in out and out.count("cached") >= 10
    assert table(tiny_run) == before


def test_reordered_teachers_rebuild_the_multi_teacher_students(tiny_run, tmp_path, capsys):
    """The teachers' order is an input of a multi-teacher student (the gate's k-th weight is the k-th
    teacher's): with --recompute and the teachers reordered, every multi-teacher student is rebuilt, the
    teachers, their logits, the single-teacher and no-KD students stay cached."""
    run = tmp_path / "r"
    shutil.copytree(tiny_run, run)
    cfg = (run / "config.yaml").read_text()
    names = [t["name"] for t in yaml.safe_load(cfg)["teachers"]]
    reordered = yaml.safe_load(cfg)
    reordered["teachers"] = reordered["teachers"][::-1]
    (tmp_path / "re.yaml").write_text(yaml.safe_dump(reordered))
    capsys.readouterr()
    assert main(["run", str(tmp_path / "re.yaml"), "--out", str(run), "--recompute"]) == 0
    out = capsys.readouterr().out
    builds = [line for line in out.splitlines() if line.strip().startswith("build")]
    assert not [b for b in builds if "/teachers/" in b or "/logits/" in b], builds
    built = {line.split("/")[-1] for line in builds if "/students/" in line}
    multi = {p.name for p in (run / "demo" / "students").glob("multi_*")}
    assert multi and built == multi, (built, multi)
    manifests = [json.loads(p.read_text()) for p in (run / "demo" / "students").glob("multi_*/manifest.json")]
    assert manifests and all(m["teachers"] == names[::-1] for m in manifests)


@pytest.mark.parametrize("module,rebuilt", [("losses", {"students"}), ("train", {"students", "teachers", "logits"})])
def test_a_fix_in_the_code_rebuilds_what_it_changes(tiny_run, tmp_path, capsys, monkeypatch, module, rebuilt):
    """A module's VERSION is in the keys of the stages whose output it decides: after a bump (a fix that
    changes semantics) a plain rerun -- no --recompute -- rebuilds those stages and reuses the rest."""
    import importlib
    run = tmp_path / "r"
    shutil.copytree(tiny_run, run)
    mod = importlib.import_module(f"mtkd.{module}")
    monkeypatch.setattr(mod, "VERSION", mod.VERSION + 1)
    capsys.readouterr()
    assert main(["run", str(run / "config.yaml")]) == 0
    out = capsys.readouterr().out
    outdated = {line.split(" (built")[0].split("/")[-2] for line in out.splitlines() if line.strip().startswith("outdated")}
    built = {line.split("/")[-2] for line in out.splitlines() if line.strip().startswith("build")}
    assert f"{module}: recorded" in out
    assert outdated == rebuilt
    assert f"cached  {run}/demo/teachers/tf" in out           # TF-IDF is not trained by train.py
    assert {b for b in built if b in ("students", "teachers", "logits")} == rebuilt
    students = [json.loads(p.read_text()) for p in (run / "demo" / "students").glob("*/manifest.json")]
    assert students and all(m["key"]["algorithm"][module] == mod.VERSION for m in students)


def test_same_seed_same_metrics(tiny_cfg, tiny_run, tmp_path):
    out = tmp_path / "again"
    assert main(["run", str(tiny_cfg), "--out", str(out)]) == 0
    assert table(out) == table(tiny_run)
    assert student_logits(out) == student_logits(tiny_run)


def test_verify_logits_passes_then_catches_tampering(tiny_run, tmp_path, capsys):
    assert main(["verify-logits", str(tiny_run)]) == 0
    run = tmp_path / "r"
    shutil.copytree(tiny_run, run)
    f = run / "demo" / "logits" / "t1" / "train.npy"
    arr = np.load(f)
    arr[0, 0] += 1.0
    np.save(f, arr)
    capsys.readouterr()
    assert main(["verify-logits", str(run)]) != 0
    assert "does not match the sha256" in capsys.readouterr().err
    assert main(["run", str(run / "config.yaml")]) != 0            # the stale cache is refused...
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "pass --recompute" in err
    assert main(["run", str(run / "config.yaml"), "--recompute"]) == 0   # ...or rebuilt when asked
    assert table(run) == table(tiny_run)


def test_changed_dataset_refuses_stale_cache(tiny_run, tmp_path, capsys):
    run = tmp_path / "r"
    shutil.copytree(tiny_run, run)
    capsys.readouterr()
    assert main(["run", str(run / "config.yaml"), "tasks.0.demo_size=500"]) != 0
    err = capsys.readouterr().err
    assert "holds a run of another config" in err and "demo_size" in err


def _run_cli(args, env_extra=None):
    env = {**os.environ, **(env_extra or {})}
    return subprocess.run([sys.executable, "-m", "mtkd", *args], env=env, capture_output=True, text=True)


# each kill point: (failpoint, what is interrupted)
KILLS = [
    ("train:after_checkpoint@1", "teacher t1 after its first epoch"),
    ("train:before_checkpoint@2", "teacher t1 inside its second epoch"),
    ("logits:split_written@1", "extraction of t1's logits, after the train split"),
    ("stage:before_rename@5", "a finished stage whose folder is not yet in place"),
    ("train:after_checkpoint@9", "a student after its first epoch"),
    ("train:before_checkpoint@12", "a student inside its second epoch"),
]


@pytest.mark.slow   # kill-and-resume: real subprocesses
@pytest.mark.parametrize("failpoint,where", KILLS, ids=[k[0] for k in KILLS])
def test_kill_and_resume_is_bit_identical(tiny_cfg, tiny_run, tmp_path, failpoint, where):
    out = tmp_path / "killed"
    first = _run_cli(["run", str(tiny_cfg), "--out", str(out)], {"MTKD_FAILPOINT": failpoint})
    assert first.returncode == -signal.SIGKILL, f"not killed at {where}: {first.stderr[-500:]}"
    assert not (out / "results" / "master_results.csv").exists()
    second = _run_cli(["run", str(tiny_cfg), "--out", str(out)])
    assert second.returncode == 0, second.stderr[-2000:]
    assert table(out) == table(tiny_run)
    assert student_logits(out) == student_logits(tiny_run)
    assert not list(out.rglob(".*.tmp")) and not list(out.rglob(".*.work-*"))


@pytest.mark.slow   # kill-and-resume: real subprocesses
def test_kill_at_a_random_moment_then_resume(tiny_cfg, tiny_run, tmp_path):
    out = tmp_path / "timed"
    proc = subprocess.Popen([sys.executable, "-m", "mtkd", "run", str(tiny_cfg), "--out", str(out)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 60
    while time.time() < deadline and not (out / "demo" / "students").is_dir():
        time.sleep(0.05)
    time.sleep(1.0)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert _run_cli(["run", str(tiny_cfg), "--out", str(out)]).returncode == 0
    assert table(out) == table(tiny_run)


def test_online_mode_matches_cached(tiny_cfg, tiny_run, tmp_path):
    """Teachers run every step instead of a lookup: the targets are the same up to float noise."""
    out = tmp_path / "online"
    assert main(["run", str(tiny_cfg), "--out", str(out), "distill.mode=online",
                 "distill.strategies=[average]", "distill.single_teacher=false", "distill.baseline=false"]) == 0
    online = np.load(out / "demo" / "students" / "multi_average" / "logits_eval.npy")
    cached = np.load(tiny_run / "demo" / "students" / "multi_average" / "logits_eval.npy")
    np.testing.assert_allclose(online, cached, atol=1e-3)


def test_two_tasks_share_one_table(tmp_path):
    """A run may name several tasks (here the demo and a 3-class user file): each gets its own
    teachers, logits and students, and its column in the one table; AVG averages the official metrics."""
    rng = np.random.default_rng(0)
    words = ["red", "green", "blue"]
    lines = ["text,color"] + [f"{' '.join(rng.choice(words, 4))} {w},{w}" for w in rng.choice(words, 90)]
    (tmp_path / "train.csv").write_text("\n".join(lines) + "\n")
    (tmp_path / "eval.csv").write_text("text,color\nred red red,red\nblue blue,blue\ngreen,green\n")
    cfg = tmp_path / "two.yaml"
    cfg.write_text(f"""
tasks:
  - {{name: demo, demo_size: 200}}
  - {{name: colors, source: file, train_file: {tmp_path / 'train.csv'}, eval_file: {tmp_path / 'eval.csv'},
     text_columns: [text], label_column: color, metric: f1}}
teachers: [{{name: t1, model: tiny, epochs: 1, max_length: 16}}, {{name: tf, kind: tfidf}}]
student: {{model: tiny, layers: 1, epochs: 1, max_length: 16}}
distill: {{strategies: [average, calibrated_average], single_teacher: false}}
""")
    out = tmp_path / "run"
    assert main(["run", str(cfg), "--out", str(out)]) == 0
    lines = table(out).splitlines()
    assert lines[0] == "method,type,demo_acc,demo_ece,colors_f1,colors_acc,colors_ece,AVG"
    tf = dict(zip(lines[0].split(","), next(l for l in lines if l.startswith("tf,")).split(",")))
    assert float(tf["colors_acc"]) == 100.0                      # TF-IDF reads the colour word
    assert float(tf["AVG"]) == pytest.approx((float(tf["demo_acc"]) + float(tf["colors_f1"])) / 2, abs=0.01)
    assert (out / "colors" / "eval" / "manifest.json").is_file() and (out / "demo" / "eval" / "manifest.json").is_file()
    taus = json.loads((out / "colors" / "students" / "multi_calibrated_average" / "manifest.json").read_text())
    assert set(taus["teacher_calibration_temperatures"]) == {"t1", "tf"}      # fitted on validation, per teacher
