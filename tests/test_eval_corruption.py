"""Guards selection on validation (issue 8.1) on a real pipeline run: the same run twice, the second with every
eval label flipped. Everything chosen or fitted — the best teacher / single / multi / student, the `selected` rows
of significance.csv, the worst slices (worst_slices.csv, students_at_teacher_worst.csv), the `weighted` fusion
scores, the calibration temperatures, the students themselves — must be identical, while the eval metrics change. With two classes, flipping turns each eval accuracy `a` into `100 - a`,
so anything picked or fitted on eval would pick the worst model instead of the best (the test checks that the
candidates' eval metrics differ, so it can fail) or record different scores and temperatures. The run has two
seeds, so the analysis reads the pipeline's multi-seed eval format end to end."""
import csv
import json

import numpy as np
import pytest

from mtkd import demo_data
from mtkd.cli import main

CONFIG = """
name: corrupt
seed: 3
seeds: [3, 1]
tasks: [{{name: cor, source: file, train_file: {train}, eval_file: {eval}, label_names: [negative, positive]}}]
teachers:
  - {{name: t1, model: tiny, epochs: 2, lr: 1.0e-3, max_length: 32}}
  - {{name: tf, kind: tfidf}}
  - {{name: tf1, kind: tfidf, ngram_max: 1, C: 0.05}}
student: {{model: tiny, layers: 1, epochs: 2, lr: 2.0e-3, max_length: 32}}
distill: {{strategies: [average, weighted, calibrated_average]}}
"""


def _write(path, texts, labels):
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["text", "label"])
        w.writerows((t, ["negative", "positive"][y]) for t, y in zip(texts, labels))


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    d = tmp_path_factory.mktemp("corrupt")
    _write(d / "train.csv", *demo_data.generate(1000, 3, "train"))
    texts, labels = demo_data.generate(200, 3, "eval")
    _write(d / "eval.csv", texts, labels)
    _write(d / "eval_flipped.csv", texts, [1 - y for y in labels])
    out = {}
    for name, ev in (("clean", "eval.csv"), ("flipped", "eval_flipped.csv")):
        cfg = d / f"{name}.yaml"
        cfg.write_text(CONFIG.format(train=d / "train.csv", eval=d / ev))
        assert main(["run", str(cfg), "--out", str(d / name)]) == 0
        out[name] = d / name
    return out


def _json(path):
    return json.loads(path.read_text())


def _rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_eval_labels_change_no_selection_weight_or_temperature(runs):
    clean, flipped = runs["clean"], runs["flipped"]
    a, b = (_json(r / "analysis" / "success_metrics.json")["tasks"]["cor"] for r in (clean, flipped))
    man = _json(clean / "cor" / "eval" / "manifest.json")
    # the test can fail: within each kind the candidates' eval metrics differ, so an eval-based pick would flip
    for kind in ("teacher", "single", "multi"):
        values = [m["metrics"]["accuracy"] for m in man["models"] if m["type"] == kind]
        assert len(set(values)) > 1, kind
    for role in ("best_teacher", "best_single", "best_multi", "best_student", "baseline"):
        assert a[role]["method"] == b[role]["method"], role
        assert a[role]["validation"] == b[role]["validation"], role
        assert a[role]["value"] == pytest.approx(100 - b[role]["value"]), role     # reported on eval: flipped
    sig_a, sig_b = (_rows(r / "analysis" / "significance.csv") for r in (clean, flipped))
    assert [(r["method"], r["reference"], r["selected"]) for r in sig_a] == \
        [(r["method"], r["reference"], r["selected"]) for r in sig_b]
    assert [r["diff_pp"] for r in sig_a] != [r["diff_pp"] for r in sig_b]
    assert all(r["seeds"] == "2" and [k.split(":")[0] for k in r["p_per_seed"].split(";")] == ["3", "1"]
               for r in sig_a)
    for method in ("multi_average", "multi_weighted", "multi_calibrated_average", "kd_t1", "no_kd",
                   "multi_weighted@seed1"):
        ma, mb = (_json(r / "cor" / "students" / method / "manifest.json") for r in (clean, flipped))
        # everything the stage recorded besides its key (eval fingerprint), outputs, timing and eval metrics:
        # teacher scores for `weighted`, calibration temperatures, a temperature chosen by `auto`, ...
        run_specific = {"key", "outputs", "seconds", "created", "metrics"}
        assert {k: v for k, v in ma.items() if k not in run_specific} == \
            {k: v for k, v in mb.items() if k not in run_specific}, method
        va, vb = (np.load(r / "cor" / "students" / method / "logits_validation.npy") for r in (clean, flipped))
        assert np.array_equal(va, vb), method                       # the student never saw eval labels
        assert ma["metrics"]["validation"] == mb["metrics"]["validation"]
        assert ma["metrics"]["eval"]["accuracy"] == pytest.approx(100 - mb["metrics"]["eval"]["accuracy"])
    # worst slices (issue 11.4): class and agreement region selected on validation, so the same in both runs
    ws_a, ws_b = (_rows(r / "analysis" / "worst_slices.csv") for r in (clean, flipped))
    picks = lambda rows: [(r["model"], r["worst class"], r["class val (%)"], r["worst region"], r["region val (%)"])  # noqa: E731
                          for r in rows]
    assert picks(ws_a) == picks(ws_b)
    assert [r["class eval (%)"] for r in ws_a] != [r["class eval (%)"] for r in ws_b]
    at_a, at_b = (_rows(r / "analysis" / "students_at_teacher_worst.csv") for r in (clean, flipped))
    chosen = lambda rows: [(r["teacher"], r["kind"], r["slice"], r["teacher's worst"], r["student"]) for r in rows]  # noqa: E731
    assert chosen(at_a) == chosen(at_b) and {r["selected_on"] for r in at_a} == {"validation"}
    recorded = _json(clean / "cor" / "students" / "multi_weighted" / "manifest.json")
    assert {"teacher_validation_scores", "teacher_calibration_temperatures"} <= set(recorded)
