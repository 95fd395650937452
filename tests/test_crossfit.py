"""`crossfit: k` on a teacher: train-split logits out of fold, validation/eval logits from the teacher
fitted on all of train; and each teacher kind's stage key holds only the fields that kind reads."""
import json
import os
import re
import signal
import subprocess
import sys

import numpy as np
import pytest

from _noise import noise_config
from mtkd.cli import main
from mtkd.teachers.crossfit import fold_ids


def test_folds_partition_train_stratified_and_seeded():
    y = np.array([0] * 60 + [1] * 40)
    f = fold_ids(y, 5, seed=3)
    assert sorted(np.unique(f)) == [0, 1, 2, 3, 4]
    for j in range(5):   # stratified: every fold holds 12 of class 0 and 8 of class 1
        assert (np.bincount(y[f == j]) == [12, 8]).all()
    assert np.array_equal(f, fold_ids(y, 5, seed=3)) and not np.array_equal(f, fold_ids(y, 5, seed=4))
    assert len(np.unique(fold_ids(np.array([0] * 9 + [1]), 3, 0))) == 3   # a class rarer than k: plain k-fold


def test_groups_never_span_two_folds():
    """With group ids (content shared between examples), each group lies in one fold; still stratified."""
    rng = np.random.default_rng(0)
    groups = rng.integers(0, 40, 200)
    y = (groups % 2).astype(np.int64)            # a group's examples share their label, as phrases of one sentence
    f = fold_ids(y, 4, seed=1, groups=groups)
    for g in np.unique(groups):
        assert len(np.unique(f[groups == g])) == 1
    assert len(np.unique(f)) == 4 and all(0 < (y[f == j] == 1).mean() < 1 for j in range(4))


@pytest.fixture(scope="module")
def noise(tmp_path_factory):
    """Random words with random labels: nothing generalises, so a teacher right on train has memorised it."""
    d = tmp_path_factory.mktemp("noise")
    noise_config(d, "  - {name: tf, kind: tfidf, C: 1000}\n  - {name: tfk, kind: tfidf, C: 1000, crossfit: 5}")
    assert main(["extract-logits", str(d / "cfg.yaml"), "--out", str(d / "run")]) == 0
    return d / "run" / "noise"


def accuracy(task_dir, teacher, split):
    y = [json.loads(line)["label"] for line in (task_dir / "data" / f"{split}.jsonl").read_text().splitlines()]
    return 100 * float((np.load(task_dir / "logits" / teacher / f"{split}.npy").argmax(1) == np.array(y)).mean())


def test_crossfit_train_logits_are_out_of_fold(noise):
    """Guards the leak of issue 8: the memorising teacher is ~100% right on its own train split, and near
    chance (its validation level) once every train example is labelled by a copy that never saw it."""
    assert accuracy(noise, "tf", "train") == 100.0
    assert abs(accuracy(noise, "tfk", "train") - 50) < 10
    assert abs(accuracy(noise, "tfk", "train") - accuracy(noise, "tfk", "validation")) < 15
    assert not np.array_equal(np.load(noise / "logits" / "tf" / "train.npy"), np.load(noise / "logits" / "tfk" / "train.npy"))


def test_crossfit_keeps_the_full_teacher_for_validation_and_eval(noise):
    for split in ("validation", "eval"):
        assert np.array_equal(np.load(noise / "logits" / "tf" / f"{split}.npy"), np.load(noise / "logits" / "tfk" / f"{split}.npy"))
    m = json.loads((noise / "logits" / "tfk" / "manifest.json").read_text())
    assert m["train_out_of_fold"] == 5 and m["key"]["teacher"]["teacher"]["crossfit"] == 5


HF_CFG = """
tasks: [{name: demo, demo_size: 120}]
teachers:
  - {name: t1, model: tiny, epochs: 2, max_length: 16}
  - {name: t1k, model: tiny, epochs: 2, max_length: 16, crossfit: 2}
student: {model: tiny, layers: 1, epochs: 1, max_length: 16}
"""


@pytest.fixture(scope="module")
def hf_run(tmp_path_factory):
    d = tmp_path_factory.mktemp("hf")
    (d / "c.yaml").write_text(HF_CFG)
    assert main(["extract-logits", str(d / "c.yaml"), "--out", str(d / "run")]) == 0
    return d


def test_crossfit_of_an_hf_teacher(hf_run):
    """k copies of an HF teacher (tiny BERT): out-of-fold train logits, the same validation/eval logits."""
    d = hf_run / "run" / "demo" / "logits"
    assert not np.allclose(np.load(d / "t1" / "train.npy"), np.load(d / "t1k" / "train.npy"))
    for split in ("validation", "eval"):
        np.testing.assert_allclose(np.load(d / "t1" / f"{split}.npy"), np.load(d / "t1k" / f"{split}.npy"), atol=1e-5)


@pytest.mark.slow   # kill-and-resume: real subprocesses
@pytest.mark.parametrize("where", ["train:after_checkpoint@5", "train:before_checkpoint@7"])
def test_crossfit_killed_between_folds_resumes_bit_identical(hf_run, tmp_path, where):
    """Killed inside fold copy 0, then inside fold copy 1 (2 epochs each of t1, t1k's full fit, fold 0,
    fold 1): the rerun resumes from the checkpoints and ends with the same logits."""
    out = tmp_path / "run"
    env = {**os.environ, "MTKD_FAILPOINT": where}
    cmd = [sys.executable, "-m", "mtkd", "extract-logits", str(hf_run / "c.yaml"), "--out", str(out)]
    assert subprocess.run(cmd, env=env, capture_output=True).returncode == -signal.SIGKILL
    assert list((out / "demo" / "teachers").glob(".t1k.work-*/crossfit/fold0/checkpoint"))   # killed mid-crossfit
    assert subprocess.run(cmd, capture_output=True).returncode == 0
    for split in ("train", "validation", "eval"):
        rel = f"demo/logits/t1k/{split}.npy"
        assert (out / rel).read_bytes() == (hf_run / "run" / rel).read_bytes(), split


def test_teacher_keys_hold_only_their_kinds_fields(tmp_path, capsys):
    """Changing a TF-IDF-only field retrains only the TF-IDF teacher, an HF-only field only the HF one."""
    cfg = tmp_path / "c.yaml"
    cfg.write_text("""
tasks: [{name: demo, demo_size: 120}]
teachers: [{name: t1, model: tiny, epochs: 1, max_length: 16}, {name: tf, kind: tfidf}]
student: {model: tiny, layers: 1, epochs: 1, max_length: 16}
""")
    out = str(tmp_path / "run")
    assert main(["finetune-teachers", str(cfg), "--out", out]) == 0
    for overrides, rebuilt in [(["teachers.1.C=3"], "tf"), (["teachers.1.C=3", "teachers.0.lr=0.01"], "t1")]:
        capsys.readouterr()
        assert main(["finetune-teachers", str(cfg), "--out", out, "--recompute", *overrides]) == 0
        assert re.findall(r"build\s+\S+/teachers/(\S+)", capsys.readouterr().out) == [rebuilt], overrides
