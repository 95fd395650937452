"""The one training loop (teachers and students alike), on Accelerate, plus batched inference.

Deterministic on CPU: the data order of epoch e comes from seed (seed, e); dropout's RNG state is
checkpointed. A checkpoint is written (atomically) after every epoch; calling `train` again with
the same `work_dir` resumes from it and ends bit-identical to an uninterrupted run.
"""
from __future__ import annotations

import json
import math
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from safetensors.torch import load_model, save_model
from tqdm.auto import tqdm

from .faults import failpoint
from .models import Encoded

# loss_fn(student_logits [B, C], features [B, H] or None, idx LongTensor [B]) -> (loss, parts); a loss_fn
# with a `set_progress(fraction)` method is told step / total before every step (e.g. recipe.Recipe)
LossFn = Callable[[torch.Tensor, torch.Tensor | None, torch.Tensor], tuple[torch.Tensor, dict]]


@dataclass(frozen=True)
class TrainSpec:
    epochs: float
    lr: float
    batch_size: int
    weight_decay: float = 0.01
    warmup_ratio: float = 0.1
    seed: int = 0
    group_by_length: bool = True
    extra_lr: float = 1e-3            # lr of extra modules (e.g. the learned gate)


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


class Trainer:
    """Optimizer (fused AdamW, no decay on biases and LayerNorms), linear warm-up schedule and
    Accelerate wrapping for `model` (+ `extra`, e.g. a gate); `step` is one training step."""

    def __init__(self, model, data: Encoded, spec: TrainSpec, loss_fn: LossFn, total_steps: int,
                 extra: torch.nn.Module | None = None, want_features: bool = False):
        from accelerate import Accelerator
        from transformers import get_linear_schedule_with_warmup

        self.accelerator = Accelerator()
        no_decay = ("bias", "LayerNorm.weight", "layer_norm.weight")
        named = list(model.named_parameters())
        groups = [{"params": [p for n, p in named if not n.endswith(no_decay)], "weight_decay": spec.weight_decay},
                  {"params": [p for n, p in named if n.endswith(no_decay)], "weight_decay": 0.0}]
        if extra is not None:
            groups.append({"params": list(extra.parameters()), "weight_decay": 0.0, "lr": spec.extra_lr})
        # fused AdamW updates all parameters in one kernel: ~4x faster steps on CPU than the per-tensor loop
        optimizer = torch.optim.AdamW(groups, lr=spec.lr, fused=True)
        self.scheduler = get_linear_schedule_with_warmup(optimizer, int(spec.warmup_ratio * total_steps), total_steps)
        self.model, self.optimizer = self.accelerator.prepare(model, optimizer)
        self.extra = self.accelerator.prepare(extra) if extra is not None else None
        self.data, self.loss_fn, self.want_features = data, loss_fn, want_features

    def step(self, batch_idx: np.ndarray, pad_to: int | None = None) -> torch.Tensor:
        acc = self.accelerator
        batch = {k: v.to(acc.device) for k, v in self.data.batch(batch_idx, pad_to=pad_to).items()}
        idx = torch.as_tensor(batch_idx, dtype=torch.long)
        with acc.autocast():
            logits, feats = forward(self.model, batch, self.want_features)
            loss, _ = self.loss_fn(logits.float(), feats, idx)
        acc.backward(loss)
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        return loss.detach()


def train(model, data: Encoded, spec: TrainSpec, loss_fn: LossFn, work_dir: Path,
          extra: torch.nn.Module | None = None, want_features: bool = False, desc: str = "train",
          on_step: Callable[[int, int], None] | None = None):
    """Train `model` (and `extra`) in place; a checkpoint in `work_dir` after every epoch, resumed
    from when present. One process (on its GPU when there is one). `on_step(step, total)` runs after
    each optimizer step (e.g. sparsity.Pruner: state it keeps must live in the model's state dict)."""
    per_epoch = math.ceil(len(data) / spec.batch_size)
    total = max(1, round(spec.epochs * per_epoch))
    torch.manual_seed(spec.seed)
    trainer = Trainer(model, data, spec, loss_fn, total, extra, want_features)
    unwrap = trainer.accelerator.unwrap_model

    step, start_epoch = 0, 0
    ckpt = work_dir / "checkpoint"
    old = ckpt.with_name(ckpt.name + ".old")
    if not ckpt.exists() and (old / "state.json").is_file():  # killed between the two renames of a save
        old.rename(ckpt)
    if (ckpt / "state.json").is_file():
        start_epoch, step = _load_checkpoint(ckpt, unwrap(trainer.model), trainer.extra, trainer.optimizer,
                                             trainer.scheduler)

    bar = tqdm(total=total, initial=step, desc=desc, leave=False, disable=None)
    set_progress = getattr(loss_fn, "set_progress", None)
    trainer.model.train()
    for epoch in range(start_epoch, math.ceil(total / per_epoch)):
        for batch_idx in epoch_batches(data.lengths, spec.batch_size, spec.seed, epoch, spec.group_by_length):
            if step >= total:
                break
            if set_progress is not None:
                set_progress(step / total)
            loss = trainer.step(batch_idx)
            step += 1
            if on_step is not None:
                on_step(step, total)
            bar.update(1)
            if step % 20 == 0:  # the only host sync in the loop: logging
                bar.set_postfix(loss=f"{loss.item():.4f}")
        failpoint("train:before_checkpoint")
        _save_checkpoint(ckpt, unwrap(trainer.model), trainer.extra, trainer.optimizer, trainer.scheduler, epoch + 1, step)
        failpoint("train:after_checkpoint")
    bar.close()
    model = unwrap(trainer.model)
    model.eval()
    return model


def _save_checkpoint(ckpt: Path, model, extra, optimizer, scheduler, epoch: int, step: int):
    tmp = ckpt.with_name(ckpt.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    save_model(model, str(tmp / "model.safetensors"))
    if extra is not None:
        save_model(extra, str(tmp / "extra.safetensors"))
    torch.save({"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                "rng": torch.get_rng_state(),
                "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []}, tmp / "train_state.pt")
    (tmp / "state.json").write_text(json.dumps({"epoch": epoch, "step": step}))
    old = ckpt.with_name(ckpt.name + ".old")
    if ckpt.exists():
        ckpt.rename(old)
    tmp.rename(ckpt)
    shutil.rmtree(old, ignore_errors=True)


def _load_checkpoint(ckpt: Path, model, extra, optimizer, scheduler) -> tuple[int, int]:
    state = json.loads((ckpt / "state.json").read_text())
    load_model(model, str(ckpt / "model.safetensors"))
    if extra is not None:
        load_model(extra, str(ckpt / "extra.safetensors"))
    ts = torch.load(ckpt / "train_state.pt", weights_only=True)
    optimizer.load_state_dict(ts["optimizer"])
    scheduler.load_state_dict(ts["scheduler"])
    torch.set_rng_state(ts["rng"])
    if ts.get("cuda_rng"):
        torch.cuda.set_rng_state_all(ts["cuda_rng"])
    return state["epoch"], state["step"]


@torch.inference_mode()
def predict(model, data: Encoded, batch_size: int = 128) -> np.ndarray:
    """float32 logits [N, C] in the original order. Length-sorted, dynamically padded batches;
    autocast (bf16/fp16) when on GPU."""
    model.eval()
    device = next(model.parameters()).device
    out = None
    for idx in sorted_batches(data.lengths, batch_size):
        batch = {k: v.to(device) for k, v in data.batch(idx).items()}
        with torch.autocast(device.type, enabled=device.type == "cuda"):
            logits = model(**batch).logits.float().cpu().numpy()
        if out is None:
            out = np.zeros((len(data), logits.shape[1]), dtype=np.float32)
        out[idx] = logits
    return out if out is not None else np.zeros((0, model.config.num_labels), dtype=np.float32)
