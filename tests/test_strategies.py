"""The fusion literature strategies (issue 11.3) against hand computations."""
import math

import numpy as np
import pytest
import torch

from mtkd.fusion import FusionContext, ae_kd, agreement, calibrated_average, confidence_aware, curriculum, \
    entropy_weighted, kl_sum, min_norm_weights, prob_average
from mtkd.recipe import Fitted, Recipe, cached_teachers

L3 = math.log(3.0)
# two teachers, one example: p_1 = [3/4, 1/4], p_2 = [1/4, 3/4] at T = 1
Z = torch.tensor([[[L3, 0.0]], [[0.0, L3]]], dtype=torch.float64)


def H(p):
    return -sum(x * math.log(x) for x in p)


def test_entropy_weighted_hand_computed():
    # p_1 = [1/2, 1/2] (H = ln 2), p_2 = [3/4, 1/4]; w_1 = 1 - H1/(H1+H2) = H2/(H1+H2)
    z = torch.tensor([[[0.0, 0.0]], [[L3, 0.0]]], dtype=torch.float64)
    h1, h2 = math.log(2), H([0.75, 0.25])
    w1, w2 = h2 / (h1 + h2), h1 / (h1 + h2)
    out = entropy_weighted(z, FusionContext(1.0))
    np.testing.assert_allclose(out.weights[0].numpy(), [w1, w2], rtol=1e-9)
    np.testing.assert_allclose(out.target[0].numpy(), [w1 * 0.5 + w2 * 0.75, w1 * 0.5 + w2 * 0.25], rtol=1e-9)
    assert w2 > w1                                                   # the confident teacher weighs more


def test_confidence_aware_hand_computed_and_entropy_fallback():
    # gold y = 0: CE_1 = -ln 3/4, CE_2 = -ln 1/4; softmax(CE) = [1/4, 3/4] (their difference is ln 3)
    # w = (1 - [1/4, 3/4]) / 1 = [3/4, 1/4]; target = 3/4 [3/4, 1/4] + 1/4 [1/4, 3/4] = [5/8, 3/8]
    ctx = FusionContext(1.0, labels=torch.tensor([0]), labelled=torch.tensor([True]))
    out = confidence_aware(Z, ctx)
    np.testing.assert_allclose(out.weights[0].numpy(), [0.75, 0.25], rtol=1e-9)
    np.testing.assert_allclose(out.target[0].numpy(), [0.625, 0.375], rtol=1e-9)
    # gold y = 1 flips the weights
    flip = confidence_aware(Z, FusionContext(1.0, labels=torch.tensor([1]), labelled=torch.tensor([True])))
    np.testing.assert_allclose(flip.target[0].numpy(), [0.375, 0.625], rtol=1e-9)
    # no gold label: CE replaced by the entropies, equal here -> equal weights
    none = confidence_aware(Z, FusionContext(1.0, labels=torch.tensor([0]), labelled=torch.tensor([False])))
    np.testing.assert_allclose(none.target[0].numpy(), [0.5, 0.5], rtol=1e-9)


def test_kl_sum_is_the_mean_of_per_teacher_kd_terms():
    # student uniform, T = 2: p_k = sigma(z_k / 2) = [sqrt3, 1] / (sqrt3 + 1) and its mirror; both KL equal
    s = torch.zeros(1, 2, dtype=torch.float64, requires_grad=True)
    p = [math.sqrt(3) / (math.sqrt(3) + 1), 1 / (math.sqrt(3) + 1)]
    kl = sum(x * math.log(x / 0.5) for x in p)
    out = kl_sum(Z, FusionContext(2.0, student_logits=s))
    assert out.target is None and out.kd.item() == pytest.approx(4 * kl, rel=1e-9)   # T^2 KL
    # not the KD term to the averaged teacher (which is uniform here: KL = 0)
    assert out.kd.item() > 0.1


def test_min_norm_weights_hand_computed():
    g = torch.tensor([[1.0, 0.0], [0.0, 1.0]], dtype=torch.float64)        # orthogonal, equal norms: 1/2 each
    np.testing.assert_allclose(min_norm_weights(g).numpy(), [0.5, 0.5], atol=1e-9)
    g = torch.tensor([[3.0, 0.0], [-1.0, 0.0]], dtype=torch.float64)       # 3 w - (1 - w) = 0 -> w = 1/4
    np.testing.assert_allclose(min_norm_weights(g).numpy(), [0.25, 0.75], atol=1e-9)
    g = torch.tensor([[1.0, 0.0], [2.0, 0.0]], dtype=torch.float64)        # the shorter vector itself
    np.testing.assert_allclose(min_norm_weights(g).numpy(), [1.0, 0.0], atol=1e-9)
    g = torch.tensor([[1.0, 0.0, 0.0], [0.0, 2.0, 0.0], [0.0, 0.0, 2.0]], dtype=torch.float64)
    np.testing.assert_allclose(min_norm_weights(g, iters=500).numpy(), [2 / 3, 1 / 6, 1 / 6], atol=1e-3)   # w ~ 1/|g|^2


def test_ae_kd_puts_all_weight_on_the_teacher_the_student_already_matches():
    """grad_s KL(p_1 || p_s) = 0 when p_s = p_1: the min-norm point is teacher 1 alone, and the KD term is 0."""
    s = torch.tensor([[L3, 0.0]], dtype=torch.float64, requires_grad=True)
    out = ae_kd(Z, FusionContext(1.0, student_logits=s))
    np.testing.assert_allclose(out.weights[0].numpy(), [1.0, 0.0], atol=1e-9)
    assert out.kd.item() == pytest.approx(0.0, abs=1e-12)
    # a uniform student is equally far from both mirror teachers: 1/2 each, = kl_sum
    u = torch.zeros(1, 2, dtype=torch.float64, requires_grad=True)
    out = ae_kd(Z, FusionContext(1.0, student_logits=u))
    np.testing.assert_allclose(out.weights[0].numpy(), [0.5, 0.5], atol=1e-9)
    assert out.kd.item() == pytest.approx(kl_sum(Z, FusionContext(1.0, student_logits=u)).kd.item())


def test_agreement_rule_hand_computed():
    # 3 teachers, 3 classes, 2 examples. Example 0: all predict class 0; example 1: predictions 0, 0, 2.
    z = torch.tensor([[[2.0, 0.0, 0.0], [2.0, 0.0, 0.0]],
                      [[1.0, 0.0, 0.0], [1.0, 0.0, 0.0]],
                      [[3.0, 1.0, 0.0], [0.0, 0.0, 1.0]]], dtype=torch.float64)
    ctx = FusionContext(1.0)
    q = prob_average(z, ctx)
    out = agreement(z, ctx, shift=0.4).target
    torch.testing.assert_close(out[0], q[0])                                           # agree: the mixture pool
    torch.testing.assert_close(out[1], 0.6 * q[1] + 0.4 * torch.tensor([1.0, 0.0, 0.0], dtype=torch.float64))  # majority 0
    gold = FusionContext(1.0, labels=torch.tensor([1, 2]), labelled=torch.tensor([True, True]))
    out = agreement(z, gold, shift=0.4).target
    torch.testing.assert_close(out[0], q[0])                                           # agree: gold not used
    torch.testing.assert_close(out[1], 0.6 * q[1] + 0.4 * torch.tensor([0.0, 0.0, 1.0], dtype=torch.float64))  # gold 2
    # two teachers that disagree, no gold label: no strict majority, the pool stays
    torch.testing.assert_close(agreement(Z, FusionContext(1.0)).target, prob_average(Z, FusionContext(1.0)))


def test_curriculum_moves_from_entropy_weights_to_the_uniform_mixture():
    z = torch.tensor([[[0.0, 0.0]], [[L3, 0.0]]], dtype=torch.float64)
    start = curriculum(z, FusionContext(1.0, progress=0.0), end=0.5)
    torch.testing.assert_close(start.target, entropy_weighted(z, FusionContext(1.0)).target)
    for t in (0.5, 0.9):
        torch.testing.assert_close(curriculum(z, FusionContext(1.0, progress=t), end=0.5).target,
                                   prob_average(z, FusionContext(1.0)))
    mid = curriculum(z, FusionContext(1.0, progress=0.25), end=0.5)                      # lambda = 1/2
    torch.testing.assert_close(mid.weights, 0.5 * start.weights + 0.25)


def test_calibrate_in_front_of_any_strategy():
    """Recipe(calibrate=True) divides each teacher's logits by its validation temperature before the
    strategy: with `average` it is exactly calibrated_average; without it, it is not."""
    z = np.array([[[2.0, 0.0]], [[0.0, 1.0]]], dtype=np.float32)
    taus = torch.tensor([2.0, 0.5])
    fitted = Fitted(torch.tensor([1.0, 1.0]), taus)
    from mtkd.fusion import average
    from mtkd.losses import kd_loss
    s, y, idx = torch.tensor([[0.3, -0.2]]), torch.tensor([0]), torch.tensor([0])
    want = kd_loss(s, calibrated_average(torch.from_numpy(z), FusionContext(3.0, teacher_temperatures=taus)), y, 3.0, 0.7)[0]
    got = Recipe(y, cached_teachers(z), average, temperature=3.0, alpha=0.7, fitted=fitted, calibrate=True)(s, None, idx)[0]
    plain = Recipe(y, cached_teachers(z), average, temperature=3.0, alpha=0.7, fitted=fitted)(s, None, idx)[0]
    assert got.item() == pytest.approx(want.item(), rel=1e-6)
    assert plain.item() != pytest.approx(want.item(), rel=1e-3)
