"""Honest soft labels: whose train logits are in-sample is said (a warning per teacher and a field in the
evaluate manifest), and a teacher whose validation score is far above its eval score is flagged."""
import json

import numpy as np
import pytest
import yaml

from mtkd.cli import main
from mtkd.config import load_config
from mtkd.experiments import validation_gap_threshold
from mtkd.teachers import train_logits_provenance
from mtkd.tasks import load_task

CFG = """\
name: prov
tasks: [{name: demo, demo_size: 300}]
teachers:
  - {name: hf, model: tiny, epochs: 1, lr: 1.0e-3, max_length: 32}
  - {name: tf_oof, kind: tfidf, crossfit: 3}
student: {model: tiny, layers: 1, epochs: 1, max_length: 32}
distill: {strategies: [average], baseline: false, single_teacher: false}
"""


def test_provenance_of_each_kind():
    cfg = load_config_text(CFG)
    hf, oof = cfg.teachers
    assert train_logits_provenance(hf) == "in-sample" and train_logits_provenance(oof) == "out-of-fold"
    import dataclasses
    assert train_logits_provenance(dataclasses.replace(hf, epochs=0)) == "unknown"   # a checkpoint as it is


def test_validation_gap_threshold_is_five_points_or_three_standard_errors():
    assert validation_gap_threshold(85.0, 10_000, 10_000) == 5.0
    # 60 validation rows at 50%: se = 100 sqrt(.25 (1/60 + 1/200)) = 7.36 -> 22.1 points
    assert validation_gap_threshold(50.0, 60, 200) == pytest.approx(300 * np.sqrt(0.25 * (1 / 60 + 1 / 200)))


def load_config_text(text, tmp=None):
    import tempfile
    from pathlib import Path
    d = Path(tempfile.mkdtemp())
    (d / "c.yaml").write_text(text)
    return load_config(d / "c.yaml")


def test_in_sample_and_validation_leak_are_flagged(tmp_path, capsys):
    """An HF teacher fitted on train (in-sample), a cross-fitted TF-IDF (out-of-fold, no warning), and a
    `kind: logits` teacher that is right on every validation row but at chance on eval (it saw validation)."""
    (tmp_path / "c.yaml").write_text(CFG)
    task = load_task(load_config(tmp_path / "c.yaml").tasks[0])
    rng = np.random.default_rng(0)
    ext = tmp_path / "ext"
    ext.mkdir()
    for split in ("train", "validation", "eval"):
        y = task.splits[split].labels
        guess = y if split == "validation" else rng.integers(0, 2, len(y))
        np.save(ext / f"{split}.npy", (np.eye(2)[guess] * 4.0).astype(np.float32))
        (ext / f"{split}.json").write_text(json.dumps({"label_names": list(task.label_names), "kind": "logits",
                                                       "fingerprint": task.fingerprints()[split]}))
    data = yaml.safe_load(CFG)
    data["teachers"].append({"name": "leaky", "kind": "logits",
                             "files": {s: str(ext / f"{s}.npy") for s in ("train", "validation", "eval")}})
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(data))
    run = tmp_path / "run"
    assert main(["run", str(tmp_path / "c.yaml"), "--out", str(run)]) == 0
    err = capsys.readouterr().err
    warned = [line for line in err.splitlines() if line.startswith("mtkd: warning: teacher")]
    assert any("teacher hf on demo: its train logits are in-sample" in w for w in warned)
    assert any("teacher leaky on demo: its train logits come from a model trained elsewhere" in w for w in warned)
    assert any("teacher leaky on demo: validation accuracy 100.00" in w and "trained on the validation rows" in w
               for w in warned)
    assert not [w for w in warned if "tf_oof" in w] and not [w for w in warned if "hf on demo: validation" in w]
    models = json.loads((run / "demo" / "eval" / "manifest.json").read_text())["models"]
    assert {m["method"]: m["train_logits"] for m in models if m["type"] == "teacher"} == \
        {"hf": "in-sample", "tf_oof": "out-of-fold", "leaky": "unknown"}
    conf = (run / "analysis" / "teacher_confidence.csv").read_text().splitlines()
    assert conf[0].split(",")[:4] == ["task", "split", "teacher", "train logits"]
    assert {tuple(r.split(",")[2:4]) for r in conf[1:]} == {("hf", "in-sample"), ("tf_oof", "out-of-fold"),
                                                            ("leaky", "unknown")}
    assert "| train logits |" in (run / "report.md").read_text()
