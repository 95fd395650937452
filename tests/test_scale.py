"""Past one process: the training loop's schedule, clipping and accumulation, mixed precision, tracking,
the run log, the chance-level teacher warning, and runs under `accelerate launch --num_processes 2` (CPU, gloo)."""
import json
import os
import socket
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from mtkd import runtime
from mtkd.cli import main
from mtkd.experiments import chance_level
from mtkd.models import Encoded
from mtkd.train import Schedule, TrainSpec, Trainer, epoch_batches, predict, train

pytestmark = pytest.mark.slow   # slow tier: several processes (python -m pytest -m 'not slow' skips it)


# ---------------------------------------------------------------- the loop on a model built here

class BagModel(torch.nn.Module):
    """Mean of token embeddings -> linear head: padding-invariant, no dropout (exact comparisons)."""

    def __init__(self, vocab=50, dim=8, labels=2):
        super().__init__()
        torch.manual_seed(0)
        self.emb = torch.nn.Embedding(vocab, dim)
        self.head = torch.nn.Linear(dim, labels)
        self.config = SimpleNamespace(num_labels=labels)

    def forward(self, input_ids, attention_mask, token_type_ids=None, output_hidden_states=False):
        m = attention_mask.unsqueeze(-1).float()
        pooled = (self.emb(input_ids) * m).sum(1) / m.sum(1)
        return SimpleNamespace(logits=self.head(pooled))


def bag_data(n=8, seed=0) -> tuple[Encoded, torch.Tensor]:
    rng = np.random.default_rng(seed)
    ids = [list(rng.integers(1, 50, size=int(rng.integers(3, 9)))) for _ in range(n)]
    return Encoded.from_lists(ids, [[0] * len(x) for x in ids], 0), torch.as_tensor(rng.integers(0, 2, size=n))


def ce_loss(labels):
    def loss_fn(logits, feats, idx):
        loss = torch.nn.functional.cross_entropy(logits, labels[idx])
        return loss, {"ce": loss.detach()}
    return loss_fn


def test_schedule_one_process_is_the_old_count_and_ranks_split_every_batch():
    """One process: round(epochs x batches) updates. Two ranks: disjoint shares that together hold every
    batch of the epoch (cycled to an even count), and half the updates."""
    spec = TrainSpec(epochs=1.5, lr=1e-3, batch_size=10)
    one = Schedule.of(95, spec, 1)
    assert (one.per_epoch, one.micro, one.updates, one.epochs) == (10, 15, 15, 2)
    two = Schedule.of(95, spec, 2)
    assert (two.per_epoch, two.updates) == (5, 8)
    batches = epoch_batches(np.arange(95), 10, 0, 0, False)
    shares = [two.rank_batches(batches, r, 2) for r in (0, 1)]
    ids = [tuple(b) for s in shares for b in s]
    assert set(ids) == {tuple(b) for b in batches} and len(ids) == 10     # 10 batches: an even split, all of them
    assert not {tuple(b) for b in shares[0]} & {tuple(b) for b in shares[1]}
    acc = Schedule.of(95, TrainSpec(epochs=2, lr=1e-3, batch_size=10, grad_accum=4), 1)
    assert acc.updates == 2 * 3   # 10 micro-batches an epoch: updates of 4, 4 and 2 (never across epochs)


def test_accumulating_two_halves_is_one_update_on_the_whole_batch(tmp_path, monkeypatch):
    """grad_accum = 2 on batches of 4 must make one update with the gradient of one batch of 8 (same
    examples): the same gradient (so each half's loss is scaled by 1/2) and the same weights after it."""
    data, labels = bag_data(8)
    grads, weights = [], []
    update = Trainer.update

    def spy(self):
        grads.append(torch.cat([p.grad.flatten() for p in self.model.parameters()]).clone())
        update(self)
    monkeypatch.setattr(Trainer, "update", spy)
    for bs, accum in ((8, 1), (4, 2)):
        model = BagModel()
        spec = TrainSpec(epochs=1, lr=1e-2, batch_size=bs, warmup_ratio=0.0, group_by_length=False, grad_accum=accum)
        train(model, data, spec, ce_loss(labels), tmp_path / f"w{bs}")
        weights.append(torch.cat([p.detach().flatten() for p in model.parameters()]))
    assert len(grads) == 2   # one update each
    torch.testing.assert_close(grads[0], grads[1], rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(weights[0], weights[1], rtol=1e-5, atol=1e-6)
    assert not torch.equal(weights[0], torch.cat([p.detach().flatten() for p in BagModel().parameters()]))


@pytest.mark.parametrize("max_norm", [0.0, 1e-3])
def test_gradient_norm_is_clipped_before_the_update(max_norm):
    """The optimizer sees a gradient of norm <= max_grad_norm; 0 leaves it alone."""
    data, labels = bag_data(8)
    model = BagModel()
    trainer = Trainer(model, data, TrainSpec(1, 1e-2, 8, max_grad_norm=max_norm), ce_loss(labels), 1)
    seen = []
    step = trainer.optimizer.optimizer.step

    def spy(*a, **k):
        seen.append(float(torch.norm(torch.stack([p.grad.norm() for p in model.parameters() if p.grad is not None]))))
        return step(*a, **k)
    trainer.optimizer.optimizer.step = spy
    trainer.step(np.arange(8))
    assert seen and (seen[0] <= 1e-3 * 1.001 if max_norm else seen[0] > 1e-2)


def test_extraction_uses_the_runs_mixed_precision():
    """bf16 chosen once is what predict() runs in: logits close to, but not exactly, the fp32 ones."""
    data, _ = bag_data(16)
    model = BagModel(dim=64)
    try:
        runtime.set_precision("no")
        full = predict(model, data, 4)
        runtime.set_precision("bf16")
        half = predict(model, data, 4)
    finally:
        runtime.set_precision("no")
    assert not np.array_equal(full, half)
    np.testing.assert_allclose(full, half, atol=0.05)


def test_chance_level_is_the_best_constant_prediction():
    y = np.array([0, 0, 0, 1, 1, 0, 0, 1, 0, 0])        # 70% class 0
    assert chance_level(y, 2, "accuracy") == (pytest.approx(70.0), 0)
    f1, label = chance_level(y, 2, "f1")                 # always 1: precision .3, recall 1
    assert label == 1 and f1 == pytest.approx(100 * 2 * 0.3 / 1.3)
    assert chance_level(y, 2, "matthews")[0] == 0.0


# ---------------------------------------------------------------- runs: tracking, log, warning

TRACKED = """
name: tracked
seed: 5
tasks: [{{name: words, source: file, train_file: {train}, eval_file: {eval}, text_columns: [text]}}]
teachers:
  - {{name: tf, kind: tfidf}}
  - {{name: dead, model: tiny, epochs: 1, lr: 1.0e-9, max_length: 16}}
student: {{model: tiny, layers: 1, epochs: 2, lr: 2.0e-3, max_length: 16}}
distill: {{strategies: [learned_gating], single_teacher: false, baseline: false}}
"""


def tracked_config(tmp_path: Path) -> Path:
    """A task TF-IDF learns perfectly (the last word is the label) next to a teacher that cannot learn (lr 1e-9)."""
    rng = np.random.default_rng(0)
    filler = ["the", "a", "film", "plot", "cast", "was", "very"]

    def rows(n):
        y = rng.integers(0, 2, size=n)
        return "text,label\n" + "".join(f"{' '.join(rng.choice(filler, 3))} {('awful', 'great')[k]},{k}\n" for k in y)
    (tmp_path / "train.csv").write_text(rows(300))
    (tmp_path / "eval.csv").write_text(rows(100))
    cfg = tmp_path / "c.yaml"
    cfg.write_text(TRACKED.format(train=tmp_path / "train.csv", eval=tmp_path / "eval.csv"))
    return cfg


def _scalars(folder: Path) -> dict[str, list]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    acc = EventAccumulator(str(folder))
    acc.Reload()
    return {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


def test_tensorboard_tracking_log_file_and_chance_warning(tmp_path, capsys):
    """tracking=tensorboard: one event folder per trained model holding the loss, its KD and CE parts and
    the lr per update and the validation metric per epoch; RUN/log.txt holds what was printed; a teacher
    that learned nothing (lr 1e-9) is flagged in one stderr line and in the log."""
    cfg = tracked_config(tmp_path)
    out = tmp_path / "r"
    assert main(["run", str(cfg), "--out", str(out), "tracking=tensorboard"]) == 0
    captured = capsys.readouterr()
    student = _scalars(out / "tracking" / "words" / "students" / "multi_learned_gating")
    updates = 2 * 270 // 32 + 2   # 2 epochs of ceil(270 / 32) = 9 batches
    assert updates == 18
    for tag in ("train/loss", "train/kd", "train/ce", "train/gate_loss", "train/w/tf", "train/w/dead", "lr"):
        assert [s for s, _ in student[tag]] == list(range(1, updates + 1)), tag
    assert [s for s, _ in student["validation/accuracy"]] == [9, 18]
    loss, kd, ce, gate, w_tf, w_dead = (np.array([v for _, v in student[f"train/{t}"]])
                                        for t in ("loss", "kd", "ce", "gate_loss", "w/tf", "w/dead"))
    np.testing.assert_allclose(loss, 0.7 * kd + 0.3 * ce + gate, rtol=1e-4)   # alpha 0.7: the parts make the loss
    np.testing.assert_allclose(w_tf + w_dead, 1.0, rtol=1e-4)                 # the gate's mean weight per teacher
    teacher = _scalars(out / "tracking" / "words" / "teachers" / "dead")
    assert "train/ce" in teacher and "train/kd" not in teacher
    warnings = [l for l in captured.err.splitlines() if "at chance" in l]
    assert len(warnings) == 1 and warnings[0].startswith("mtkd: warning: teacher dead on words is at chance")
    log = (out / "log.txt").read_text()
    assert "warning: teacher dead on words is at chance" in log and "multi_learned_gating" in log
    assert f"build   {out / 'words' / 'students' / 'multi_learned_gating'}" in log
    # rerun with tracking off: the config differs only in how the run is watched, so every stage is cached
    assert main(["run", str(cfg), "--out", str(out)]) == 0
    assert "build " not in capsys.readouterr().out


def test_mlflow_tracking_to_a_local_file_store(tmp_path, monkeypatch):
    """tracking=mlflow without a server: RUN/tracking/mlruns, experiment = run name, one MLflow run per model."""
    pytest.importorskip("mlflow")
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    cfg = tracked_config(tmp_path)
    out = tmp_path / "r"
    assert main(["run", str(cfg), "--out", str(out), "tracking=mlflow", "student.epochs=1"]) == 0
    from mlflow.tracking import MlflowClient
    client = MlflowClient((out / "tracking" / "mlruns").resolve().as_uri())
    runs = {r.info.run_name: r for r in client.search_runs([client.get_experiment_by_name("tracked").experiment_id])}
    assert set(runs) == {"words/teachers/dead", "words/students/multi_learned_gating"}
    student = runs["words/students/multi_learned_gating"]
    assert {"train/loss", "train/kd", "train/ce", "lr", "validation/accuracy"} <= set(student.data.metrics)
    assert len(client.get_metric_history(student.info.run_id, "train/loss")) == 9


# ---------------------------------------------------------------- two processes (accelerate launch, CPU)

MP = """
name: mp
seed: 3
tasks: [{name: demo, demo_size: 200}]
teachers:
  - {name: t1, model: tiny, epochs: 1, lr: 1.0e-3, max_length: 24}
  - {name: tf, kind: tfidf}
student: {model: tiny, layers: 1, epochs: 2, lr: 2.0e-3, max_length: 24}
distill: {strategies: [learned_gating], single_teacher: false, baseline: false}
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch2(cfg: Path, out: Path, env_extra=None) -> subprocess.CompletedProcess:
    """`accelerate launch --multi_gpu --num_processes 2 -m mtkd run` (on a machine without a GPU, the
    processes train on CPU with gloo)."""
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
           "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
           "--main_process_ip", "127.0.0.1", "--main_process_port", str(_free_port()),
           "-m", "mtkd", "run", str(cfg), "--out", str(out)]
    env = {**os.environ, "OMP_NUM_THREADS": "1", **(env_extra or {})}
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def mp_cfg(tmp_path_factory):
    p = tmp_path_factory.mktemp("mp") / "mp.yaml"
    p.write_text(MP)
    return p


@pytest.fixture(scope="module")
def mp_run(mp_cfg, tmp_path_factory):
    out = tmp_path_factory.mktemp("mprun") / "r"
    proc = launch2(mp_cfg, out)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out, proc


def test_two_processes_write_one_complete_table(mp_run):
    """Under 2 processes rank 0 alone speaks and writes: one table with every model, one 'done', a log that
    says 2 processes, stage keys that record them; no scratch folder of rank 1 is left."""
    out, proc = mp_run
    assert proc.stdout.count("done:") == 1
    rows = [l.split(",")[0] for l in (out / "results" / "master_results.csv").read_text().splitlines()[1:]]
    assert rows == ["t1", "tf", "multi_learned_gating"]
    log = (out / "log.txt").read_text()
    assert log.count("(2 process(es)") == 1 and log.count("build   ") == 7
    key = json.loads((out / "demo" / "students" / "multi_learned_gating" / "manifest.json").read_text())["key"]
    assert key["processes"] == 2
    assert not list(out.rglob(".*.tmp*")) and not list(out.rglob(".*.work-*"))


def test_two_process_extraction_is_gathered_in_order(mp_run):
    """The teacher's logits, extracted by 2 ranks on alternate batches and gathered, are the logits one
    process computes with the same saved teacher, row for row."""
    from mtkd.config import load_config
    from mtkd.tasks import load_task
    from mtkd.teachers import load_teacher
    out, _ = mp_run
    cfg = load_config(out / "config.yaml")
    task = load_task(cfg.tasks[0])
    teacher = load_teacher(cfg.teachers[0], task.label_names, cfg.seed, out / "demo" / "teachers" / "t1" / "model")
    for split in ("train", "eval"):
        mine = teacher.logits(task.splits[split].texts)
        np.testing.assert_allclose(np.load(out / "demo" / "logits" / "t1" / f"{split}.npy"), mine, atol=1e-5)


def test_two_processes_killed_then_resumed_end_as_uninterrupted(mp_cfg, mp_run, tmp_path):
    """Both ranks killed after the student's first checkpoint; the rerun resumes it (weights, optimizer, every
    rank's RNG) and ends with the uninterrupted run's student, byte for byte."""
    out = tmp_path / "killed"
    first = launch2(mp_cfg, out, {"MTKD_FAILPOINT": "train:after_checkpoint@2"})   # t1's one epoch, then the student's first
    assert first.returncode != 0 and not (out / "results").exists()
    assert list((out / "demo" / "students").glob(".multi_learned_gating.work-*/checkpoint/state.json"))
    second = launch2(mp_cfg, out)
    assert second.returncode == 0, second.stderr[-3000:]
    name = "demo/students/multi_learned_gating/logits_eval.npy"
    assert (out / name).read_bytes() == (mp_run[0] / name).read_bytes()
    assert (out / "results" / "master_results.csv").read_text() == (mp_run[0] / "results" / "master_results.csv").read_text()
