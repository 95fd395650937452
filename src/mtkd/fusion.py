"""Fusion strategies: turn K teachers' logits [K, B, C] into one target distribution [B, C]
at temperature T. Each is a small pure function (or an nn.Module when it learns), registered
by name. Single-teacher KD is any strategy with K = 1 (they all reduce to softmax(z / T)).

Notation: z_k = logits of teacher k for one example, T = temperature, sigma = softmax.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn


@dataclass(frozen=True)
class FusionContext:
    temperature: float
    teacher_scores: torch.Tensor | None = None   # [K] each teacher's metric on the validation split
    features: torch.Tensor | None = None         # [B, H] the student's pooled embedding (learned_gating)
    teacher_temperatures: torch.Tensor | None = None   # [K] calibration temperatures fitted on validation


def average(logits: torch.Tensor, ctx: FusionContext) -> torch.Tensor:
    """p = sigma(mean_k z_k / T). The study's "average". Averaging logits is a geometric
    (product-of-experts) pool of the teachers' tempered probabilities, not a probability average."""
    return torch.softmax(logits.mean(0) / ctx.temperature, dim=-1)


def prob_average(logits: torch.Tensor, ctx: FusionContext) -> torch.Tensor:
    """p = mean_k sigma(z_k / T): the arithmetic (mixture) pool of tempered probabilities."""
    return torch.softmax(logits / ctx.temperature, dim=-1).mean(0)


def weighted(logits: torch.Tensor, ctx: FusionContext) -> torch.Tensor:
    """p = sigma(sum_k w_k z_k / T), w_k = s_k / sum_j s_j with s_k teacher k's metric on the
    validation split (the study's "weighted"). Scores are clipped at 0."""
    if ctx.teacher_scores is None:
        raise ValueError("weighted fusion needs teacher_scores (validation metrics)")
    s = ctx.teacher_scores.to(logits.dtype).clamp_min(0)
    w = s / s.sum() if s.sum() > 0 else torch.full_like(s, 1.0 / len(s))
    return torch.softmax(torch.einsum("k,kbc->bc", w, logits) / ctx.temperature, dim=-1)


def fit_temperature(logits, labels) -> float:
    """Temperature scaling (Guo et al., 2017): the tau > 0 minimising the NLL of sigma(z / tau)
    against the labels, searched on a log grid from 0.05 to 20 (fit on the validation split)."""
    z = torch.as_tensor(logits, dtype=torch.float64)
    y = torch.as_tensor(labels, dtype=torch.long)
    taus = torch.logspace(-1.3, 1.3, 261, dtype=torch.float64)
    nll = torch.stack([torch.nn.functional.cross_entropy(z / t, y) for t in taus])
    return float(taus[int(nll.argmin())])


def calibrated_average(logits: torch.Tensor, ctx: FusionContext) -> torch.Tensor:
    """p = sigma((1/K) sum_k (z_k / tau_k) / T), tau_k = teacher k's calibration temperature on the
    validation split (fit_temperature): over-confident teachers are tempered before they are pooled,
    so no teacher dominates the mean by being sure rather than right."""
    if ctx.teacher_temperatures is None:
        raise ValueError("calibrated_average needs teacher_temperatures (fitted on validation)")
    tau = ctx.teacher_temperatures.to(logits.dtype).view(-1, 1, 1)
    return torch.softmax((logits / tau).mean(0) / ctx.temperature, dim=-1)


def entropy(logits: torch.Tensor) -> torch.Tensor:
    """Shannon entropy (nats) of sigma(z) along the last axis."""
    logp = torch.log_softmax(logits, dim=-1)
    return -(logp.exp() * logp).sum(-1)


def best_per_sample(logits: torch.Tensor, ctx: FusionContext) -> torch.Tensor:
    """p = sigma(z_k* / T) with k* = argmin_k H(sigma(z_k)): per example, the most confident
    (lowest-entropy, at T = 1) teacher. Ties go to the lowest teacher index."""
    k_star = entropy(logits).argmin(0)                           # [B]
    chosen = logits[k_star, torch.arange(logits.shape[1])]        # [B, C]
    return torch.softmax(chosen / ctx.temperature, dim=-1)


class LearnedGating(nn.Module):
    """p = sigma(sum_k g_k(h) z_k / T), g(h) = softmax(MLP(h)) over teachers, h = the student's
    pooled embedding, the one its head sees ([CLS] or mean of tokens; detached, so the gate does not steer the student's features). Trained
    jointly with the student through the KD loss, as in the study. Initialised to uniform
    weights (last layer zero), so it starts as `average`."""

    def __init__(self, num_teachers: int, feature_dim: int, hidden: int = 64):
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(feature_dim, hidden), nn.Tanh(), nn.Linear(hidden, num_teachers))
        nn.init.zeros_(self.mlp[-1].weight)
        nn.init.zeros_(self.mlp[-1].bias)

    def weights(self, features: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.mlp(features.detach()), dim=-1)   # [B, K]

    def forward(self, logits: torch.Tensor, ctx: FusionContext) -> torch.Tensor:
        if ctx.features is None:
            raise ValueError("learned_gating needs the student's features")
        g = self.weights(ctx.features).to(logits.dtype)
        return torch.softmax(torch.einsum("bk,kbc->bc", g, logits) / ctx.temperature, dim=-1)


STRATEGIES = {
    "average": average,
    "prob_average": prob_average,
    "weighted": weighted,
    "best_per_sample": best_per_sample,
    "learned_gating": LearnedGating,
    "calibrated_average": calibrated_average,
}
LEARNABLE = {"learned_gating"}


def make_strategy(name: str, num_teachers: int, feature_dim: int, hidden: int = 64):
    """The fuse callable for `name`: a function, or a freshly initialised nn.Module."""
    if name in LEARNABLE:
        return STRATEGIES[name](num_teachers, feature_dim, hidden)
    return STRATEGIES[name]
