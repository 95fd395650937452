"""Sparse students (mtkd.sparsity): the schedule, the masks, the saved pruned student, resume."""
import json
import os
import signal
import subprocess
import sys

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from mtkd import sparsity
from mtkd.cli import main
from mtkd.models import encode, load_classifier, load_saved_classifier, load_tokenizer
from mtkd.train import predict

TINY = """
name: tiny_sparse
seed: 5
tasks: [{name: demo, demo_size: 400}]
teachers:
  - {name: t1, model: tiny, epochs: 1, lr: 1.0e-3, max_length: 32}
  - {name: tf, kind: tfidf}
student: {model: tiny, layers: 2, epochs: 2, lr: 2.0e-3, max_length: 32, sparsity: 0.6, save_model: true}
distill: {strategies: [average], baseline: true, single_teacher: false}
"""


def test_cubic_schedule_by_hand():
    """Zhu & Gupta: s_f (1 - (1 - p)^3); 0 before start, s_f from end on; constant is s_f throughout."""
    at = lambda step, **kw: sparsity.target_at(step, 1000, 0.8, kw.get("schedule", "cubic"), kw.get("start", 0.2), 0.6)
    assert at(0) == 0.0 and at(200) == 0.0
    assert at(400) == pytest.approx(0.8 * (1 - 0.5 ** 3))          # halfway: 0.7
    assert at(405) == at(400)                                        # masks move every total/100 = 10 steps
    assert at(599) == pytest.approx(0.8 * (1 - 0.025 ** 3))         # rounded down to step 590: p = 390 / 400
    assert at(600) == at(1000) == 0.8
    assert at(0, schedule="constant") == 0.8
    values = [at(s) for s in range(0, 1001)]
    assert values == sorted(values)                                  # never less sparse later


def test_unstructured_masks_every_encoder_matrix_to_the_target():
    """Each encoder linear weight has exactly round(s * n) zeros (per layer); embeddings, pooler and head stay dense;
    a weight once pruned stays pruned as the target grows."""
    model = load_classifier("tiny", 2, 2, seed=0)
    dense = {n: p.clone() for n, p in model.named_parameters() if "embeddings" in n or "pooler" in n or "classifier" in n}
    pruner = sparsity.Pruner(model, 0.7, "cubic", 0.0, 0.5)
    assert all(float(m.weight_mask.min()) == 1.0 for m in pruner.modules)      # cubic starts dense
    pruner.on_step(20, 100)
    early = [m.weight_mask.clone() for m in pruner.modules]
    want = 0.7 * (1 - (1 - 20 / 50) ** 3)
    for m in pruner.modules:
        assert int((m.weight_mask == 0).sum()) == round(want * m.weight_mask.numel())
    with torch.no_grad():
        for m in pruner.modules:
            m.weight_orig.mul_(-3.0).add_(0.01)      # training moves weights: the order by |w| changes
    pruner.on_step(100, 100)
    for m, e in zip(pruner.modules, early):
        assert bool(((e == 0) <= (m.weight_mask == 0)).all())
    got = pruner.finish()
    assert not any(n.endswith(("_orig", "_mask")) for n in model.state_dict())
    for name, lin in sparsity.encoder_linears(model):
        assert int((lin.weight == 0).sum()) == round(0.7 * lin.weight.numel()), name
    assert len(sparsity.encoder_linears(model)) == 12            # q, k, v, attn out, intermediate, output x 2 layers
    params = dict(model.named_parameters())
    assert len(dense) == 9 and all(torch.equal(params[n], p) for n, p in dense.items())
    assert got["sparsity"] == pytest.approx(0.7, abs=1e-3) and got["encoder_sparsity"] == got["sparsity"]


def test_structured_prunes_whole_ffn_neurons_and_compacts_to_the_same_function():
    """Structured: the lowest-L2 neurons of every FFN leave (their intermediate row and output column are zero),
    attention stays dense, and slicing them out (compact_ffn) computes the same logits with smaller matrices."""
    model = load_classifier("tiny", 2, 2, seed=1, pooling="mean")
    inter0 = model.hf.bert.encoder.layer[0].intermediate.dense
    norms = inter0.weight.detach().norm(dim=1)
    pruner = sparsity.Pruner(model, 0.5, "constant", structured=True)
    got = pruner.finish()
    kept = (inter0.weight != 0).any(1)
    assert int(kept.sum()) == 32 and got["ffn_neurons_kept"] == [32, 32]          # 64 neurons, half kept
    assert float(norms[kept].min()) >= float(norms[~kept].max())                    # the largest rows stay
    out0 = model.hf.bert.encoder.layer[0].output.dense
    assert bool((out0.weight[:, ~kept] == 0).all()) and bool((out0.weight[:, kept] != 0).any(0).all())
    assert float((model.hf.bert.encoder.layer[0].attention.self.query.weight == 0).float().mean()) == 0.0
    assert got["sparsity"] == pytest.approx(0.5) and got["encoder_sparsity"] < got["sparsity"]
    ids = torch.randint(1000, 2000, (4, 9))
    mask = torch.ones_like(ids)
    model.eval()
    with torch.no_grad():
        before = model(input_ids=ids, attention_mask=mask).logits
        sparsity.compact_ffn(model)
        after = model(input_ids=ids, attention_mask=mask).logits
    assert out0.weight.shape == (32, 32) and model.config.intermediate_size == 32
    torch.testing.assert_close(after, before, atol=1e-5, rtol=1e-5)


@pytest.fixture(scope="module")
def sparse_run(tmp_path_factory):
    cfg = tmp_path_factory.mktemp("cfg") / "tiny.yaml"
    cfg.write_text(TINY)
    out = tmp_path_factory.mktemp("run") / "r"
    assert main(["evaluate", str(cfg), "--out", str(out)]) == 0
    return cfg, out


def test_saved_student_is_pruned_and_reloads_to_the_same_predictions(sparse_run):
    """The sparse multi-teacher student and the sparse no-KD student: the saved safetensors hold the pruned
    weights (60% zeros in every encoder linear weight), and the reloaded copy predicts exactly what was evaluated."""
    _, out = sparse_run
    from mtkd.tasks import load_task
    from mtkd.config import load_config
    task = load_task(load_config(out / "config.yaml").tasks[0])
    for method in ("multi_average", "no_kd"):
        folder = out / "demo" / "students" / method
        weights = load_file(str(folder / "model" / "model.safetensors"))
        enc = {k: v for k, v in weights.items() if ".encoder." in k and k.endswith(".weight") and v.ndim == 2}
        assert len(enc) == 12 and not any(k.endswith(("_orig", "_mask")) for k in weights)
        for k, v in enc.items():
            assert int((v == 0).sum()) == round(0.6 * v.numel()), k
        info = json.loads((folder / "manifest.json").read_text())["sparsity"]
        assert info["sparsity"] == pytest.approx(0.6, abs=1e-3) and info["target"] == 0.6
        model = load_saved_classifier(folder / "model")
        tok = load_tokenizer("tiny")
        logits = predict(model, encode(tok, task.splits["eval"].texts, 32))
        np.testing.assert_array_equal(logits, np.load(folder / "logits_eval.npy"))


def test_sparsity_is_in_the_student_key_only_when_sparse(sparse_run):
    """Dense students are keyed without the sparsity fields (older caches stay valid, a schedule change does not
    retrain them); a sparse student's key holds every sparsity field, so changing any of them retrains it."""
    from mtkd.config import load_config
    from mtkd.experiments import Run, Student
    from mtkd.pipeline import students
    from mtkd.tasks import load_task
    cfg, out = sparse_run
    keys = {}
    for over in (["student.sparsity=0"], ["student.sparsity=0.6"]):
        c = load_config(cfg, over)
        keys[c.student.sparsity] = students.key(Run(c, out), load_task(c.tasks[0]), Student("no_kd", "baseline"))
    assert not any(k.startswith("sparsity") for k in keys[0.0]["student"])
    assert {k: v for k, v in keys[0.6]["student"].items() if k.startswith("sparsity")} == {
        "sparsity": 0.6, "sparsity_schedule": "cubic", "sparsity_start": 0.0, "sparsity_end": 0.75,
        "sparsity_structured": False}


def test_auto_temperature_records_the_chosen_points_sparsity(tmp_path, monkeypatch):
    """temperature: auto trains one sparse student per grid value; the manifest's sparsity is that of the
    validation-best one (the k-th pruner's record for the k-th grid value), not of the last one trained."""
    made = []

    class Recording(sparsity.Pruner):
        def finish(self):
            made.append(len(made))
            return {**super().finish(), "grid_index": made[-1]}
    monkeypatch.setattr(sparsity, "from_config",
                        lambda model, st: Recording(model, st.sparsity, st.sparsity_schedule, st.sparsity_start,
                                                    st.sparsity_end, st.sparsity_structured))
    cfg = tmp_path / "auto.yaml"
    cfg.write_text(TINY.replace("baseline: true", "baseline: false, temperature: auto, temperature_grid: [1, 4, 8]")
                   .replace("save_model: true", "save_model: false"))
    out = tmp_path / "r"
    assert main(["distill-multi", str(cfg), "--out", str(out)]) == 0
    m = json.loads((out / "demo" / "students" / "multi_average" / "manifest.json").read_text())
    grid = [float(t) for t in m["temperature_grid_validation"]]
    assert len(made) == 3 and m["sparsity"]["grid_index"] == grid.index(float(m["temperature"]))
    assert m["sparsity"]["grid_index"] != 2, "the seeded run should pick an earlier grid point, or the test cannot fail"


@pytest.mark.slow   # kill-and-resume: real subprocesses
def test_kill_and_resume_a_sparse_student_is_bit_identical(sparse_run, tmp_path):
    """Killed inside the sparse student's second epoch (after its first checkpoint), the rerun resumes with the
    checkpointed masks and ends with the same logits as the uninterrupted run."""
    cfg, out = sparse_run
    run = [sys.executable, "-m", "mtkd", "evaluate", str(cfg), "--out", str(tmp_path / "k")]
    env = {**os.environ, "MTKD_FAILPOINT": "train:before_checkpoint@5"}   # t1: 1; no_kd: 2, 3; multi: 4, 5
    first = subprocess.run(run, env=env, capture_output=True, text=True)
    assert first.returncode == -signal.SIGKILL, first.stderr[-500:]
    assert (tmp_path / "k" / "demo" / "students" / "no_kd" / "manifest.json").is_file()
    second = subprocess.run(run, capture_output=True, text=True)
    assert second.returncode == 0, second.stderr[-2000:]
    for method in ("no_kd", "multi_average"):
        a = tmp_path / "k" / "demo" / "students" / method / "logits_eval.npy"
        assert a.read_bytes() == (out / "demo" / "students" / method / "logits_eval.npy").read_bytes()
