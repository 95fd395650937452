"""The one KD loss convention of mtkd, written once:

    loss = alpha * T**2 * KL(p_t || p_s) + (1 - alpha) * CE(student, y)
    p_t = fused teacher distribution at temperature T (see fusion.py), p_s = softmax(student / T)

`alpha` weights the KD term; alpha = 0 is plain fine-tuning. The T**2 factor keeps the soft
term's gradient scale independent of T (Hinton et al., 2015). KL is averaged over the batch.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


def kd_loss(student_logits: torch.Tensor, target_probs: torch.Tensor | None, labels: torch.Tensor,
            temperature: float, alpha: float) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Return (loss, {"kd": ..., "ce": ...}) for student logits [B, C], target probs [B, C], labels [B]."""
    ce = F.cross_entropy(student_logits, labels)
    if alpha == 0 or target_probs is None:
        return ce, {"ce": ce.detach()}
    log_p_s = F.log_softmax(student_logits / temperature, dim=-1)
    kd = F.kl_div(log_p_s, target_probs, reduction="batchmean") * temperature**2
    loss = alpha * kd + (1 - alpha) * ce
    return loss, {"kd": kd.detach(), "ce": ce.detach()}
