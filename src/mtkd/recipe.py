"""The distillation recipe, in one sitting. For every batch of example indices `idx`:

    y      = labels[idx]                                  # -1 where there is no gold label
    z      = teachers(idx)                                # [K, B, C]: cached lookup by index, or online
    z      = z / tau_k                   if calibrate     # teacher k's temperature, fitted on validation
    ctx    = FusionContext(T, labels, labelled mask, student logits + pooled features, progress,
                           validation-fitted teacher scores and temperatures)
    out    = strategy(z, ctx)                             # a target distribution, or the KD term itself
    loss   = alpha * KD + (1 - alpha) * CE  (+ the strategy's own loss, e.g. the gate's)   # losses.py

`Recipe` is that step as the loss_fn(student_logits, features, idx) -> (loss, parts) that train.train
calls; `parts` (kd, ce, mean teacher weights "w/<teacher>", the gate's loss) is what trackers log.
The pipeline (pipeline/students.py) builds the teacher source and the validation fit, calls `train`
with a Recipe and caches what comes out; it holds no distillation logic of its own.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
import torch

from .fusion import FusionContext, as_fused, calibrated, fit_temperature
from .losses import kd_loss
from .tasks import compute_metrics
from .train import forward, sorted_batches

# bumped when what this module computes changes meaning; student/teacher stage keys record it (stages.algorithm)
VERSION = 1

# idx LongTensor [B] -> teacher logits float32 [K, B, C]
Source = Callable[[torch.Tensor], torch.Tensor]


def cached_teachers(logits: np.ndarray) -> Source:
    """Teacher logits [K, N, C] computed once (the logit store), looked up by example index."""
    table = torch.from_numpy(logits)
    return lambda idx: table[:, idx]


def online_teachers(teachers: Sequence, texts: Sequence) -> Source:
    """Teachers run on the batch's texts now (each `teacher.logits(texts) -> float32 [B, C]`)."""
    def run(idx):
        batch = [texts[i] for i in idx.tolist()]
        return torch.stack([torch.from_numpy(t.logits(batch)) for t in teachers])
    return run


@dataclass(frozen=True)
class Fitted:
    """What strategies may know from the validation split (never from eval)."""
    scores: torch.Tensor          # [K] each teacher's official metric
    temperatures: torch.Tensor    # [K] each teacher's calibration temperature (fusion.fit_temperature)


def fit_on_validation(val_logits: np.ndarray, labels: np.ndarray, metric: str, num_labels: int,
                      pos_label: int = 1) -> Fitted:
    """Teacher scores and calibration temperatures from the teachers' validation logits [K, N, C]."""
    scores = [compute_metrics(labels, v.argmax(1), num_labels, pos_label)[metric] for v in val_logits]
    taus = [fit_temperature(v, labels) for v in val_logits]
    return Fitted(torch.tensor(scores, dtype=torch.float32), torch.tensor(taus, dtype=torch.float32))


class Recipe:
    """The distillation step as train.train's loss_fn. Without teachers (or with alpha = 0) it is
    plain fine-tuning: CE against the gold labels."""

    def __init__(self, labels: torch.Tensor, teachers: Source | None = None, strategy=None, *,
                 temperature: float = 1.0, alpha: float = 0.0, fitted: Fitted | None = None,
                 calibrate: bool = False, names: Sequence[str] = ()):
        self.labels, self.teachers, self.strategy = labels, teachers, strategy
        self.temperature, self.alpha, self.fitted, self.calibrate = temperature, alpha, fitted, calibrate
        self.names = list(names)
        self.progress = 0.0

    @property
    def gate(self) -> torch.nn.Module | None:
        """The strategy when it learns (trained alongside the student as train's `extra`)."""
        return self.strategy if isinstance(self.strategy, torch.nn.Module) else None

    @property
    def wants_features(self) -> bool:
        return self.gate is not None

    def set_progress(self, fraction: float) -> None:
        """Called by train.train before every step with step / total (resume-safe)."""
        self.progress = float(fraction)

    def __call__(self, logits: torch.Tensor, feats: torch.Tensor | None, idx: torch.Tensor):
        dev = logits.device
        y = self.labels[idx].to(dev)
        if self.teachers is None or self.alpha == 0:
            return kd_loss(logits, None, y, 1.0, 0.0)
        fitted = self.fitted
        ctx = FusionContext(self.temperature,
                            teacher_scores=fitted.scores.to(dev) if fitted else None,
                            features=feats,
                            teacher_temperatures=fitted.temperatures.to(dev) if fitted else None,
                            labels=y, labelled=y >= 0, student_logits=logits, progress=self.progress)
        z = self.teachers(idx).to(dev)
        if self.calibrate:
            z = calibrated(z, ctx)
        out = as_fused(self.strategy(z, ctx))
        loss, parts = kd_loss(logits, out.target, y, self.temperature, self.alpha, kd=out.kd)
        if out.aux is not None:
            loss = loss + out.aux
        parts.update(out.parts)
        if out.weights is not None:
            parts.update({f"w/{n}": w for n, w in zip(self.names, out.weights.mean(0).detach())})
        return loss, parts


# ------------------------------------------------------------------------------ the gate's record
REGIONS = ("all_agree", "partial", "full_disagree")


def agreement_regions(teacher_logits: np.ndarray) -> np.ndarray:
    """Per example, the index into REGIONS of the teachers' predictions [K, N, C]: every teacher
    predicts the same class / some do / all predict different classes."""
    preds = teacher_logits.argmax(-1)                                   # [K, N]
    distinct = np.array([len(set(col)) for col in preds.T])
    K = preds.shape[0]
    return np.where(distinct == 1, 0, np.where(distinct == K, 2, 1))


@torch.inference_mode()
def pooled_features(model, data, batch_size: int = 128) -> torch.Tensor:
    """The student's pooled embedding [N, H] (what the gate sees), in the original order."""
    model.eval()
    device = next(model.parameters()).device
    out = None
    for idx in sorted_batches(data.lengths, batch_size):
        batch = {k: v.to(device) for k, v in data.batch(idx).items()}
        _, feats = forward(model, batch, True)
        if out is None:
            out = torch.zeros(len(data), feats.shape[-1])
        out[idx] = feats.float().cpu()
    return out


@torch.no_grad()
def gate_record(gate, names: Sequence[str], eval_features: torch.Tensor, eval_teacher_logits: np.ndarray) -> dict:
    """Mean gate weight per teacher: over training (overall and per epoch, from the gate's buffers)
    and on eval (overall and per agreement region of the teachers' eval predictions)."""
    gate.eval()
    as_dict = lambda w: {n: round(float(v), 6) for n, v in zip(names, w)}
    counts = gate.epoch_counts.cpu().numpy()
    sums = gate.epoch_sums.cpu().numpy()
    per_epoch = [as_dict(s / c) for s, c in zip(sums, counts) if c > 0]
    g = gate.weights(eval_features.to(next(gate.parameters()).device)).cpu().numpy()
    regions = agreement_regions(eval_teacher_logits)
    by_region = {r: {"n": int((regions == i).sum()), **(as_dict(g[regions == i].mean(0)) if (regions == i).any() else {})}
                 for i, r in enumerate(REGIONS)}
    return {"teachers": list(names), "train": as_dict(sums.sum(0) / max(counts.sum(), 1)), "per_epoch": per_epoch,
            "eval": as_dict(g.mean(0)), "eval_regions": by_region,
            "joint": bool(getattr(gate, "joint", False))}
