"""The learned gate (issue 8.4): it learns to make the fused teacher right, routes each region of
feature space to the teacher that is right there, and its weights are recorded."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from mtkd.fusion import make_strategy
from mtkd.recipe import Recipe, agreement_regions, cached_teachers, gate_record


def routing(name: str, entropy_bonus: float = 0.0):
    """Synthetic task: the student sees 2-d features whose sign of x0 is the region; the label is hidden
    from it (drawn per example) but teacher A knows it in region x0 > 0 and is confidently wrong in the
    other, teacher B the reverse. A linear student and the gate are trained with the real Recipe step.
    Returns (mean gate weight on A where A is right, mean weight on B where B is right, the gate)."""
    torch.manual_seed(0)
    n = 1024
    x = torch.randn(n, 2)
    y = torch.randint(0, 2, (n,))
    region_a = x[:, 0] > 0
    right = 4.0 * (2 * F.one_hot(y, 2).float() - 1)                  # +-4 logits on the gold class
    z_a = torch.where(region_a.unsqueeze(1), right, -right)
    teachers = np.stack([z_a.numpy(), (-z_a).numpy()])                # B is right exactly where A is wrong
    student = torch.nn.Linear(2, 2)
    gate = make_strategy(name, 2, 2, hidden=16, gate_entropy=entropy_bonus, epochs=2)
    recipe = Recipe(y, cached_teachers(teachers), gate, temperature=2.0, alpha=0.7, names=("A", "B"))
    opt = torch.optim.Adam([*student.parameters(), *gate.parameters()], lr=1e-2)
    epochs = 40
    for epoch in range(epochs):
        for idx in torch.randperm(n).split(64):
            recipe.set_progress(epoch / epochs)
            loss, parts = recipe(student(x[idx]), x[idx], idx)
            opt.zero_grad()
            loss.backward()
            opt.step()
    w = gate.weights(x).detach()
    return float(w[region_a, 0].mean()), float(w[~region_a, 1].mean()), gate, parts


def test_learned_gating_routes_each_region_to_the_teacher_that_is_right_there():
    """Fails on the study's gate (trained only through KL(p_t || p_s)): guards that the gate learns from labels."""
    on_a, on_b, _, parts = routing("learned_gating")
    assert on_a > 0.8 and on_b > 0.8
    assert {"kd", "ce", "gate_loss", "w/A", "w/B"} <= set(parts)     # what the trackers log


def test_learned_gating_joint_does_not_route():
    """The study's joint gate sees no label: with a student that cannot tell the labels apart, pulling
    the fused target toward the student keeps the gate near uniform in both regions."""
    on_a, on_b, _, _ = routing("learned_gating_joint")
    assert not (on_a > 0.8 and on_b > 0.8)
    assert min(on_a, on_b) < 0.6


def test_gate_entropy_bonus_keeps_the_gate_from_collapsing():
    """A strong entropy bonus holds the weights near uniform (it must act, or the knob is dead)."""
    on_a, on_b, _, _ = routing("learned_gating", entropy_bonus=5.0)
    assert on_a < 0.7 and on_b < 0.7


def test_agreement_regions_hand_computed():
    # 3 teachers, 4 examples: all agree / two of three / all different / all agree
    preds = np.array([[0, 0, 0, 2], [0, 0, 1, 2], [0, 1, 2, 2]])
    logits = np.eye(3)[preds]                                          # [K, N, C]
    np.testing.assert_array_equal(agreement_regions(logits), [0, 1, 2, 0])
    two = np.eye(2)[np.array([[0, 1], [0, 0]])]                        # K = 2: agree / disagree (= full)
    np.testing.assert_array_equal(agreement_regions(two), [0, 2])


def test_gate_record_means_per_epoch_and_region():
    gate = make_strategy("learned_gating", 2, 3, hidden=4, epochs=2)
    from mtkd.fusion import FusionContext
    feats = torch.randn(5, 3)
    z = torch.randn(2, 5, 2)
    for progress in (0.0, 0.6):
        gate(z, FusionContext(1.0, features=feats, progress=progress))
    preds = np.array([[0, 0, 1, 1, 0], [0, 1, 1, 0, 0]])
    rec = gate_record(gate, ["a", "b"], feats, np.eye(2)[preds])
    assert rec["per_epoch"] == [{"a": 0.5, "b": 0.5}, {"a": 0.5, "b": 0.5}]   # zero-initialised: uniform
    assert rec["train"] == {"a": 0.5, "b": 0.5} and rec["eval"] == {"a": 0.5, "b": 0.5}
    assert rec["eval_regions"]["all_agree"]["n"] == 3 and rec["eval_regions"]["full_disagree"]["n"] == 2
    assert rec["eval_regions"]["partial"] == {"n": 0}
    assert rec["joint"] is False and pytest.approx(sum(rec["eval"].values())) == 1.0
