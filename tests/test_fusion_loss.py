"""Fusion strategies and the KD loss against hand computations."""
import dataclasses
import math

import numpy as np
import pytest
import torch

from mtkd.fusion import STRATEGIES, FusionContext, LearnedGating, LearnedGatingJoint, average, best_per_sample, \
    calibrated_average, entropy, fit_temperature, make_strategy, prob_average, target_of, weighted
from mtkd.losses import kd_loss

# two teachers, one example, two classes
Z = torch.tensor([[[2.0, 0.0]], [[0.0, 1.0]]])   # [K=2, B=1, C=2]


def sm(v):
    e = np.exp(np.asarray(v) - np.max(v))
    return e / e.sum()


def test_average_is_softmax_of_mean_logits():
    # mean logits = [1.0, 0.5]; T = 2 -> softmax([0.5, 0.25])
    p = average(Z, FusionContext(2.0))
    np.testing.assert_allclose(p[0].numpy(), sm([0.5, 0.25]), rtol=1e-6)
    assert p[0, 0] == pytest.approx(1 / (1 + math.exp(-0.25)), rel=1e-6)


def test_prob_average_is_mean_of_probabilities():
    p = prob_average(Z, FusionContext(1.0))
    expected = (sm([2.0, 0.0]) + sm([0.0, 1.0])) / 2          # [0.5742, 0.4258]
    np.testing.assert_allclose(p[0].numpy(), expected, rtol=1e-6)
    assert p[0, 0] == pytest.approx((0.880797 + 0.268941) / 2, abs=1e-5)


def test_weighted_uses_normalised_validation_scores():
    # scores 90, 30 -> w = [0.75, 0.25]; fused logits = [1.5, 0.25]; T = 1
    p = weighted(Z, FusionContext(1.0, teacher_scores=torch.tensor([90.0, 30.0])))
    np.testing.assert_allclose(p[0].numpy(), sm([1.5, 0.25]), rtol=1e-6)


def test_weighted_equal_scores_equals_average():
    z = torch.randn(3, 5, 4)
    ctx = FusionContext(3.0, teacher_scores=torch.tensor([70.0, 70.0, 70.0]))
    torch.testing.assert_close(weighted(z, ctx), average(z, ctx))


def test_best_per_sample_picks_lowest_entropy_teacher_per_example():
    z = torch.tensor([[[3.0, 0.0], [0.1, 0.0]],      # teacher 0: confident on ex 0, unsure on ex 1
                      [[0.2, 0.0], [0.0, -4.0]]])    # teacher 1: unsure on ex 0, confident on ex 1
    p = best_per_sample(z, FusionContext(2.0))
    np.testing.assert_allclose(p[0].numpy(), sm([1.5, 0.0]), rtol=1e-6)
    np.testing.assert_allclose(p[1].numpy(), sm([0.0, -2.0]), rtol=1e-6)


def test_entropy_hand_value():
    assert entropy(torch.tensor([0.0, 0.0])).item() == pytest.approx(math.log(2))


def test_learned_gating_joint_starts_uniform_and_learns_through_its_target():
    """The study's joint gate: uniform at start, and a loss on its (non-detached) target trains it."""
    torch.manual_seed(0)
    gate = LearnedGatingJoint(num_teachers=2, feature_dim=4, hidden=8)
    feats = torch.randn(1, 4)
    ctx = FusionContext(1.0, features=feats)
    torch.testing.assert_close(gate(Z, ctx).target, average(Z, ctx))     # zero-initialised last layer = uniform weights
    # train the gate to follow teacher 1 (class 1): the weight of teacher 1 must grow
    opt = torch.optim.SGD(gate.parameters(), lr=1.0)
    for _ in range(50):
        loss = -torch.log(gate(Z, ctx).target[0, 1])
        opt.zero_grad()
        loss.backward()
        opt.step()
    w = gate.weights(feats)[0]
    assert w[1] > 0.9 and torch.isclose(w.sum(), torch.tensor(1.0))


def test_learned_gating_target_is_detached_and_its_loss_is_the_fused_cross_entropy():
    """Guards issue 8.4: no gradient reaches the gate through the student's KD target; the gate's own
    loss is CE(sigma(sum_k g_k z_k), y) at T = 1 (hand value at uniform g), minus the entropy bonus."""
    gate = LearnedGating(num_teachers=2, feature_dim=4, hidden=8, entropy_bonus=0.5)
    ctx = FusionContext(3.0, features=torch.randn(1, 4), labels=torch.tensor([1]), labelled=torch.tensor([True]))
    out = gate(Z, ctx)
    assert not out.target.requires_grad
    torch.testing.assert_close(out.target, average(Z, ctx))
    ce = -math.log(sm([1.0, 0.5])[1])                           # fused logits at g = (1/2, 1/2): [1, 0.5]
    assert out.aux.item() == pytest.approx(ce - 0.5 * math.log(2), rel=1e-5)
    assert out.aux.requires_grad


def target(name, z, ctx, k=None):
    fuse = make_strategy(name, z.shape[0] if k is None else k, ctx.features.shape[1] if ctx.features is not None else 5)
    return target_of(fuse, z, ctx)


def full_context(T, K, B, C, seed=0):
    g = torch.Generator().manual_seed(seed)
    return FusionContext(T, teacher_scores=torch.rand(K, generator=g) * 100, features=torch.randn(B, 5, generator=g),
                         teacher_temperatures=torch.rand(K, generator=g) * 2 + 0.5,
                         labels=torch.randint(0, C, (B,), generator=g), labelled=torch.rand(B, generator=g) > 0.3,
                         student_logits=torch.randn(B, C, generator=g).requires_grad_(), progress=0.3)


@pytest.mark.parametrize("name", sorted(STRATEGIES))
def test_every_strategy_gives_distributions_and_reduces_to_single_teacher(name):
    torch.manual_seed(1)
    z = torch.randn(3, 6, 4) * 3
    ctx = full_context(2.0, 3, 6, 4)
    p = target(name, z, ctx)
    assert p.shape == (6, 4) and torch.all(p >= 0)
    torch.testing.assert_close(p.sum(-1), torch.ones(6))
    one_ctx = dataclasses.replace(ctx, teacher_scores=torch.tensor([80.0]), teacher_temperatures=torch.tensor([1.0]))
    torch.testing.assert_close(target(name, z[:1], one_ctx), torch.softmax(z[0] / 2.0, -1))   # single-teacher KD


def test_kd_loss_hand_computed():
    s = torch.tensor([[1.0, 0.0]])
    t = torch.tensor([[0.25, 0.75]])
    y = torch.tensor([0])
    T, a = 2.0, 0.7
    ps = sm([0.5, 0.0])
    kl = 0.25 * math.log(0.25 / ps[0]) + 0.75 * math.log(0.75 / ps[1])
    ce = -math.log(sm([1.0, 0.0])[0])
    loss, parts = kd_loss(s, t, y, T, a)
    assert loss.item() == pytest.approx(a * T * T * kl + (1 - a) * ce, rel=1e-5)
    assert parts["kd"].item() == pytest.approx(T * T * kl, rel=1e-5)
    assert parts["ce"].item() == pytest.approx(ce, rel=1e-5)


def test_kd_loss_alpha_zero_is_cross_entropy_and_zero_when_matching():
    s = torch.tensor([[0.3, -1.0, 2.0]])
    y = torch.tensor([2])
    ce = torch.nn.functional.cross_entropy(s, y)
    assert kd_loss(s, torch.full((1, 3), 1 / 3), y, 6.0, 0.0)[0].item() == pytest.approx(ce.item())
    match = torch.softmax(s / 6.0, -1)
    assert kd_loss(s, match, y, 6.0, 1.0)[0].item() == pytest.approx(0.0, abs=1e-5)


def test_a_labelled_example_weighs_the_same_whatever_shares_its_batch():
    """CE is summed over labelled rows and divided by the batch size: the gradient a labelled example's CE
    sends to its own logits is the same whether its batch-mates are labelled or transfer rows (label -1).
    Averaging CE over the labelled rows alone would give a lone labelled row 8x its weight here."""
    g = torch.Generator().manual_seed(0)
    student = torch.randn(8, 3, generator=g)
    target = torch.softmax(torch.randn(8, 3, generator=g), -1)

    def grad_of_row0(labels):
        s = student.clone().requires_grad_(True)
        loss, _ = kd_loss(s, target, labels, 2.0, 0.0)   # alpha = 0: CE alone
        loss.backward()
        return s.grad[0]

    all_labelled = grad_of_row0(torch.tensor([1, 0, 2, 1, 0, 2, 1, 0]))
    lone = grad_of_row0(torch.tensor([1, -1, -1, -1, -1, -1, -1, -1]))
    torch.testing.assert_close(lone, all_labelled)
    by_hand = (torch.softmax(student[0], -1) - torch.eye(3)[1]) / 8
    torch.testing.assert_close(lone, by_hand)


def test_calibrated_average_hand_computed():
    # tau = [2, 0.5]: calibrated logits [1, 0] and [0, 2]; mean [0.5, 1.0]; T = 1
    p = calibrated_average(Z, FusionContext(1.0, teacher_temperatures=torch.tensor([2.0, 0.5])))
    np.testing.assert_allclose(p[0].numpy(), sm([0.5, 1.0]), rtol=1e-6)


def test_fit_temperature_recovers_the_scale_of_overconfident_logits():
    g = torch.Generator().manual_seed(0)
    z = torch.randn(4000, 3, generator=g) * 2
    y = torch.multinomial(torch.softmax(z, -1), 1, generator=g).squeeze(1)   # labels drawn from sigma(z)
    assert fit_temperature(z, y) == pytest.approx(1.0, abs=0.1)              # calibrated: tau ~ 1
    assert fit_temperature(3 * z, y) == pytest.approx(3.0, rel=0.1)          # 3x over-confident: tau ~ 3
