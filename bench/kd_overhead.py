"""Step time of distillation with cached teacher logits vs plain fine-tuning (goal: cached / plain
<= 1.05), and online teachers vs cached logits (goal: online / cached >= 2.5 with three MiniLM-L6
teachers and a MiniLM-L2 student).

Every side trains its own copy of the same student (packaged MiniLM, 2 layers, mean pooling) on the
same batches (mtkd's length-grouped epoch order on SST-2, batch 32, max_length 64), one optimizer
step per measured step, with the step of mtkd.train.train (bench/_common.Stepper). Sides:
  plain   CE only: kd_loss(alpha=0), as the no-KD baseline student
  cached  K=3 teacher logits [K, N, C] looked up by example index as recipe.cached_teachers does,
          fused with `average` (and `learned_gating`, the gate trained as an extra module),
          kd_loss(alpha=0.7, T=6). The logits are random: the lookup cost does not depend on values.
  online  K=3 MiniLM-L6 teachers (untrained heads) run every step through mtkd.train.predict
          (inference_mode), as recipe.online_teachers does, on the batch tokenized once
          beforehand (--online-tokenize re-tokenizes every step, as HFTeacher.logits does).
After a warm-up, the sides alternate in rounds (order rotated each round); medians per side.

    python bench/kd_overhead.py [--rounds 120] [--quick]

Last line: ratio=<cached (average) / plain median step time>."""
from __future__ import annotations

import argparse
import copy
import statistics

import numpy as np
import torch

from _common import GLUE_DIR, Stepper, load_sentences, machine_info, rotated, summary, take_batches


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--glue-dir", default=str(GLUE_DIR))
    ap.add_argument("--n", type=int, default=8000, help="training sentences")
    ap.add_argument("--rounds", type=int, default=120)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--teachers", type=int, default=3)
    ap.add_argument("--online-tokenize", action="store_true", help="online teachers re-tokenize every step")
    ap.add_argument("--quick", action="store_true", help="smoke test: tiny sizes, 1-layer models")
    args = ap.parse_args()
    s_layers, t_layers = (1, 1) if args.quick else (2, None)
    if args.quick:
        args.n, args.rounds, args.warmup = 200, 3, 1

    from mtkd.fusion import LearnedGating, average
    from mtkd.losses import kd_loss
    from mtkd.recipe import Fitted, Recipe
    from mtkd.models import encode, load_classifier, load_tokenizer
    from mtkd.train import predict
    print(machine_info())
    texts, labels, C, what = load_sentences(args.n, args.glue_dir)
    tok = load_tokenizer("minilm")
    data = encode(tok, texts, 64)
    labels = torch.as_tensor(labels)
    K, T, alpha = args.teachers, 6.0, 0.7
    scores = torch.ones(K)
    print(f"data: {what}; student minilm layers={s_layers}; {K} teachers minilm layers={t_layers or 6}; batch 32")

    cached = torch.from_numpy(np.random.default_rng(0).standard_normal((K, len(texts), C), dtype=np.float32))
    cached_source = lambda idx: cached[:, idx]          # as recipe.cached_teachers
    teachers = [load_classifier("minilm", C, t_layers, seed=k).eval() for k in range(K)]

    def online_source(idx):                           # as recipe.online_teachers
        ii = idx.tolist()
        if args.online_tokenize:
            sub = encode(tok, [texts[i] for i in ii], 64)
        else:
            sub = data.subset(ii)
        return torch.stack([torch.from_numpy(predict(t, sub, 128)) for t in teachers])

    def plain_loss(logits, feats, idx):
        return kd_loss(logits, None, labels[idx], 1.0, 0.0)

    def kd(source, fuse):                             # the pipeline's distillation step (recipe.Recipe)
        return Recipe(labels, source, fuse, temperature=T, alpha=alpha, fitted=Fitted(scores, torch.ones(K)))

    student = load_classifier("minilm", C, s_layers, seed=0)
    gate = LearnedGating(K, student.config.hidden_size)
    sides = {
        "plain CE": Stepper(copy.deepcopy(student), data, plain_loss),
        f"cached KD, average, K={K}": Stepper(copy.deepcopy(student), data, kd(cached_source, average)),
        f"cached KD, learned_gating, K={K}": Stepper(copy.deepcopy(student), data, kd(cached_source, gate), gate, True),
        f"online KD, average, K={K}": Stepper(copy.deepcopy(student), data, kd(online_source, average)),
    }
    batches = take_batches(data.lengths, 32, args.warmup + args.rounds, group_by_length=True)
    times = {name: [] for name in sides}
    for r, b in enumerate(batches):
        for name in rotated(list(sides), r):
            t = sides[name](b)
            if r >= args.warmup:
                times[name].append(t)

    print(f"{args.rounds} rounds after {args.warmup} warm-up rounds; mean batch width "
          f"{np.mean([data.lengths[b].max() for b in batches]):.1f} tokens")
    for name, ts in times.items():
        print(f"  {name:34s} {summary(ts)}")
    med = {name: statistics.median(ts) for name, ts in times.items()}
    plain, avg, gated, online = (med[n] for n in sides)
    paired = statistics.median(np.array(times[list(sides)[1]]) / np.array(times["plain CE"]))
    print(f"cached/plain (average)        = {avg / plain:.3f}   (median of per-batch ratios {paired:.3f}; goal <= 1.05)")
    print(f"cached/plain (learned_gating) = {gated / plain:.3f}")
    print(f"online/cached (average)       = {online / avg:.3f}   (goal >= 2.5)")
    print(f"ratio={avg / plain:.3f}")


if __name__ == "__main__":
    main()
