"""Sparse students: magnitude pruning of the encoder's linear layers while the student trains,
through `torch.nn.utils.prune` (`student.sparsity`, `student.sparsity_schedule`, ...).

What is pruned: every `nn.Linear` of the student's encoder (the transformer's base model) except
its pooler. Embeddings, pooler and classification head stay dense (in the 2-layer MiniLM student
the word embeddings are 3/4 of the parameters; see `report`).

- Unstructured (default): each weight matrix keeps its largest |w|. Per layer, not global: every
  matrix reaches the same sparsity, as in Zhu & Gupta (2017); a global threshold would empty the
  layers whose weights happen to be small.
- Structured (`sparsity_structured: true`): whole FFN neurons. A neuron's importance is the L2 norm
  of its row of the intermediate weight (`prune.LnStructured`); its row there and its column in the
  output projection are masked together, so it contributes exactly nothing and the layer can be
  sliced to a smaller dense one (`compact_ffn`). Attention layers are not pruned in this mode, and
  the target is the share of FFN neurons removed (about 2/3 of the encoder's linear weights in BERT).

The masks are `prune` buffers (`weight_mask`, next to `weight_orig`), installed before training,
so they are part of the model's state dict: checkpoints hold them and a resumed run continues with
the same masks. They are updated in place after optimizer steps by `Pruner.on_step` (the training
loop's step hook); once pruned, a weight stays pruned. `Pruner.finish` folds them into the weights
(`prune.remove`): the saved student is an ordinary dense model whose pruned weights are zeros.
"""
from __future__ import annotations

import math
import zlib
from pathlib import Path

import torch
from torch import nn
from torch.nn.utils import prune

from .errors import MtkdError
MASK_UPDATES = 100          # cubic: masks are updated at most this often over the schedule window


def target_at(step: int, total: int, sparsity: float, schedule: str, start: float, end: float) -> float:
    """Sparsity wanted after `step` of `total` optimizer steps.

    constant: `sparsity` from the first step on (one-shot pruning of the initial weights, then training
    with fixed masks). cubic (Zhu & Gupta 2017, eq. 1 with s_i = 0): 0 before `start`, then
    s_f (1 - (1 - p)^3) with p the progress through [start, end] (fractions of training), s_f from
    `end` on; the step is rounded down to a multiple of total / MASK_UPDATES, so masks change at
    most MASK_UPDATES times."""
    if schedule == "constant":
        return sparsity
    t0, t1 = start * total, end * total
    if step >= t1:
        return sparsity
    every = max(1, total // MASK_UPDATES)
    step = step - step % every
    p = min(1.0, max(0.0, (step - t0) / (t1 - t0)))
    return sparsity * (1.0 - (1.0 - p) ** 3)


def encoder_linears(model) -> list[tuple[str, nn.Linear]]:
    """(name, module) of every nn.Linear of the encoder, without pooler and embeddings."""
    base = getattr(model, "hf", model).base_model   # MeanPooled wraps the HF model
    return [(n, m) for n, m in base.named_modules() if isinstance(m, nn.Linear)
            and not {"pooler", "embeddings"} & set(n.split("."))]


def ffn_pairs(model) -> list[tuple[nn.Linear, nn.Linear]]:
    """(intermediate, output) projections of every BERT-style layer (`.intermediate.dense`, `.output.dense`)."""
    base = getattr(model, "hf", model).base_model
    pairs = []
    for _, m in base.named_modules():
        inter, out = getattr(m, "intermediate", None), getattr(m, "output", None)
        if isinstance(getattr(inter, "dense", None), nn.Linear) and isinstance(getattr(out, "dense", None), nn.Linear):
            pairs.append((inter.dense, out.dense))
    return pairs


class Pruner:
    """Installs the masks on `model` now (at the schedule's step-0 sparsity) and moves them towards
    `sparsity` through `on_step(step, total)`."""

    def __init__(self, model, sparsity: float, schedule: str = "cubic", start: float = 0.0, end: float = 0.75,
                 structured: bool = False):
        self.model, self.sparsity, self.schedule, self.start, self.end = model, sparsity, schedule, start, end
        self.structured = structured
        if structured:
            self.pairs = ffn_pairs(model)
            if not self.pairs:
                raise MtkdError(f"student.sparsity_structured needs a BERT-style encoder (layers with "
                                f"intermediate.dense / output.dense); {type(getattr(model, 'hf', model)).__name__} has none")
            self.modules = [m for pair in self.pairs for m in pair]
        else:
            self.modules = [m for _, m in encoder_linears(model)]
            if not self.modules:
                raise MtkdError(f"student.sparsity: {type(getattr(model, 'hf', model)).__name__} has no linear "
                                f"encoder layer to prune")
        for m in self.modules:
            prune.identity(m, "weight")       # weight -> weight_orig * weight_mask (all ones for now)
        self._apply(target_at(0, 1, sparsity, schedule, start, end))

    def on_step(self, step: int, total: int) -> None:
        """The training loop's hook, after optimizer step `step` (1-based) of `total`."""
        self._apply(target_at(step, total, self.sparsity, self.schedule, self.start, self.end))

    @torch.no_grad()
    def _apply(self, s: float) -> None:
        if s <= 0:
            return
        if self.structured:
            for inter, out in self.pairs:
                n = inter.weight_mask.shape[0]
                if _pruned_rows(inter) >= round(s * n):
                    continue
                rows = prune.LnStructured(round(s * n), n=2, dim=0).compute_mask(
                    inter.weight_orig * inter.weight_mask, torch.ones_like(inter.weight_mask))[:, 0]
                rows = rows * inter.weight_mask[:, 0]          # pruned neurons stay pruned
                inter.weight_mask.copy_(rows[:, None].expand_as(inter.weight_mask))
                out.weight_mask.copy_(rows[None, :].expand_as(out.weight_mask))
            return
        for m in self.modules:
            k = round(s * m.weight_mask.numel())
            if int((m.weight_mask == 0).sum()) >= k:
                continue
            mask = prune.L1Unstructured(k).compute_mask(m.weight_orig * m.weight_mask, torch.ones_like(m.weight_mask))
            m.weight_mask.copy_(mask * m.weight_mask)

    @torch.no_grad()
    def finish(self) -> dict:
        """Fold the masks into the weights (prune.remove) and return what was achieved (`report`)."""
        for m in self.modules:
            prune.remove(m, "weight")
        return {"target": self.sparsity, "schedule": self.schedule, "structured": self.structured,
                **report(self.model, self.structured)}


def _pruned_rows(inter: nn.Linear) -> int:
    return int((inter.weight_mask[:, 0] == 0).sum())


def from_config(model, st) -> Pruner | None:
    """The pruner a StudentConfig asks for, or None for a dense student."""
    if not st.sparsity:
        return None
    return Pruner(model, st.sparsity, st.sparsity_schedule, st.sparsity_start, st.sparsity_end, st.sparsity_structured)


@torch.no_grad()
def report(model, structured: bool = False) -> dict:
    """Zeros of the (folded) weights: `sparsity` over the matrices the mode prunes, `encoder_sparsity`
    over every encoder linear weight, and the nonzero share of all the model's parameters."""
    pruned = [m.weight for pair in ffn_pairs(model) for m in pair] if structured \
        else [m.weight for _, m in encoder_linears(model)]
    encoder = [m.weight for _, m in encoder_linears(model)]
    zeros = lambda ws: sum(int((w == 0).sum()) for w in ws)
    numel = lambda ws: sum(w.numel() for w in ws)
    params = list(getattr(model, "hf", model).parameters())
    out = {"sparsity": zeros(pruned) / numel(pruned), "encoder_sparsity": zeros(encoder) / numel(encoder),
           "pruned_weights": numel(pruned), "model_params": numel(params),
           "model_nonzero_params": numel(params) - zeros(params)}
    if structured:
        out["ffn_neurons_kept"] = [int((inter.weight != 0).any(1).sum()) for inter, _ in ffn_pairs(model)]
    return out


@torch.no_grad()
def compact_ffn(model):
    """Slice every FFN of a structured-pruned (folded) model to its kept neurons, in place: the same
    function with smaller dense matrices. Every layer must keep the same number of neurons (the
    schedule prunes each layer to the same count), so `config.intermediate_size` stays one number and
    the result saves and reloads as an ordinary Hugging Face model."""
    pairs = ffn_pairs(model)
    keep = [((inter.weight != 0).any(1) | (out.weight != 0).any(0)).nonzero().squeeze(1) for inter, out in pairs]
    sizes = {len(k) for k in keep}
    if len(sizes) != 1:
        raise MtkdError(f"compact_ffn: layers keep different numbers of FFN neurons {sorted(sizes)}")
    for (inter, out), idx in zip(pairs, keep):
        inter.weight = nn.Parameter(inter.weight[idx].clone())
        inter.bias = nn.Parameter(inter.bias[idx].clone())
        inter.out_features = len(idx)
        out.weight = nn.Parameter(out.weight[:, idx].clone())
        out.in_features = len(idx)
    getattr(model, "hf", model).config.intermediate_size = sizes.pop()
    return model


def disk_size(folder: Path) -> dict:
    """Bytes of the saved model's safetensors file(s), as stored and gzip-compressed. safetensors
    stores tensors dense, zeros included; the gzip size is what the zeros cost once compressed."""
    files = sorted(Path(folder).glob("*.safetensors"))
    raw = sum(f.stat().st_size for f in files)
    packed = 0
    for f in files:
        z = zlib.compressobj(6, zlib.DEFLATED, 31)   # wbits 31: the gzip format
        with open(f, "rb") as src:
            while chunk := src.read(1 << 20):
                packed += len(z.compress(chunk))
        packed += len(z.flush())
    return {"safetensors_bytes": raw, "gzip_bytes": packed, "gzip_ratio": packed / raw if raw else math.nan}
