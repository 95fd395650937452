"""Several seeds inside one run (`seeds:` / `mtkd run --seeds N`) on tiny models: one student folder per
seed, the shared eval format (docs/run_dir.md), mean ± sd in the master table, resumability (adding a
seed trains only that seed), teachers re-trained per seed only when asked, and sweeps on such a run."""
import csv
import json
import re
import shutil

import numpy as np
import pytest

from mtkd.cli import main
from mtkd.config import first_seeds, load_config

TINY = """
name: tiny
seed: 7
tasks: [{name: demo, demo_size: 300}]
teachers:
  - {name: t1, model: tiny, epochs: 1, lr: 1.0e-3, max_length: 32}
  - {name: tf, kind: tfidf}
student: {model: tiny, layers: 1, epochs: 1, lr: 2.0e-3, max_length: 32}
distill: {strategies: [average], single_teacher: false}
"""


@pytest.fixture(scope="module")
def cfg(tmp_path_factory):
    p = tmp_path_factory.mktemp("cfg") / "tiny.yaml"
    p.write_text(TINY)
    return p


@pytest.fixture(scope="module")
def two_seeds(cfg, tmp_path_factory):
    out = tmp_path_factory.mktemp("seeds") / "r"
    assert main(["evaluate", str(cfg), "--out", str(out), "--seeds", "2"]) == 0
    return out


def manifest(run, task="demo"):
    return json.loads((run / task / "eval" / "manifest.json").read_text())


def rows(run):
    with open(run / "results" / "master_results.csv", newline="") as f:
        return {r["method"]: r for r in csv.DictReader(f)}


def built(log: str) -> list[str]:
    return re.findall(r"build\s+\S+/demo/(\S+)", log)


def test_first_seeds_skip_the_run_seed():
    """`--seeds N` = the run seed, then 1, 2, 3, ... without repeating it."""
    assert first_seeds(7, 3) == [7, 1, 2]
    assert first_seeds(2, 4) == [2, 1, 3, 4]
    assert first_seeds(42, 1) == [42]


def test_seeds_alone_sets_the_run_seed(tmp_path):
    """`seeds: [3, 1]` without `seed`: the first listed is the run seed (the format's rule)."""
    p = tmp_path / "c.yaml"
    p.write_text(TINY.replace("seed: 7", "seeds: [3, 1]"))
    c = load_config(p)
    assert (c.seed, c.seeds) == (3, [3, 1])


def test_every_student_once_per_seed_on_the_same_teachers(two_seeds):
    students = two_seeds / "demo" / "students"
    assert sorted(p.name for p in students.iterdir() if not p.name.startswith(".")) == \
        ["multi_average", "multi_average@seed1", "no_kd", "no_kd@seed1"]
    a, b = (json.loads((students / f / "manifest.json").read_text()) for f in ("multi_average", "multi_average@seed1"))
    assert (a["key"]["seed"], b["key"]["seed"]) == (7, 1)
    assert a["key"]["teachers"] == b["key"]["teachers"]          # the same cached teachers at both seeds
    assert not np.array_equal(np.load(students / "multi_average" / "logits_eval.npy"),
                              np.load(students / "multi_average@seed1" / "logits_eval.npy"))
    assert not list((two_seeds / "demo" / "teachers").glob("*@seed*"))   # teachers trained once


def test_eval_manifest_is_the_shared_format(two_seeds):
    m = manifest(two_seeds)
    folder = two_seeds / "demo" / "eval"
    assert m["seeds"] == [7, 1]
    y = {s: np.load(folder / m[f"labels_{s}"]) for s in ("eval", "validation", "train")}
    assert len(y["train"]) == 270 and len(y["validation"]) == 30
    for t in ("t1", "tf"):   # teacher train logits, for their confidence on train
        assert np.array_equal(np.load(folder / m["train_files"][t]), np.load(two_seeds / "demo" / "logits" / t / "train.npy"))
    by = {e["method"]: e for e in m["models"]}
    assert by["t1"]["seeds"] == [7] and by["t1"]["seed_files"] == {"7": "t1.eval.npy"}
    e = by["multi_average"]
    assert e["seeds"] == [7, 1] and e["file"] == "multi_average.eval.npy"
    assert e["seed_files"] == {"7": "multi_average.eval.npy", "1": "multi_average@seed1.eval.npy"}
    assert e["seed_validation_files"]["1"] == "multi_average@seed1.validation.npy"
    assert e["validation_file"] == "multi_average.validation.npy"
    per = []
    for seed, name in e["seed_files"].items():
        student = "multi_average" + ("" if seed == "7" else f"@seed{seed}")
        logits = np.load(folder / name)
        assert np.array_equal(logits, np.load(two_seeds / "demo" / "students" / student / "logits_eval.npy"))
        acc = 100 * float((logits.argmax(1) == y["eval"]).mean())
        assert e["seed_metrics"][seed]["eval"]["accuracy"] == pytest.approx(acc)
        val = np.load(folder / e["seed_validation_files"][seed])
        assert e["seed_metrics"][seed]["validation"]["accuracy"] == pytest.approx(100 * float((val.argmax(1) == y["validation"]).mean()))
        per.append(e["seed_metrics"][seed])
    assert e["metrics"]["accuracy"] == pytest.approx(np.mean([p["eval"]["accuracy"] for p in per]))
    assert e["validation_metrics"]["accuracy"] == pytest.approx(np.mean([p["validation"]["accuracy"] for p in per]))


def test_master_table_mean_and_sd(two_seeds):
    """The `<task>_<metric>` column is the mean over seeds, `_sd` the sample sd; Markdown shows mean ± sd."""
    r = rows(two_seeds)
    accs = [s["eval"]["accuracy"] for s in next(e for e in manifest(two_seeds)["models"]
                                              if e["method"] == "multi_average")["seed_metrics"].values()]
    assert float(r["multi_average"]["demo_acc"]) == pytest.approx(np.mean(accs), abs=0.006)
    assert float(r["multi_average"]["demo_acc_sd"]) == pytest.approx(np.std(accs, ddof=1), abs=0.006)
    assert r["t1"]["demo_acc_sd"] == ""                       # a teacher trained once has no spread
    assert r["multi_average"]["demo_ece_sd"] != "" and r["t1"]["demo_ece_sd"] == ""   # ECE: mean ± sd likewise
    md = (two_seeds / "results" / "master_results.md").read_text()
    assert f"| multi_average | multi | {r['multi_average']['demo_acc']} ± {r['multi_average']['demo_acc_sd']} |" in md


def test_one_seed_has_no_sd_columns(cfg, tmp_path):
    out = tmp_path / "one"
    assert main(["evaluate", str(cfg), "--out", str(out), "distill.baseline=false"]) == 0
    assert (out / "results" / "master_results.csv").read_text().splitlines()[0] == "method,type,demo_acc,demo_ece,AVG"
    assert "±" not in (out / "results" / "master_results.md").read_text()
    assert manifest(out)["seeds"] == [7]


def test_adding_a_seed_trains_only_that_seed(two_seeds, tmp_path, capsys):
    run = tmp_path / "r"
    shutil.copytree(two_seeds, run)
    before = {p: p.read_bytes() for p in (run / "demo" / "students").rglob("logits_eval.npy")}
    capsys.readouterr()
    assert main(["evaluate", str(run / "config.yaml"), "--seeds", "3"]) == 0
    log = capsys.readouterr().out
    assert built(log) == ["students/no_kd@seed2", "students/multi_average@seed2", "eval"]
    assert all(p.read_bytes() == b for p, b in before.items())
    assert manifest(run)["seeds"] == [7, 1, 2] and load_config(run / "config.yaml").seeds == [7, 1, 2]
    capsys.readouterr()
    assert main(["evaluate", str(run / "config.yaml")]) == 0   # the saved config keeps its seeds: all cached
    assert built(capsys.readouterr().out) == []


def test_teachers_retrained_per_seed_only_when_asked(cfg, tmp_path, capsys):
    """reseed_teachers: each seed's students read that seed's teachers; a teacher pinned to a seed stays one."""
    out = tmp_path / "re"
    assert main(["evaluate", str(cfg), "--out", str(out), "--seeds", "2", "reseed_teachers=true",
                 "teachers.1.seed=5", "distill.baseline=false"]) == 0
    d = out / "demo"
    assert sorted(p.name for p in (d / "teachers").iterdir()) == ["t1", "t1@seed1", "tf"]
    assert sorted(p.name for p in (d / "logits").iterdir()) == ["t1", "t1@seed1", "tf"]
    assert json.loads((d / "teachers" / "t1@seed1" / "manifest.json").read_text())["key"]["seed"] == 1
    assert not np.array_equal(np.load(d / "logits" / "t1" / "train.npy"), np.load(d / "logits" / "t1@seed1" / "train.npy"))
    keys = {f: json.loads((d / "students" / f / "manifest.json").read_text())["key"]["teachers"]
            for f in ("multi_average", "multi_average@seed1")}
    t1_outputs = lambda f: json.loads((d / "logits" / f / "manifest.json").read_text())["outputs"]
    assert keys["multi_average"]["t1"] == t1_outputs("t1") and keys["multi_average@seed1"]["t1"] == t1_outputs("t1@seed1")
    assert keys["multi_average"]["tf"] == keys["multi_average@seed1"]["tf"]
    by = {e["method"]: e for e in manifest(out)["models"]}
    assert by["t1"]["seeds"] == [7, 1] and by["t1"]["seed_files"]["1"] == "t1@seed1.eval.npy"
    assert by["tf"]["seeds"] == [5]
    assert rows(out)["t1"]["demo_acc_sd"] != ""
    capsys.readouterr()
    assert main(["verify-logits", str(out)]) == 0 and "t1@seed1" in capsys.readouterr().out


def test_seed_sweep_and_param_sweep_on_a_multi_seed_run(two_seeds, tmp_path):
    """`mtkd seeds` still adds seeds to a finished run (one seed per point, the base teachers reused);
    a parameter sweep trains every point at the run's seeds and reports their mean."""
    run = tmp_path / "r"
    shutil.copytree(two_seeds, run)
    assert main(["seeds", str(run), "--seeds", "3", "--no-baseline"]) == 0
    point = run / "sweeps" / "seeds" / "seed=3" / "demo"
    assert (point / "students" / "multi_average" / "manifest.json").is_file()
    a, b = (point / "logits" / "t1" / "train.npy").stat(), (run / "demo" / "logits" / "t1" / "train.npy").stat()
    assert a.st_ino == b.st_ino or a.st_mtime_ns == b.st_mtime_ns      # reused: a hard link (or a copy)
    assert main(["sweep", str(run), "--param", "distill.temperature=2", "--no-baseline"]) == 0
    t2 = run / "sweeps" / "T" / "T=2" / "demo" / "students"
    accs = [json.loads((t2 / f / "metrics.json").read_text())["eval"]["accuracy"] for f in ("multi_average", "multi_average@seed1")]
    with open(run / "sweeps" / "T" / "sweep_results.csv", newline="") as f:
        (row,) = [r for r in csv.DictReader(f) if r["method"] == "multi_average"]
    assert float(row["demo_acc"]) == pytest.approx(np.mean(accs), abs=0.006)


def test_seeds_offered_only_where_students_are_trained():
    from mtkd.cli import UsageError, _parser
    p = _parser()
    assert p.parse_args(["run", "c.yaml", "--seeds", "3"]).seeds == 3
    assert p.parse_args(["distill-multi", "c.yaml", "--seeds", "2"]).seeds == 2
    for teacher_only in ("headroom", "finetune-teachers", "extract-logits"):
        with pytest.raises(UsageError, match="unrecognized arguments: --seeds"):
            p.parse_args([teacher_only, "c.yaml", "--seeds", "3"])
