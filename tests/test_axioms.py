"""Aggregation axioms (docs/fusion.md) for every strategy. The table in docs/fusion.md is the
specification: a ✓ is a hypothesis property test over random teachers, a ✗ must come with a
counterexample here that really violates the axiom, n/a is checked to be a strategy without weights.
Change a strategy so that it breaks (or starts to satisfy) an axiom and this file fails."""
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.optimize import nnls

from mtkd.fusion import STRATEGIES, FusionContext, ca_weights, ebkd_weights, geometric, make_strategy, mixture, \
    score_weights, target_of, tempered

DOC = Path(__file__).resolve().parents[1] / "docs" / "fusion.md"
AXIOMS = ("convex", "positive", "continuous", "monotone", "temperature coherent", "one teacher", "permutation")
MARKS = {"✓": True, "✗": False, "n/a": None}


def read_table() -> dict[str, dict[str, bool | None]]:
    rows = {}
    for line in DOC.read_text(encoding="utf-8").splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        m = re.fullmatch(r"`(\w+)`", cells[0]) if len(cells) == len(AXIOMS) + 1 else None
        if m and all(c in MARKS for c in cells[1:]):
            rows[m.group(1)] = dict(zip(AXIOMS, (MARKS[c] for c in cells[1:])))
    return rows


TABLE = read_table()


def test_the_table_covers_every_strategy():
    assert set(TABLE) == set(STRATEGIES)


# ------------------------------------------------------------------------------------ instances
def build(name: str, K: int):
    """The strategy; a gate gets fixed non-zero parameters (a zero-initialised gate is uniform)."""
    fuse = make_strategy(name, K, 4, hidden=8)
    if isinstance(fuse, torch.nn.Module):
        g = torch.Generator().manual_seed(1000 + K)
        with torch.no_grad():
            for p in fuse.parameters():
                p.copy_(torch.randn(p.shape, generator=g))
        fuse = fuse.double().eval()
    return fuse


def context(K, B, C, T, seed) -> FusionContext:
    g = torch.Generator().manual_seed(seed + 1)
    d = torch.float64
    return FusionContext(T, teacher_scores=torch.rand(K, generator=g, dtype=d) * 100,
                         features=torch.randn(B, 4, generator=g, dtype=d),
                         teacher_temperatures=torch.rand(K, generator=g, dtype=d) * 2 + 0.5,
                         labels=torch.randint(0, C, (B,), generator=g),
                         labelled=torch.rand(B, generator=g) > 0.3,
                         student_logits=torch.randn(B, C, generator=g, dtype=d).requires_grad_(),
                         progress=float(torch.rand(1, generator=g)))


def teachers(K, B, C, seed, scale) -> torch.Tensor:
    return torch.randn(K, B, C, generator=torch.Generator().manual_seed(seed), dtype=torch.float64) * scale


def q_of(name, z, ctx, fuse=None):
    return target_of(fuse if fuse is not None else build(name, z.shape[0]), z, ctx).detach()


def with_T(ctx, T):
    return FusionContext(T, ctx.teacher_scores, ctx.features, ctx.teacher_temperatures, ctx.labels, ctx.labelled,
                         ctx.student_logits, ctx.progress)


# ----------------------------------------------------------------------------- the axioms as checks
def convex(name, z, ctx) -> bool:
    q, P = q_of(name, z, ctx).numpy(), tempered(z, ctx).numpy()
    for b in range(z.shape[1]):
        A = np.vstack([P[:, b, :].T, 100 * np.ones((1, z.shape[0]))])
        _, residual = nnls(A, np.append(q[b], 100.0))
        if residual > 1e-6:
            return False
    return True


def positive(name, z, ctx) -> bool:
    return bool((q_of(name, z, ctx) > 0).all())


def continuous(name, z, ctx) -> bool:
    delta = torch.randn(z.shape, generator=torch.Generator().manual_seed(7), dtype=z.dtype)
    return bool((q_of(name, z + 1e-7 * delta, ctx) - q_of(name, z, ctx)).abs().max() < 1e-4)


def temperature_coherent(name, z, ctx) -> bool:
    fuse = build(name, z.shape[0])
    q1 = q_of(name, z, with_T(ctx, 1.0), fuse)
    for T in (2.0, 6.0):
        want = torch.softmax(torch.log(q1) / T, -1)
        if not torch.allclose(q_of(name, z, with_T(ctx, T), fuse), want, atol=1e-6):
            return False
    return True


def one_teacher(name, z, ctx) -> bool:
    one = FusionContext(ctx.temperature, ctx.teacher_scores[:1], ctx.features, ctx.teacher_temperatures[:1],
                        ctx.labels, ctx.labelled, ctx.student_logits, ctx.progress)
    return torch.allclose(q_of(name, z[:1], one), torch.softmax(z[0] / ctx.temperature, -1), atol=1e-6)


def permutation(name, z, ctx) -> bool:
    perm = torch.arange(z.shape[0] - 1, -1, -1)
    fuse = build(name, z.shape[0])
    other = FusionContext(ctx.temperature, ctx.teacher_scores[perm], ctx.features, ctx.teacher_temperatures[perm],
                          ctx.labels, ctx.labelled, ctx.student_logits, ctx.progress)
    return torch.allclose(q_of(name, z[perm], other, fuse), q_of(name, z, ctx, fuse), atol=1e-5)


CHECKS = {"convex": convex, "positive": positive, "continuous": continuous,
          "temperature coherent": temperature_coherent, "one teacher": one_teacher, "permutation": permutation}

# weight monotonicity, at the level of each strategy's weights: (signal -> weights [B, K], pool, better)
# `better(signal, k, amount)` improves teacher k's signal; signals are [K, B] (scores: [K])
lower = lambda s, k, a: torch.cat([s[:k], s[k:k + 1] * (1 - a), s[k + 1:]])
higher = lambda s, k, a: torch.cat([s[:k], s[k:k + 1] + 50 * a, s[k + 1:]])
onehot_min = lambda H: torch.nn.functional.one_hot(H.argmin(0), H.shape[0]).to(H.dtype)
WEIGHTS = {
    "weighted": (lambda s: score_weights(s).expand(1, -1), geometric, higher),
    "best_per_sample": (onehot_min, geometric, lower),
    "entropy_weighted": (ebkd_weights, mixture, lower),
    "curriculum": (lambda H: 0.7 * ebkd_weights(H) + 0.3 / H.shape[0], mixture, lower),   # lambda = 0.3
    "confidence_aware": (ca_weights, mixture, lower),
    "learned_gating": (lambda a: torch.softmax(a, 0).T, geometric, higher),
    "learned_gating_joint": (lambda a: torch.softmax(a, 0).T, geometric, higher),
}


def kl(p, q):
    return float((p * (p / q).log()).sum())


def monotone_on(name, z, signal, k, amount, T=1.0) -> bool:
    weights, pool, better = WEIGHTS[name]
    ctx = FusionContext(T)
    w, w2 = weights(signal), weights(better(signal, k, amount))
    pk = tempered(z, ctx)[k, 0]
    return bool(w2[0, k] >= w[0, k] - 1e-12) and kl(pk, pool(w2, z, ctx)[0]) <= kl(pk, pool(w, z, ctx)[0]) + 1e-9


def monotone(name, K, C, seed, amount) -> bool:
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(K, 1, C, generator=g, dtype=torch.float64) * 2
    signal = torch.rand(K, 1, generator=g, dtype=torch.float64) * 3
    if name == "weighted":
        signal = signal[:, 0] * 30
    return monotone_on(name, z, signal, int(torch.randint(0, K, (1,), generator=g)), amount)


# ------------------------------------------------------------------------------- counterexamples
def _geometric_pool_overshoots(name):
    z = torch.tensor([[[2.0, 0.0, 0.0]], [[0.0, 2.0, 0.0]]], dtype=torch.float64)
    return convex(name, z, context(2, 1, 3, 1.0, 0))


def _tie(name, axiom):   # two teachers with equal entropy, different classes
    z = torch.tensor([[[1.0, 0.0]], [[0.0, 1.0]]], dtype=torch.float64)
    if axiom == "permutation":
        return permutation(name, z, context(2, 1, 2, 1.0, 0))
    return continuous(name, z, context(2, 1, 2, 1.0, 0)) and continuous(name, z.flip(0), context(2, 1, 2, 1.0, 0))


def _argmax_flip(name):   # teacher 2 on the edge between classes 0 and 1, gold label 0
    z = torch.tensor([[[2.0, 0.0]], [[1.0, 1.0]]], dtype=torch.float64)
    nudge = torch.tensor([[[0.0, 0.0]], [[0.0, 1e-9]]], dtype=torch.float64)   # teacher 2 now votes 1
    ctx = FusionContext(1.0, labels=torch.tensor([0]), labelled=torch.tensor([True]))
    return bool((q_of(name, z + nudge, ctx) - q_of(name, z, ctx)).abs().max() < 1e-4)


def _agreement_outside_hull(name):   # disagreeing teachers, gold label 0: half the mass moved onto class 0
    z = torch.tensor([[[0.0, 1.0, 0.0]], [[0.0, 0.0, 1.0]]], dtype=torch.float64)
    return convex(name, z, FusionContext(1.0, labels=torch.tensor([0]), labelled=torch.tensor([True])))


def _mixture_not_tempered(name):
    z = torch.tensor([[[3.0, 0.0]], [[0.0, 1.0]], [[1.0, 2.0]]], dtype=torch.float64)
    return temperature_coherent(name, z, context(3, 1, 2, 1.0, 3))


def _ae_kd_interior_mixture():   # a student half-way between two teachers: w = (1/2, 1/2) at every T
    z = torch.tensor([[[3.0, 0.0, 0.0]], [[0.0, 3.0, 0.0]]], dtype=torch.float64)
    ctx = FusionContext(1.0, student_logits=torch.tensor([[1.0, 1.0, 0.0]], dtype=torch.float64, requires_grad=True))
    return temperature_coherent("ae_kd", z, ctx)


def _calibrated_single():
    z = torch.tensor([[[1.0, 0.0]]], dtype=torch.float64)
    ctx = FusionContext(1.0, teacher_scores=torch.ones(1), teacher_temperatures=torch.tensor([2.0], dtype=torch.float64))
    return one_teacher("calibrated_average", z, ctx)


# found by hypothesis / a random search (monotone): improving teacher 0's signal moves the target away from it
CA_Z = torch.tensor([[[0.3166, 0.0477, 0.6357]], [[0.0967, 0.0289, 0.8744]], [[0.8792, 0.1207, 0.0001]]],
                    dtype=torch.float64).log()
CA_L = torch.tensor([[2.5366], [2.6780], [0.3336]], dtype=torch.float64)
EB_Z = torch.tensor([[[-2.0, -3.0, -1.0]], [[3.0, 1.0, -1.0]], [[-1.0, -1.0, 3.0]]], dtype=torch.float64)
EB_H = torch.tensor([[1.25], [0.25], [1.75]], dtype=torch.float64)
COUNTEREXAMPLES = {
    ("average", "convex"): lambda: _geometric_pool_overshoots("average"),
    ("weighted", "convex"): lambda: _geometric_pool_overshoots("weighted"),
    ("calibrated_average", "convex"): lambda: _geometric_pool_overshoots("calibrated_average"),
    ("learned_gating", "convex"): lambda: _geometric_pool_overshoots("learned_gating"),
    ("learned_gating_joint", "convex"): lambda: _geometric_pool_overshoots("learned_gating_joint"),
    ("agreement", "convex"): lambda: _agreement_outside_hull("agreement"),
    ("best_per_sample", "continuous"): lambda: _tie("best_per_sample", "continuous"),
    ("agreement", "continuous"): lambda: _argmax_flip("agreement"),
    ("best_per_sample", "permutation"): lambda: _tie("best_per_sample", "permutation"),
    ("learned_gating", "permutation"): lambda: permutation("learned_gating", teachers(3, 2, 3, 0, 2.0), context(3, 2, 3, 1.0, 0)),
    ("learned_gating_joint", "permutation"): lambda: permutation("learned_gating_joint", teachers(3, 2, 3, 0, 2.0),
                                                                 context(3, 2, 3, 1.0, 0)),
    ("calibrated_average", "one teacher"): _calibrated_single,
    ("confidence_aware", "monotone"): lambda: monotone_on("confidence_aware", CA_Z, CA_L, 0, 1 - 0.3362 / 2.5366),
    ("entropy_weighted", "monotone"): lambda: monotone_on("entropy_weighted", EB_Z, EB_H, 0, 0.75),
    ("curriculum", "monotone"): lambda: monotone_on("curriculum", EB_Z, EB_H, 0, 0.75),
    **{(n, "temperature coherent"): (lambda n=n: _mixture_not_tempered(n))
       for n in ("prob_average", "entropy_weighted", "confidence_aware", "kl_sum", "agreement", "curriculum")},
    ("ae_kd", "temperature coherent"): _ae_kd_interior_mixture,
}

CELLS = [(n, a, v) for n, row in sorted(TABLE.items()) for a, v in row.items()]
instance = st.tuples(st.integers(2, 4), st.integers(2, 4), st.integers(1, 3), st.integers(0, 10**6),
                     st.sampled_from([1.0, 2.0, 6.0]), st.floats(0.1, 3.0))


@pytest.mark.parametrize("name,axiom", [(n, a) for n, a, v in CELLS if v and a != "monotone"])
@settings(max_examples=25, deadline=None)
@given(inst=instance)
def test_axiom_holds(name, axiom, inst):
    K, C, B, seed, T, scale = inst
    assert CHECKS[axiom](name, teachers(K, B, C, seed, scale), context(K, B, C, T, seed))


@pytest.mark.parametrize("name", [n for n, a, v in CELLS if v and a == "monotone"])
@settings(max_examples=300, deadline=None)   # violations are ~3% of random instances
@given(K=st.integers(2, 4), C=st.integers(2, 4), seed=st.integers(0, 10**6), amount=st.floats(0.01, 0.99))
def test_weight_monotonicity_holds(name, K, C, seed, amount):
    assert monotone(name, K, C, seed, amount)


@pytest.mark.parametrize("name,axiom", [(n, a) for n, a, v in CELLS if v is False])
def test_axiom_violated_by_its_counterexample(name, axiom):
    assert (name, axiom) in COUNTEREXAMPLES, f"{name} is marked ✗ for '{axiom}' without a counterexample"
    assert COUNTEREXAMPLES[(name, axiom)]() is False


@pytest.mark.parametrize("name,axiom", [(n, a) for n, a, v in CELLS if v is None])
def test_not_applicable_only_where_there_are_no_signal_weights(name, axiom):
    assert axiom == "monotone" and name not in WEIGHTS
