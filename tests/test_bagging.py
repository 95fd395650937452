"""Bagged teachers (`bag: seed`): each fitted on its own bootstrap resample of train, so teachers of one kind
differ in the data they saw (issue 30: voices that differ in data)."""
import json

import numpy as np
import pytest

from mtkd.carve import bootstrap
from _noise import noise_config
from mtkd.cli import main
from mtkd.config import load_config, teacher_fields
from mtkd.errors import MtkdError


def test_bootstrap_is_seeded_with_replacement():
    a, b = bootstrap(1000, 1), bootstrap(1000, 2)
    assert np.array_equal(a, bootstrap(1000, 1)) and not np.array_equal(a, b)
    assert len(a) == 1000 and a.min() >= 0 and a.max() < 1000
    assert 0.58 < len(np.unique(a)) / 1000 < 0.68        # 1 - 1/e of the rows drawn, the rest duplicates


@pytest.fixture(scope="module")
def noise(tmp_path_factory):
    """Random words with random labels: a memorising TF-IDF is right exactly on the rows it was fitted on."""
    d = tmp_path_factory.mktemp("bag")
    noise_config(d, "  - {name: full, kind: tfidf, C: 1000}\n  - {name: b1, kind: tfidf, C: 1000, bag: 1}\n"
                    "  - {name: b2, kind: tfidf, C: 1000, bag: 2}", vocab=3000, name="bag")
    assert main(["extract-logits", str(d / "cfg.yaml"), "--out", str(d / "run")]) == 0
    return d / "run" / "noise"


def _train_right(task_dir, teacher):
    y = np.array([json.loads(line)["label"] for line in (task_dir / "data" / "train.jsonl").read_text().splitlines()])
    return np.load(task_dir / "logits" / teacher / "train.npy").argmax(1) == y


def test_a_bagged_teacher_is_fitted_on_its_resample_only(noise):
    """Right on ~every row it drew, at chance on the rows it did not: it saw exactly its bootstrap resample (a
    teacher that ignored `bag` would be right on every row, as `full` is)."""
    assert _train_right(noise, "full").mean() == 1.0
    for name, seed in (("b1", 1), ("b2", 2)):
        right = _train_right(noise, name)
        drawn = np.zeros(len(right), dtype=bool)
        drawn[bootstrap(len(right), seed)] = True
        assert right[drawn].mean() > 0.97 and abs(right[~drawn].mean() - 0.5) < 0.12, (name, right[~drawn].mean())
    man = json.loads((noise / "teachers" / "b1" / "manifest.json").read_text())
    assert man["bag"] == 1 and man["key"]["teacher"]["bag"] == 1
    assert "bag" not in json.loads((noise / "teachers" / "full" / "manifest.json").read_text())["key"]["teacher"]


def test_bag_is_keyed_only_when_set_and_checked(tmp_path):
    cfg = tmp_path / "c.yaml"
    base = "tasks: [{name: demo, demo_size: 60}]\nteachers: [{name: t, kind: tfidf%s}]\n"
    cfg.write_text(base % "")
    assert "bag" not in teacher_fields(load_config(cfg).teachers[0])   # unset: every existing key unchanged
    for extra, message in ((", bag: -1", "bag must be a seed >= 0"), (", bag: 1, crossfit: 3", "bag and crossfit")):
        cfg.write_text(base % extra)
        with pytest.raises(MtkdError, match=message):
            load_config(cfg)
