"""Fusion strategies: turn K teachers' logits [K, B, C] into what the student learns from.

A strategy is `fuse(logits [K, B, C], ctx: FusionContext)` and returns EITHER a target distribution
[B, C] at temperature T (the one loss convention of losses.py applies), OR a `Fused` carrying the KD
term itself (methods defined as a sum of per-teacher losses), a loss on the strategy's own parameters
(the learned gate) and the per-example teacher weights it used (logged). Each strategy is one small
function (an nn.Module when it learns), registered by name, its formula and source in its docstring;
the first docstring line is what `mtkd list strategies` prints. docs/fusion.md holds the table of
formulas, sources and the aggregation axioms each one satisfies.

Notation: z_k = logits of teacher k for one example, T = temperature, sigma = softmax,
p_k = sigma(z_k / T) (teacher k's tempered distribution), H = Shannon entropy (nats), y = gold label.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass, field

import torch
import torch.nn as nn
import torch.nn.functional as F

from .registry import LEARNABLE, OPTIONS

# bumped when what this module computes changes meaning; student/teacher stage keys record it (stages.algorithm)
VERSION = 1


@dataclass(frozen=True)
class FusionContext:
    """Everything a strategy may know about the batch, and nothing else."""
    temperature: float
    teacher_scores: torch.Tensor | None = None         # [K] each teacher's metric on the validation split
    features: torch.Tensor | None = None               # [B, H] the student's pooled embedding
    teacher_temperatures: torch.Tensor | None = None   # [K] calibration temperatures fitted on validation
    labels: torch.Tensor | None = None                 # [B] gold labels (any value where labelled is False)
    labelled: torch.Tensor | None = None               # [B] bool: has a gold label (transfer sets have none)
    student_logits: torch.Tensor | None = None         # [B, C] the student's logits (with their graph)
    progress: float = 0.0                              # training progress in [0, 1]


@dataclass
class Fused:
    """A strategy's answer when a bare target distribution is not enough."""
    target: torch.Tensor | None = None    # [B, C] distribution at T: the loss convention applies
    kd: torch.Tensor | None = None        # or the KD term itself (scalar, already times T**2)
    aux: torch.Tensor | None = None       # a loss on the strategy's own parameters (added to the loss)
    weights: torch.Tensor | None = None   # [B, K] per-example teacher weights (their means are logged)
    parts: dict = field(default_factory=dict)


def as_fused(out) -> Fused:
    return out if isinstance(out, Fused) else Fused(target=out)


def target_of(fuse, logits: torch.Tensor, ctx: FusionContext) -> torch.Tensor:
    """The target distribution [B, C] a strategy implies. For one that returns a KD term of the form
    sum_k w_k T^2 KL(p_k || p_s) (weights on the simplex) it is the q with the same gradient,
    KL(q || p_s): since d KD / d s = (T / B) (p_s - q), q = p_s - (B / T) d KD / d s. The axiom
    tests and docs/fusion.md judge every strategy on this target."""
    out = as_fused(fuse(logits, ctx))
    if out.target is not None:
        return out.target
    s = ctx.student_logits
    if s is None or not s.requires_grad:
        raise ValueError("the student's logits (requires_grad) are needed to read a KD term's target")
    (grad,) = torch.autograd.grad(out.kd, s)
    return torch.softmax(s.detach() / ctx.temperature, -1) - s.shape[0] / ctx.temperature * grad


# ---------------------------------------------------------------------------------------- helpers
def entropy(logits: torch.Tensor) -> torch.Tensor:
    """Shannon entropy (nats) of sigma(z) along the last axis."""
    logp = torch.log_softmax(logits, dim=-1)
    return -(logp.exp() * logp).sum(-1)


def tempered(logits: torch.Tensor, ctx: FusionContext) -> torch.Tensor:
    """p_k = sigma(z_k / T), [K, B, C]."""
    return torch.softmax(logits / ctx.temperature, dim=-1)


def mixture(weights: torch.Tensor, logits: torch.Tensor, ctx: FusionContext) -> torch.Tensor:
    """sum_k w_k p_k with per-example weights [B, K] (rows on the simplex): the arithmetic pool."""
    return torch.einsum("bk,kbc->bc", weights.to(logits.dtype), tempered(logits, ctx))


def geometric(weights: torch.Tensor, logits: torch.Tensor, ctx: FusionContext) -> torch.Tensor:
    """sigma(sum_k w_k z_k / T) with per-example weights [B, K]: the geometric (logit) pool."""
    return torch.softmax(torch.einsum("bk,kbc->bc", weights.to(logits.dtype), logits) / ctx.temperature, dim=-1)


def kl_per_teacher(logits: torch.Tensor, ctx: FusionContext) -> torch.Tensor:
    """T**2 KL(p_k || p_s) per teacher and example, [K, B] (the student's graph kept)."""
    if ctx.student_logits is None:
        raise ValueError("this strategy needs the student's logits")
    T = ctx.temperature
    log_ps = torch.log_softmax(ctx.student_logits / T, dim=-1)
    log_pk = torch.log_softmax(logits / T, dim=-1)
    return (log_pk.exp() * (log_pk - log_ps)).sum(-1) * T**2


def fit_temperature(logits, labels) -> float:
    """Temperature scaling (Guo et al., 2017): the tau > 0 minimising the NLL of sigma(z / tau)
    against the labels, searched on a log grid from 0.05 to 20 (fit on the validation split)."""
    z = torch.as_tensor(logits, dtype=torch.float64)
    y = torch.as_tensor(labels, dtype=torch.long)
    taus = torch.logspace(-1.3, 1.3, 261, dtype=torch.float64)
    nll = torch.stack([torch.nn.functional.cross_entropy(z / t, y) for t in taus])
    return float(taus[int(nll.argmin())])


def calibrated(logits: torch.Tensor, ctx: FusionContext) -> torch.Tensor:
    """z_k / tau_k: each teacher tempered by its validation-fitted calibration temperature
    (`calibrate: true` applies this in front of any strategy; in the probability domain it is
    p^(1/tau) renormalised)."""
    if ctx.teacher_temperatures is None:
        raise ValueError("calibration needs teacher_temperatures (fitted on validation)")
    return logits / ctx.teacher_temperatures.to(logits.dtype).view(-1, 1, 1)


# ------------------------------------------------------------------------------------- strategies
def average(logits: torch.Tensor, ctx: FusionContext) -> torch.Tensor:
    """sigma(mean_k z_k / T): mean of teacher logits (a geometric, product-of-experts pool).

    The study's "average" (and TextBrewer's multi-teacher default). Averaging logits is a geometric
    pool of the teachers' tempered probabilities, not a probability average."""
    return torch.softmax(logits.mean(0) / ctx.temperature, dim=-1)


def prob_average(logits: torch.Tensor, ctx: FusionContext) -> torch.Tensor:
    """mean_k sigma(z_k / T): mean of tempered teacher probabilities (the arithmetic, mixture pool).

    Hinton et al. (2015) ensemble targets."""
    return tempered(logits, ctx).mean(0)


def weighted(logits: torch.Tensor, ctx: FusionContext) -> torch.Tensor:
    """sigma(sum_k w_k z_k / T), w_k = s_k / sum_j s_j, s_k = teacher k's validation metric.

    The study's "weighted". Scores are clipped at 0; all-zero scores give equal weights."""
    if ctx.teacher_scores is None:
        raise ValueError("weighted fusion needs teacher_scores (validation metrics)")
    w = score_weights(ctx.teacher_scores.to(logits.dtype))
    return geometric(w.expand(logits.shape[1], -1), logits, ctx)


def score_weights(scores: torch.Tensor) -> torch.Tensor:
    """w_k = s_k / sum_j s_j, scores clipped at 0; equal weights when all are 0."""
    s = scores.clamp_min(0)
    return s / s.sum() if s.sum() > 0 else torch.full_like(s, 1.0 / len(s))


def calibrated_average(logits: torch.Tensor, ctx: FusionContext) -> torch.Tensor:
    """sigma(mean_k (z_k / tau_k) / T), tau_k fitted on validation: `average` after calibration.

    Temperature scaling per teacher (Guo et al., 2017) before the logit mean, so no teacher dominates
    by being sure rather than right. Same as `average` with `calibrate: true`."""
    return average(calibrated(logits, ctx), ctx)


def best_per_sample(logits: torch.Tensor, ctx: FusionContext) -> torch.Tensor:
    """sigma(z_k* / T), k* = argmin_k H(sigma(z_k)): per example, the most confident teacher.

    The study's "best per sample" (entropy at T = 1; ties go to the lowest teacher index)."""
    k_star = entropy(logits).argmin(0)                           # [B]
    chosen = logits[k_star, torch.arange(logits.shape[1])]        # [B, C]
    return torch.softmax(chosen / ctx.temperature, dim=-1)


def ebkd_weights(entropies: torch.Tensor) -> torch.Tensor:
    """EBKD weights [B, K] from per-teacher entropies [K, B]: w_k = (1 - H_k / sum_j H_j) / (K - 1);
    uniform when every H_k = 0; w = 1 for K = 1."""
    K = entropies.shape[0]
    if K == 1:
        return torch.ones_like(entropies).T
    total = entropies.sum(0, keepdim=True)
    share = torch.where(total > 0, entropies / total.clamp_min(1e-30), torch.full_like(entropies, 1.0 / K))
    return ((1 - share) / (K - 1)).T


def entropy_weights(logits: torch.Tensor) -> torch.Tensor:
    """ebkd_weights of the teachers' entropies H(sigma(z_k)) at T = 1, [B, K]."""
    return ebkd_weights(entropy(logits))


def entropy_weighted(logits: torch.Tensor, ctx: FusionContext) -> Fused:
    """sum_k w_k p_k, w_k = (1 - H_k / sum_j H_j) / (K - 1), H_k = H(sigma(z_k)): confident teachers weigh more, softly.

    EBKD, Kwon et al. (ICASSP 2020), "Adaptive knowledge distillation based on entropy", as
    implemented in the CA-MKD authors' comparison code (weights 1 - H_k / sum_j H_j on per-teacher KL
    terms; sum_k w_k KL(p_k || p_s) has the gradient of KL(sum_k w_k p_k || p_s), the target here).
    The soft counterpart of best_per_sample. Entropies at T = 1, the pool at T."""
    w = entropy_weights(logits)
    return Fused(target=mixture(w, logits, ctx), weights=w)


def ca_weights(losses: torch.Tensor) -> torch.Tensor:
    """CA-MKD weights [B, K] from per-teacher losses [K, B]: w_k = (1 - softmax_k(L_k)) / (K - 1);
    w = 1 for K = 1."""
    K = losses.shape[0]
    if K == 1:
        return torch.ones_like(losses).T
    return ((1 - torch.softmax(losses, dim=0)) / (K - 1)).T


def confidence_weights(logits: torch.Tensor, ctx: FusionContext) -> torch.Tensor:
    """ca_weights of L_k = CE(z_k, y) on labelled examples and H(sigma(z_k)) on the others, [B, K]."""
    K = logits.shape[0]
    loss = entropy(logits)                                                    # [K, B]
    if ctx.labels is not None:
        lab = ctx.labelled if ctx.labelled is not None else torch.ones_like(ctx.labels, dtype=torch.bool)
        y = torch.where(lab, ctx.labels, torch.zeros_like(ctx.labels)).long()
        ce = -torch.log_softmax(logits, -1).gather(-1, y.view(1, -1, 1).expand(K, -1, 1)).squeeze(-1)
        loss = torch.where(lab.view(1, -1), ce, loss)
    return ca_weights(loss)


def confidence_aware(logits: torch.Tensor, ctx: FusionContext) -> Fused:
    """sum_k w_k p_k, w_k = (1 - softmax_k(CE(z_k, y))) / (K - 1): teachers right about the gold label weigh more.

    CA-MKD, Zhang, Chen & Wang (ICASSP 2022), "Confidence-Aware Multi-Teacher Knowledge
    Distillation", eq. 2 (their code: `(1 - softmax(loss_t)) / (K - 1)`). The paper weights
    per-teacher KL terms; sum_k w_k KL(p_k || p_s) has the same gradient w.r.t. the student as
    KL(sum_k w_k p_k || p_s), the target returned here. On examples without a gold label the
    cross-entropy is replaced by the teacher's entropy H(sigma(z_k)). (The paper's intermediate-
    feature term is not part of this strategy.)"""
    w = confidence_weights(logits, ctx)
    return Fused(target=mixture(w, logits, ctx), weights=w)


def kl_sum(logits: torch.Tensor, ctx: FusionContext, weights: torch.Tensor | None = None) -> Fused:
    """KD term = sum_k w_k T^2 KL(p_k || p_s), w_k = 1/K: the average of per-teacher KD losses.

    As in multi-teacher KD codebases that sum one KD loss per teacher (e.g. You et al., 2017;
    TextBrewer's MultiTeacherDistiller sums per-teacher losses over the averaged logits instead).
    Its gradient w.r.t. the student equals that of KL(mean_k p_k || p_s) (prob_average); the value
    differs by a constant (the teachers' Jensen gap), so the logged KD term is not comparable with
    prob_average's. `weights` [K] (or [B, K]) replaces 1/K (ae_kd uses it)."""
    K, B = logits.shape[:2]
    w = torch.full((B, K), 1.0 / K, dtype=logits.dtype, device=logits.device) if weights is None else \
        weights.expand(B, K) if weights.dim() == 1 else weights
    kd = (w.T * kl_per_teacher(logits, ctx)).sum(0).mean()
    return Fused(kd=kd, weights=w)


def min_norm_weights(grads: torch.Tensor, iters: int = 50) -> torch.Tensor:
    """argmin_{w in simplex} ||sum_k w_k g_k||^2 for grads [K, D], by Frank-Wolfe with the exact line
    search of MGDA (Sener & Koltun, 2018, alg. 1): each step moves w toward the vertex e_t,
    t = argmin_k (G w)_k, by the closed-form step of the two-point problem."""
    G = grads @ grads.T                                            # [K, K] Gram matrix
    K = G.shape[0]
    w = torch.full((K,), 1.0 / K, dtype=G.dtype, device=G.device)
    for _ in range(iters):
        t = int(torch.argmin(G @ w))
        wGw, wGe, eGe = w @ G @ w, (G @ w)[t], G[t, t]
        denom = wGw - 2 * wGe + eGe                                # ||v - g_t||^2, v = sum_k w_k g_k
        if denom <= 1e-20:
            break
        gamma = float(((wGw - wGe) / denom).clamp(0.0, 1.0))
        if gamma <= 1e-9:
            break
        w = (1 - gamma) * w
        w[t] += gamma
    return w


def ae_kd(logits: torch.Tensor, ctx: FusionContext) -> Fused:
    """KD term = sum_k w_k T^2 KL(p_k || p_s), w = min-norm point over the teachers' gradients w.r.t. the student logits.

    AE-KD, Du et al. (NeurIPS 2020), "Agree to Disagree: Adaptive Ensemble Knowledge Distillation in
    Gradient Space": per batch, w = argmin_{w in simplex} ||sum_k w_k grad_s KL(p_k || p_s)||^2 (the
    multi-objective min-norm point, MGDA), found by Frank-Wolfe (min_norm_weights). Here
    grad_s T^2 KL(p_k || p_s) = T (p_s - p_k) / B, so w picks the teacher mixture closest (in L2)
    to the student. The paper's upper bound on each weight and its feature-level term are not used."""
    if ctx.student_logits is None:
        raise ValueError("ae_kd needs the student's logits")
    with torch.no_grad():
        ps = torch.softmax(ctx.student_logits.detach() / ctx.temperature, -1).to(logits.dtype)
        grads = (ps.unsqueeze(0) - tempered(logits, ctx)).flatten(1)   # [K, B*C], up to the factor T / B
        w = min_norm_weights(grads)
    return kl_sum(logits, ctx, w)


def agreement(logits: torch.Tensor, ctx: FusionContext, shift: float = 0.5) -> Fused:
    """q = mean_k p_k where the teachers' argmax agree; elsewhere q' = (1 - beta) q + beta e_m.

    Rule (beta = `agreement_shift`): on examples where every teacher predicts the same class, the
    target is the mixture pool q = mean_k p_k. Where they disagree, mass beta moves onto one class m:
    the gold label on labelled examples; on unlabelled ones the strict-majority class (predicted by
    more than K/2 teachers), and when there is none q stays as it is. In the spirit of agreement-
    based multi-teacher distillation (e.g. Meng et al., "ensemble agreement"); this exact rule is mtkd's."""
    q = prob_average(logits, ctx)
    K, B, C = logits.shape
    votes = F.one_hot(logits.argmax(-1), C).sum(0)                       # [B, C] votes per class
    top, majority = votes.max(-1)
    disagree = top < K
    has_majority = 2 * top > K
    m = majority
    if ctx.labels is not None:
        lab = ctx.labelled if ctx.labelled is not None else torch.ones_like(ctx.labels, dtype=torch.bool)
        m = torch.where(lab, ctx.labels.long(), majority)
        has_majority = has_majority | lab
    move = (disagree & has_majority).to(q.dtype).unsqueeze(-1) * shift   # [B, 1]
    return Fused(target=(1 - move) * q + move * F.one_hot(m, C).to(q.dtype))


def curriculum(logits: torch.Tensor, ctx: FusionContext, end: float = 0.5) -> Fused:
    """sum_k w_k(t) p_k, w(t) = (1 - lam) w_EBKD + lam / K, lam = min(1, t / end): confident teachers first, the full ensemble later.

    A teacher curriculum in the spirit of curriculum KD (e.g. Zhao et al., 2021, "Knowledge
    distillation via instance-level sequence learning"; the study's future work): at training progress
    t = 0 the target is entropy_weighted (confident teachers weigh more), it moves linearly to the
    uniform mixture prob_average, reached at t = `curriculum_end` and kept after."""
    lam = 1.0 if end <= 0 else min(1.0, ctx.progress / end)
    K = logits.shape[0]
    w = (1 - lam) * entropy_weights(logits) + lam / K
    return Fused(target=mixture(w, logits, ctx), weights=w)


class LearnedGating(nn.Module):
    """sigma(sum_k g_k(h) z_k / T), g = softmax(MLP(h)), trained so the fused teacher (T = 1) is right about the gold label.

    A per-example gate over teachers (mixture-of-experts routing) on h, the student's pooled embedding
    (detached: the gate does not steer the student's features). The student's KD target is detached;
    the gate's own loss is the cross-entropy of the fused teacher sigma(sum_k g_k z_k) against the gold
    label on labelled examples, minus `gate_entropy` times the mean entropy of g (a bonus against
    collapse onto one teacher). Starts uniform (last layer zero), i.e. as `average`. Mean gate weights
    per teacher and epoch are kept in buffers (saved with the checkpoint, so resume keeps them)."""
    joint = False

    def __init__(self, num_teachers: int, feature_dim: int, hidden: int = 64, entropy_bonus: float = 0.0,
                 epochs: int = 1):
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(feature_dim, hidden), nn.Tanh(), nn.Linear(hidden, num_teachers))
        nn.init.zeros_(self.mlp[-1].weight)
        nn.init.zeros_(self.mlp[-1].bias)
        self.entropy_bonus = entropy_bonus
        self.register_buffer("epoch_sums", torch.zeros(max(1, epochs), num_teachers, dtype=torch.float64))
        self.register_buffer("epoch_counts", torch.zeros(max(1, epochs), dtype=torch.float64))

    def weights(self, features: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.mlp(features.detach()), dim=-1)   # [B, K]

    def forward(self, logits: torch.Tensor, ctx: FusionContext) -> Fused:
        if ctx.features is None:
            raise ValueError("learned_gating needs the student's features")
        g = self.weights(ctx.features).to(logits.dtype)
        if self.training:
            e = min(int(ctx.progress * len(self.epoch_counts)), len(self.epoch_counts) - 1)
            self.epoch_sums[e] += g.detach().sum(0).double()
            self.epoch_counts[e] += g.shape[0]
        pooled = torch.einsum("bk,kbc->bc", g, logits)
        if self.joint:   # the study's: the KD loss itself trains the gate
            return Fused(target=geometric(g, logits, ctx), weights=g.detach())
        target = torch.softmax(pooled.detach() / ctx.temperature, dim=-1)
        aux = -self.entropy_bonus * (-(g * torch.log(g.clamp_min(1e-12))).sum(-1)).mean()
        if ctx.labels is not None:
            lab = ctx.labelled if ctx.labelled is not None else torch.ones_like(ctx.labels, dtype=torch.bool)
            if lab.any():
                aux = aux + F.cross_entropy(pooled[lab], ctx.labels[lab].long())
        return Fused(target=target, aux=aux, weights=g.detach(), parts={"gate_loss": aux.detach()})


class LearnedGatingJoint(LearnedGating):
    """sigma(sum_k g_k(h) z_k / T), the gate trained jointly with the student through the KD term (the study's; not the default).

    The study's formulation: the target is not detached, so the gate's only signal is
    KL(p_t || p_s), whose minimum over p_t is p_s: it learns to reproduce what the student already
    predicts, never sees a label, and nothing stops it collapsing onto one teacher. Kept to reproduce
    the study; `learned_gating` is the gate that learns to be right."""
    joint = True


STRATEGIES = {
    "average": average,
    "prob_average": prob_average,
    "weighted": weighted,
    "best_per_sample": best_per_sample,
    "learned_gating": LearnedGating,
    "learned_gating_joint": LearnedGatingJoint,
    "calibrated_average": calibrated_average,
    "entropy_weighted": entropy_weighted,
    "confidence_aware": confidence_aware,
    "kl_sum": kl_sum,
    "ae_kd": ae_kd,
    "agreement": agreement,
    "curriculum": curriculum,
}
# LEARNABLE (strategies with parameters) and OPTIONS (the config fields each reads): registry.py, with the
# strategies' names (the config validates against those without importing torch)


def describe(name: str) -> str:
    """The one-line description of strategy `name` (the first line of its docstring)."""
    return (STRATEGIES[name].__doc__ or "").strip().splitlines()[0]


def make_strategy(name: str, num_teachers: int, feature_dim: int, hidden: int = 64, options: dict | None = None,
                  gate_entropy: float = 0.0, epochs: int = 1):
    """The fuse callable for `name`: a function (its options bound), or a freshly initialised nn.Module.
    `options` maps DistillConfig field names (OPTIONS) to values."""
    if name in LEARNABLE:
        return STRATEGIES[name](num_teachers, feature_dim, hidden, gate_entropy, epochs)
    kwargs = {arg: options[f] for f, arg in OPTIONS.get(name, {}).items() if options and f in options}
    return functools.partial(STRATEGIES[name], **kwargs) if kwargs else STRATEGIES[name]
