"""The one training loop (teachers and students alike), on Accelerate, plus batched inference.

Deterministic on CPU: the data order of epoch e comes from seed (seed, e), and a checkpoint is written
(atomically) after every epoch through `accelerator.save_state`: weights, optimizer, schedule, grad
scaler and every RNG of every process. Calling `train` again with the same `work_dir` resumes from it
and ends bit-identical to an uninterrupted run.

Several processes (`accelerate launch --num_processes N`): every rank builds the same seeded batch list
of an epoch and takes every N-th batch (rank r: batches r, r + N, ...), so one optimizer update sees N
consecutive batches of the one-process order and an epoch still sees every example once; gradients are
averaged across ranks by DDP. The student and the modules trained with it (the learned gate) are one
wrapped module. Inference (`predict`) is split across ranks and gathered back in the original order.
"""
from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
from contextvars import ContextVar
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from tqdm.auto import tqdm

from . import runtime
from .faults import failpoint
from .models import Encoded

# bumped when what this module computes changes meaning; student/teacher stage keys record it (stages.algorithm)
VERSION = 1

# loss_fn(student_logits [B, C], features [B, H] or None, idx LongTensor [B]) -> (loss, parts). `parts`
# (0-d or 1-d tensors: the KD and CE terms, gate weights, ...) is what the tracker logs. A loss_fn with a
# `set_progress(fraction)` method is told step / total before every update (e.g. recipe.Recipe).
LossFn = Callable[[torch.Tensor, torch.Tensor | None, torch.Tensor], tuple[torch.Tensor, dict]]

_IN_TRAINING: ContextVar[bool] = ContextVar("mtkd_in_training", default=False)


@dataclass(frozen=True)
class TrainSpec:
    epochs: float
    lr: float
    batch_size: int                   # per process and micro-batch
    weight_decay: float = 0.01
    warmup_ratio: float = 0.1
    seed: int = 0
    group_by_length: bool = True
    extra_lr: float = 1e-3            # lr of extra modules (e.g. the learned gate)
    max_grad_norm: float = 1.0        # clip the global gradient norm (0 = no clipping)
    grad_accum: int = 1               # micro-batches per optimizer update


def epoch_batches(lengths: np.ndarray, batch_size: int, seed: int, epoch: int, group_by_length: bool) -> list[np.ndarray]:
    """Shuffled batches of example indices for one epoch. With length grouping, examples are
    sorted by length inside shuffled windows of 50 batches, and the batches shuffled again, so
    batches hold similar lengths (less padding) while the order stays random and seeded."""
    rng = np.random.default_rng([seed, epoch])
    perm = rng.permutation(len(lengths))
    if group_by_length:
        window = batch_size * 50
        chunks = [perm[i:i + window] for i in range(0, len(perm), window)]
        perm = np.concatenate([c[np.argsort(-lengths[c], kind="stable")] for c in chunks])
    batches = [perm[i:i + batch_size] for i in range(0, len(perm), batch_size)]
    if group_by_length:
        batches = [batches[i] for i in rng.permutation(len(batches))]
    return batches


def sorted_batches(lengths: np.ndarray, batch_size: int) -> list[np.ndarray]:
    """Inference batches: examples sorted by length (longest first), so padding is minimal."""
    order = np.argsort(-lengths, kind="stable")
    return [order[i:i + batch_size] for i in range(0, len(order), batch_size)]


def forward(model, batch: dict, want_features: bool):
    """(logits, features): features are the pooled embedding the head sees ([CLS] for native heads)."""
    out = model(**batch, output_hidden_states=want_features)
    if not want_features:
        return out.logits, None
    feats = getattr(out, "features", None)
    return out.logits, feats if feats is not None else out.hidden_states[-1][:, 0]


@dataclass(frozen=True)
class Schedule:
    """How many micro-batches each rank runs per epoch and in all, and how many optimizer updates.
    One process, no accumulation: one update per batch, `round(epochs * batches per epoch)` in all."""
    per_epoch: int        # micro-batches per rank and epoch
    micro: int            # micro-batches per rank in all
    accum: int

    @classmethod
    def of(cls, n_examples: int, spec: TrainSpec, world: int) -> "Schedule":
        per_epoch = math.ceil(math.ceil(n_examples / spec.batch_size) / world)
        return cls(per_epoch, max(1, round(spec.epochs * per_epoch)), spec.grad_accum)

    @property
    def epochs(self) -> int:
        return math.ceil(self.micro / self.per_epoch)

    def in_epoch(self, epoch: int) -> int:
        return min(self.per_epoch, self.micro - epoch * self.per_epoch)

    @property
    def updates(self) -> int:   # accumulation groups never cross an epoch (checkpoints hold no gradients)
        return sum(math.ceil(self.in_epoch(e) / self.accum) for e in range(self.epochs))

    def rank_batches(self, batches: list[np.ndarray], rank: int, world: int) -> list[np.ndarray]:
        """Rank `rank`'s share: batches rank, rank + world, ...; the list is cycled to a multiple of
        `world` so every rank runs the same number of steps."""
        padded = [batches[i % len(batches)] for i in range(self.per_epoch * world)]
        return padded[rank::world]


class _Joint(torch.nn.Module):
    """The model and the modules its loss trains with it (e.g. the learned gate) as one module, so
    Accelerate wraps them together: one DDP (the gate's gradients are averaged too), one checkpoint."""

    def __init__(self, model, extra, loss_fn: LossFn, want_features: bool):
        super().__init__()
        self.model, self.extra = model, extra
        self._loss = (loss_fn, want_features)

    def forward(self, batch: dict, idx: torch.Tensor):
        loss_fn, want_features = self._loss
        logits, feats = forward(self.model, batch, want_features)
        return loss_fn(logits.float(), feats, idx)


class Trainer:
    """Optimizer (fused AdamW, no decay on biases and LayerNorms), linear warm-up schedule, gradient
    clipping and accumulation, and Accelerate wrapping for `model` (+ `extra`, e.g. a gate)."""

    def __init__(self, model, data: Encoded, spec: TrainSpec, loss_fn: LossFn, total_updates: int,
                 extra: torch.nn.Module | None = None, want_features: bool = False, log_with: str | None = None,
                 project_dir: Path | None = None):
        from accelerate import Accelerator
        from accelerate.utils import DistributedDataParallelKwargs
        from transformers import get_linear_schedule_with_warmup

        # some weights may get no gradient (e.g. BERT's pooler under mean pooling): DDP must not wait for them
        self.accelerator = Accelerator(log_with=log_with, project_dir=project_dir,
                                       kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=True)])
        no_decay = ("bias", "LayerNorm.weight", "layer_norm.weight")
        named = list(model.named_parameters())
        groups = [{"params": [p for n, p in named if not n.endswith(no_decay)], "weight_decay": spec.weight_decay},
                  {"params": [p for n, p in named if n.endswith(no_decay)], "weight_decay": 0.0}]
        if extra is not None:
            groups.append({"params": list(extra.parameters()), "weight_decay": 0.0, "lr": spec.extra_lr})
        # fused AdamW updates all parameters in one kernel: ~4x faster steps on CPU than the per-tensor loop
        optimizer = torch.optim.AdamW(groups, lr=spec.lr, fused=True)
        # not prepared: Accelerate would step it once per process; it is checkpointed all the same
        self.scheduler = get_linear_schedule_with_warmup(optimizer, int(spec.warmup_ratio * total_updates), total_updates)
        self.joint, self.optimizer = self.accelerator.prepare(_Joint(model, extra, loss_fn, want_features), optimizer)
        self.accelerator.register_for_checkpointing(self.scheduler)
        self.data, self.spec = data, spec

    @property
    def model(self):
        return self.accelerator.unwrap_model(self.joint).model

    def micro_step(self, batch_idx: np.ndarray, scale: float, sync: bool, pad_to: int | None = None):
        """Forward and backward of one micro-batch, its loss scaled by `scale` (1 / micro-batches in the
        update); gradients are synchronised across processes only when `sync` (the update's last).
        Returns (loss, parts), detached."""
        acc = self.accelerator
        batch = {k: v.to(acc.device) for k, v in self.data.batch(batch_idx, pad_to=pad_to).items()}
        idx = torch.as_tensor(batch_idx, dtype=torch.long)
        with (acc.no_sync(self.joint) if not sync else contextlib.nullcontext()), acc.autocast():
            loss, parts = self.joint(batch, idx)
            acc.backward(loss * scale)
        return loss.detach(), parts

    def update(self) -> None:
        if self.spec.max_grad_norm > 0:
            self.accelerator.clip_grad_norm_(self.joint.parameters(), self.spec.max_grad_norm)
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)

    def step(self, batch_idx: np.ndarray, pad_to: int | None = None) -> torch.Tensor:
        """One micro-batch and one update (no accumulation): the step bench/ scripts time."""
        loss, _ = self.micro_step(batch_idx, 1.0, True, pad_to)
        self.update()
        return loss


def train(model, data: Encoded, spec: TrainSpec, loss_fn: LossFn, work_dir: Path,
          extra: torch.nn.Module | None = None, want_features: bool = False, desc: str = "train",
          on_step: Callable[[int, int], None] | None = None,
          evaluate: Callable[[torch.nn.Module], dict[str, float]] | None = None, stateful: tuple = ()):
    """Train `model` (and `extra`) in place; a checkpoint in `work_dir` after every epoch, resumed from
    when present. `on_step(update, total)` runs after each optimizer update (e.g. sparsity.Pruner);
    state a hook keeps must live in the model's state dict or in an object of `stateful` (anything with
    state_dict / load_state_dict), which is checkpointed with the rest. `evaluate(model) -> {name: value}`
    runs after every epoch when the run is tracked (e.g. the validation metric) and is logged."""
    world, rank = runtime.world(), runtime.rank()
    plan = Schedule.of(len(data), spec, world)
    total = plan.updates
    torch.manual_seed(spec.seed + rank)   # dropout: rank 0 draws what one process would
    tracking = runtime.TRACKING.get()
    trainer = Trainer(model, data, spec, loss_fn, total, extra, want_features,
                      tracking and tracking.backend, tracking and tracking.project_dir)
    acc = trainer.accelerator
    for obj in stateful:
        acc.register_for_checkpointing(obj)
    log = _Logger(acc, tracking, spec, desc, world)

    step, start_epoch = 0, 0
    ckpt = work_dir / "checkpoint"
    old = ckpt.with_name(ckpt.name + ".old")
    if acc.is_main_process and not ckpt.exists() and (old / "state.json").is_file():  # killed between two renames
        old.rename(ckpt)
    acc.wait_for_everyone()
    if (ckpt / "state.json").is_file():
        acc.load_state(str(ckpt))
        state = json.loads((ckpt / "state.json").read_text())
        start_epoch, step = state["epoch"], state["step"]

    set_progress = getattr(loss_fn, "set_progress", None)
    bar = tqdm(total=total, initial=step, desc=desc, leave=False, disable=None if acc.is_main_process else True)
    token = _IN_TRAINING.set(True)
    try:
        trainer.joint.train()
        for epoch in range(start_epoch, plan.epochs):
            mine = plan.rank_batches(epoch_batches(data.lengths, spec.batch_size, spec.seed, epoch, spec.group_by_length),
                                     rank, world)[:plan.in_epoch(epoch)]
            for start in range(0, len(mine), plan.accum):
                group = mine[start:start + plan.accum]
                if set_progress is not None:
                    set_progress(step / total)
                for j, batch_idx in enumerate(group):
                    loss, parts = trainer.micro_step(batch_idx, 1.0 / len(group), j == len(group) - 1)
                lr = trainer.scheduler.get_last_lr()[0]
                trainer.update()
                step += 1
                log.step(step, lr, loss, parts)
                if on_step is not None:
                    on_step(step, total)
                bar.update(1)
                if step % 20 == 0:  # the only host sync in the loop: logging
                    bar.set_postfix(loss=f"{loss.item():.4f}")
            log.flush()
            if evaluate is not None and tracking is not None:
                _IN_TRAINING.set(False)
                log.epoch(epoch + 1, step, evaluate(trainer.model))
                _IN_TRAINING.set(True)
                trainer.joint.train()
            failpoint("train:before_checkpoint")
            _save_checkpoint(acc, ckpt, epoch + 1, step)
            failpoint("train:after_checkpoint")
    finally:
        _IN_TRAINING.reset(token)
        bar.close()
    log.close()
    model = trainer.model
    model.eval()
    return model


def _save_checkpoint(acc, ckpt: Path, epoch: int, step: int):
    """accelerator.save_state into a fresh folder, renamed into place once complete (by rank 0)."""
    tmp = ckpt.with_name(ckpt.name + ".tmp")
    if acc.is_main_process:
        shutil.rmtree(tmp, ignore_errors=True)
    acc.wait_for_everyone()
    acc.save_state(str(tmp))          # rank 0 writes weights, optimizer, schedule; every rank its RNG states
    acc.wait_for_everyone()
    if acc.is_main_process:
        (tmp / "state.json").write_text(json.dumps({"epoch": epoch, "step": step}))
        old = ckpt.with_name(ckpt.name + ".old")
        if ckpt.exists():
            ckpt.rename(old)
        tmp.rename(ckpt)
        shutil.rmtree(old, ignore_errors=True)
    acc.wait_for_everyone()


class _Logger:
    """Per update: the loss, every part of it the loss_fn returned and the learning rate, to the run's
    tracker (nothing when the run is not tracked). Values stay on the device and are sent every 20
    updates (one host sync), averaged over processes."""

    def __init__(self, acc, tracking, spec: TrainSpec, desc: str, world: int):
        self.acc, self.pending = acc, []
        self.on = tracking is not None
        if self.on:
            name = tracking.next_name()
            config = {**asdict(spec), "processes": world, "mixed_precision": runtime.precision(), "desc": desc}
            if tracking.backend == "tensorboard":
                project, kwargs = name, {}
            elif tracking.backend == "mlflow":
                project, kwargs = tracking.project, {"mlflow": {"run_name": name}}
                _local_mlflow_store(tracking.project_dir)
            else:
                project, kwargs = tracking.project, {"wandb": {"name": name, "dir": str(tracking.project_dir)}}
            acc.init_trackers(project, config=config, init_kwargs=kwargs)

    def step(self, step: int, lr: float, loss: torch.Tensor, parts: dict):
        """`loss` and `parts` of the update's last micro-batch; `lr` the rate the update used."""
        if self.on:
            values = {"loss": loss.float()}
            for k, v in parts.items():
                v = torch.as_tensor(v).detach().float()
                values.update({k: v} if v.dim() == 0 else {f"{k}/{i}": x for i, x in enumerate(v.reshape(-1))})
            self.pending.append((step, lr, values))
            if len(self.pending) >= 20:
                self.flush()

    def flush(self):
        if not self.pending:
            return
        keys = list(self.pending[0][2])
        stacked = torch.stack([torch.stack([v[k].to(self.acc.device) for k in keys]) for _, _, v in self.pending])
        stacked = self.acc.reduce(stacked, "mean").cpu().tolist()   # the mean over processes
        for (step, lr, _), row in zip(self.pending, stacked):
            self.acc.log({"lr": lr, **{f"train/{k}": x for k, x in zip(keys, row)}}, step=step)
        self.pending = []

    def epoch(self, epoch: int, step: int, metrics: dict):
        if self.on:
            self.acc.log({"epoch": epoch, **{f"validation/{k}": float(v) for k, v in metrics.items()}}, step=step)

    def close(self):
        if self.on:
            self.flush()
            self.acc.end_training()


def _local_mlflow_store(project_dir: Path) -> None:
    """Without MLFLOW_TRACKING_URI (a server or database of your own), MLflow writes a file store in
    RUN/tracking/mlruns (`mlflow ui --backend-store-uri RUN/tracking/mlruns` shows it)."""
    if os.environ.get("MLFLOW_TRACKING_URI"):
        return
    import mlflow
    os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")   # MLflow 3 asks for this opt-in to a file store
    mlflow.set_tracking_uri((Path(project_dir) / "mlruns").resolve().as_uri())


@torch.inference_mode()
def predict(model, data: Encoded, batch_size: int = 128, desc: str = "predict") -> np.ndarray:
    """float32 logits [N, C] in the original order. Length-sorted, dynamically padded batches, in the
    run's mixed precision. Under several processes (outside a training step) each rank runs every N-th
    batch and the logits are gathered on every rank."""
    model.eval()
    device = next(model.parameters()).device
    batches = sorted_batches(data.lengths, batch_size)
    world = runtime.world() if not _IN_TRAINING.get() else 1
    if world > 1:
        batches = batches[runtime.rank()::world]
    dtype = runtime.autocast_dtype()
    parts = []
    for idx in tqdm(batches, desc=desc, leave=False, disable=None if runtime.is_main() else True):
        batch = {k: v.to(device) for k, v in data.batch(idx).items()}
        with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
            parts.append((idx, model(**batch).logits.float().cpu().numpy()))
    if world > 1:
        parts = [p for rank_parts in runtime.gather(parts) for p in rank_parts]
    out = np.zeros((len(data), model.config.num_labels), dtype=np.float32)
    for idx, logits in parts:
        out[idx] = logits
    return out
