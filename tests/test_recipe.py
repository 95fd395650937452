"""The distillation recipe in the pipeline (tiny models built in code): every strategy trains a
student, the gate's record is saved, `temperature: auto` picks T on validation, `calibrate` and the
strategy options are in the student's stage key."""
import json

import numpy as np
import pytest
import torch

from mtkd.experiments import run_config
from mtkd.recipe import Recipe, cached_teachers

TINY = """
name: tiny
seed: 3
tasks: [{name: demo, demo_size: 240}]
teachers:
  - {name: t1, model: tiny, epochs: 1, lr: 2.0e-3, max_length: 16}
  - {name: tf, kind: tfidf}
student: {model: tiny, layers: 1, epochs: 1, lr: 2.0e-3, max_length: 16}
distill: {strategies: [learned_gating, kl_sum, agreement, curriculum], single_teacher: false, baseline: false}
"""


def manifest(out, method):
    return json.loads((out / "demo" / "students" / method / "manifest.json").read_text())


def test_strategies_gate_record_auto_temperature_and_keys(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(TINY)
    out = tmp_path / "run"
    run_config(cfg, out, until="multi", log=lambda *a: None)
    gate = json.loads((out / "demo" / "students" / "multi_learned_gating" / "gate.json").read_text())
    assert gate["teachers"] == ["t1", "tf"] and len(gate["per_epoch"]) == 1 and not gate["joint"]
    assert sum(gate["train"].values()) == pytest.approx(1.0, abs=1e-5)
    n_eval = len(np.load(out / "demo" / "students" / "multi_learned_gating" / "logits_eval.npy"))
    assert sum(r["n"] for r in gate["eval_regions"].values()) == n_eval   # every eval example in one region
    keys = {m: manifest(out, m)["key"] for m in ("multi_kl_sum", "multi_agreement", "multi_curriculum")}
    assert keys["multi_agreement"]["agreement_shift"] == 0.5 and "curriculum_end" not in keys["multi_agreement"]
    assert keys["multi_curriculum"]["curriculum_end"] == 0.5 and "calibrate" not in keys["multi_kl_sum"]

    # calibrate + auto T: new keys, so those students are retrained; the validation-best T is recorded
    run_config(cfg, out, ["distill.strategies=[kl_sum]", "distill.calibrate=true", "distill.temperature=auto",
                          "distill.temperature_grid=[1,4]"], until="multi", recompute=True, log=lambda *a: None)
    m = manifest(out, "multi_kl_sum")
    assert m["key"]["calibrate"] is True and m["key"]["temperature_grid"] == [1.0, 4.0]
    grid = m["temperature_grid_validation"]
    assert set(grid) == {"1", "4"}
    best = max(grid, key=lambda t: (grid[t], -float(t)))
    assert m["temperature"] == float(best)
    assert m["metrics"]["validation"]["accuracy"] == pytest.approx(grid[best])
    run_config(cfg, out, ["distill.strategies=[kl_sum]", "distill.calibrate=true", "distill.temperature=auto",
                          "distill.temperature_grid=[1,4]"], log=lambda *a: None)     # evaluate + report
    ev = json.loads((out / "demo" / "eval" / "manifest.json").read_text())
    assert ev["temperature"] == m["temperature"]
    assert next(e for e in ev["models"] if e["method"] == "multi_kl_sum")["temperature"] == m["temperature"]


def test_recipe_unlabelled_examples_get_the_kd_term_only():
    """Label -1 (a transfer example): CE skips it, KD keeps it. Guards the labelled mask."""
    z = np.array([[[2.0, 0.0], [0.0, 2.0]]], dtype=np.float32)           # one teacher, two examples
    from mtkd.fusion import average
    r = Recipe(torch.tensor([0, -1]), cached_teachers(z), average, temperature=2.0, alpha=0.5)
    s = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    loss, parts = r(s, None, torch.tensor([0, 1]))
    ce = torch.nn.functional.cross_entropy(s[:1], torch.tensor([0])) / 2   # summed over labelled rows / batch size
    assert parts["ce"].item() == pytest.approx(ce.item())
    assert loss.item() == pytest.approx(0.5 * parts["kd"].item() + 0.5 * ce.item())


def test_gate_weights_reach_the_analysis_and_the_report(tmp_path):
    """gate.json -> eval/<method>.gate.json -> the analysis table gate_weights -> report.md."""
    cfg = tmp_path / "c.yaml"
    cfg.write_text(TINY.replace("[learned_gating, kl_sum, agreement, curriculum]", "[learned_gating]")
                   .replace("baseline: false", "baseline: true").replace("single_teacher: false", "single_teacher: true"))
    out = tmp_path / "run"
    run_config(cfg, out, log=lambda *a: None)
    ev = json.loads((out / "demo" / "eval" / "manifest.json").read_text())
    assert next(e for e in ev["models"] if e["method"] == "multi_learned_gating")["gate_file"] == "multi_learned_gating.gate.json"
    table = (out / "analysis" / "gate_weights.csv").read_text().splitlines()
    assert table[0] == "task,student,scope,examples,t1,tf"
    assert table[1].startswith("demo,multi_learned_gating,train,,")
    assert any(",eval all agree," in r for r in table)
    assert "Learned gate: mean weight per teacher" in (out / "report.md").read_text()


def test_temperature_auto_parses_and_other_string_fields_stay_strings():
    """`temperature: auto` needs a float-or-word field; the coercion must not turn a quoted "2" of a
    plain `str | None` field into a float."""
    from mtkd.config.load import _coerce
    assert _coerce(float | str, "auto", "t") == "auto" and _coerce(float | str, "2", "t") == 2.0
    assert _coerce(str | None, "2", "s") == "2"
