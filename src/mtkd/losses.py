"""The one KD loss convention of mtkd, written once:

    loss = alpha * KD + (1 - alpha) * CE(student, y)
    KD   = T**2 * KL(p_t || p_s)      p_t = fused teacher distribution at temperature T (fusion.py),
                                      p_s = softmax(student / T)

`alpha` weights the KD term; alpha = 0 is plain fine-tuning. The T**2 factor keeps the soft
term's gradient scale independent of T (Hinton et al., 2015). KL is averaged over the batch. A
strategy defined as a KD term of its own (e.g. fusion.kl_sum, sum_k w_k T**2 KL(p_k || p_s)) gives
KD directly; the rest of the convention is unchanged. Examples without a gold label (label < 0,
e.g. a transfer set) contribute to KD only. Both terms are averaged over the whole batch: CE is the sum
over the batch's labelled examples divided by the batch size B, so one labelled example's CE weighs
(1 - alpha) / B whatever number of transfer rows shares its batch -- the same weight it has in a run
without a transfer set. (Averaging CE over the labelled rows only would let length-grouped batches give a
lone labelled example up to B times its weight, and make `use_transfer` change the effective alpha.)
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

# bumped when what this module computes changes meaning; student/teacher stage keys record it (stages.algorithm)
# 2: CE summed over the labelled rows / batch size (was: averaged over the labelled rows)
VERSION = 2


def kd_term(student_logits: torch.Tensor, target_probs: torch.Tensor, temperature: float) -> torch.Tensor:
    """T**2 KL(target || softmax(student / T)), averaged over the batch."""
    log_p_s = F.log_softmax(student_logits / temperature, dim=-1)
    return F.kl_div(log_p_s, target_probs, reduction="batchmean") * temperature**2


def cross_entropy(student_logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """CE summed over the labelled examples (label >= 0) and divided by the batch size (0 when none is
    labelled): the mean CE when every example is labelled."""
    labelled = labels >= 0
    if bool(labelled.all()):
        return F.cross_entropy(student_logits, labels)
    if not bool(labelled.any()):
        return student_logits.sum() * 0.0
    return F.cross_entropy(student_logits[labelled], labels[labelled], reduction="sum") / len(labels)


def kd_loss(student_logits: torch.Tensor, target_probs: torch.Tensor | None, labels: torch.Tensor,
            temperature: float, alpha: float, kd: torch.Tensor | None = None
            ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Return (loss, {"kd": ..., "ce": ...}) for student logits [B, C], target probs [B, C] (or the KD
    term `kd` itself), labels [B]."""
    ce = cross_entropy(student_logits, labels)
    if alpha == 0 or (target_probs is None and kd is None):
        return ce, {"ce": ce.detach()}
    if kd is None:
        kd = kd_term(student_logits, target_probs, temperature)
    loss = alpha * kd + (1 - alpha) * ce
    return loss, {"kd": kd.detach(), "ce": ce.detach()}
