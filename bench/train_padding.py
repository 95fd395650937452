"""Student training throughput: mtkd's batching (length-grouped epoch order, dynamic padding) vs
padding every batch to 128 in plain shuffled order. Goal: project / naive >= 2.

Two copies of the same student (packaged MiniLM, 2 layers, mean pooling), each trained with the
step of mtkd.train.train (bench/_common.Stepper, plain CE: the cached KD loss costs the same, see
kd_overhead.py) for one epoch over the same N sentences (tokenized once, max_length 128), batch 32:
  project  epoch_batches(group_by_length=True), each batch padded to its longest sentence
  naive    epoch_batches(group_by_length=False), each batch padded to 128
After a warm-up, the sides alternate in chunks of --chunk steps (order swapped every chunk);
throughput = N / total step time.

    python bench/train_padding.py [--n 3200] [--quick]

Last line: ratio=<project examples/s / naive examples/s>."""
from __future__ import annotations

import argparse
import copy
import time

import numpy as np
import torch

from _common import GLUE_DIR, Stepper, load_sentences, machine_info, rotated, summary, take_batches


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--glue-dir", default=str(GLUE_DIR))
    ap.add_argument("--n", type=int, default=3200, help="sentences (one epoch per side; a multiple of 32)")
    ap.add_argument("--chunk", type=int, default=10, help="steps per side before switching")
    ap.add_argument("--warmup", type=int, default=3, help="warm-up steps per side")
    ap.add_argument("--quick", action="store_true", help="smoke test: 96 sentences, 1 layer")
    args = ap.parse_args()
    layers = 1 if args.quick else 2
    if args.quick:
        args.n, args.chunk, args.warmup = 96, 1, 1

    from mtkd.losses import kd_loss
    from mtkd.models import encode, load_classifier, load_tokenizer
    print(machine_info())
    texts, labels, C, what = load_sentences(args.n, args.glue_dir)
    data = encode(load_tokenizer("minilm"), texts, 128)
    labels = torch.as_tensor(labels)
    lengths = data.lengths

    def loss_fn(logits, feats, idx):
        return kd_loss(logits, None, labels[idx], 1.0, 0.0)

    student = load_classifier("minilm", C, layers, seed=0)
    sides = {  # name: (stepper, batches of the measured epoch, pad_to)
        "project": (Stepper(copy.deepcopy(student), data, loss_fn),
                    take_batches(lengths, 32, len(lengths) // 32, group_by_length=True), None),
        "naive": (Stepper(copy.deepcopy(student), data, loss_fn),
                  take_batches(lengths, 32, len(lengths) // 32, group_by_length=False), 128),
    }
    print(f"data: {what}; student minilm layers={layers}; batch 32, {len(lengths) // 32} steps per side")
    for name, (step, batches, pad_to) in sides.items():
        widths = [pad_to or lengths[b].max() for b in batches]
        print(f"  {name:8s} tokens per epoch {32 * sum(widths)}, mean batch width {np.mean(widths):.1f}")
        warm = take_batches(lengths, 32, args.warmup, group_by_length=pad_to is None, seed=1)
        for b in warm:
            step(b, pad_to)

    times = {name: [] for name in sides}
    t0 = time.perf_counter()
    for c, start in enumerate(range(0, len(lengths) // 32, args.chunk)):
        for name in rotated(list(sides), c):
            step, batches, pad_to = sides[name]
            times[name] += [step(b, pad_to) for b in batches[start:start + args.chunk]]
    tput = {name: len(lengths) // 32 * 32 / sum(ts) for name, ts in times.items()}
    for name, ts in times.items():
        print(f"  {name:8s} {tput[name]:7.1f} examples/s   step {summary(ts)}")
    print(f"wall {time.perf_counter() - t0:.1f} s for both sides")
    print(f"ratio={tput['project'] / tput['naive']:.3f}")


if __name__ == "__main__":
    main()
