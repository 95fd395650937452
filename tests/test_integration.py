"""Integration tests on the packaged MiniLM (offline) and on real GLUE SST-2 from ../shared."""
import json
from pathlib import Path

import numpy as np
import pytest

from mtkd.cli import main

pytestmark = pytest.mark.slow   # slow tier: the packaged MiniLM and real GLUE, the demo end to end (python -m pytest -m 'not slow' skips it)

GLUE = Path(__file__).resolve().parents[2] / "shared" / "data" / "glue"


def rows(out: Path) -> dict:
    lines = (out / "results" / "master_results.csv").read_text().splitlines()
    return {l.split(",")[0]: l.split(",") for l in lines[1:]}


def test_packaged_minilm_end_to_end(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("""
name: minilm_it
tasks: [{name: demo, demo_size: 800}]
teachers:
  - {name: minilm_l2, model: minilm, layers: 2, epochs: 3, lr: 3.0e-4, max_length: 40}
  - {name: tfidf, kind: tfidf}
student: {model: minilm, layers: 1, epochs: 2, lr: 2.0e-4, max_length: 40}
distill: {strategies: [average, learned_gating]}
""")
    out = tmp_path / "run"
    assert main(["run", str(cfg), "--out", str(out)]) == 0
    r = rows(out)
    assert set(r) == {"minilm_l2", "tfidf", "no_kd", "kd_minilm_l2", "kd_tfidf", "multi_average", "multi_learned_gating"}
    assert float(r["minilm_l2"][2]) > 65.0              # a real pretrained encoder learns the task (73% here)
    base = np.load(out / "demo" / "students" / "no_kd" / "logits_eval.npy")
    kd = np.load(out / "demo" / "students" / "multi_average" / "logits_eval.npy")
    assert not np.allclose(base, kd)
    assert (out / "demo" / "teachers" / "minilm_l2" / "model" / "model.safetensors").is_file()
    assert main(["verify-logits", str(out)]) == 0


@pytest.mark.skipif(not (GLUE / "SST-2").is_dir(), reason="real GLUE data not found at ../shared/data/glue")
def test_real_sst2_pipeline(tmp_path):
    out = tmp_path / "sst2"
    assert main(["run", str(Path(__file__).resolve().parents[1] / "configs" / "sst2_cpu.yaml"), "--out", str(out),
                 f"tasks.0.glue_dir={GLUE}", "tasks.0.max_train_examples=3000", "teachers.0.lr=1e-4",
                 "teachers.0.layers=3", "teachers.1.layers=1", "student.layers=1", "student.epochs=1",
                 "distill.strategies=[average,best_per_sample]"]) == 0
    r = rows(out)
    assert len((out / "sst2" / "eval" / "labels_eval.npy").read_bytes()) > 872 * 8   # all of GLUE dev
    assert float(r["minilm_l6"][2]) > 72.0      # 3 layers, 2,700 examples, 1 epoch: 77% here
    assert float(r["tfidf"][2]) > 68.0          # 75% here
    assert {"no_kd", "multi_average", "multi_best_per_sample"} <= set(r)
    assert (out / "report.html").is_file()


def test_demo_end_to_end(tmp_path):
    """`mtkd demo` as the README runs it: teacher rows, the no-KD row, one single-teacher row per
    teacher, one row per fusion strategy, numbers from training, and the report."""
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out)]) == 0
    r = rows(out)
    types = {m: v[1] for m, v in r.items()}
    assert types == {"minilm_l6": "teacher", "minilm_l3": "teacher", "tfidf": "teacher", "no_kd": "baseline",
                     "kd_minilm_l6": "single", "kd_minilm_l3": "single", "kd_tfidf": "single",
                     "multi_average": "multi", "multi_weighted": "multi", "multi_best_per_sample": "multi",
                     "multi_learned_gating": "multi"}
    acc = {m: float(v[2]) for m, v in r.items()}
    assert acc["minilm_l6"] > acc["tfidf"] + 10          # teachers of different strength
    assert acc["no_kd"] > 70                              # the baseline learns
    assert any(abs(acc[m] - acc["no_kd"]) > 1 for m in acc if m.startswith(("kd_", "multi_")))
    assert (out / "report.html").is_file() and (out / "analysis" / "ranking_heatmap.png").is_file()
    # the shipped student, quantized (issue 34): int8 agrees with the run on >= 99% of the demo's eval examples
    ship = tmp_path / "ship"
    assert main(["export", str(out), "--out", str(ship), "--quantize", "int8"]) == 0
    q = json.loads((ship / "mtkd_export.json").read_text())["int8"]
    n_eval = len((out / "demo" / "data" / "eval.jsonl").read_text().splitlines())
    assert q["checked_examples"] == n_eval and q["argmax_agreement"] >= 0.99, q
