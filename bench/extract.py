"""Logit extraction throughput: mtkd.train.predict (length-sorted batches of 128, dynamic padding,
inference_mode) vs a naive loop (batches of 32 in dataset order, every batch padded to 128,
no_grad). Goal: project / naive >= 3 on SST-2 sentences (or the demo data where SST-2 is absent).

Same model (packaged MiniLM-L6, mean pooling, untrained head: timing does not depend on it), same
N sentences tokenized once (max_length 128) for both sides; tokenization is timed once and
reported apart (it is the same on both sides). After a warm-up, the sides alternate for --reps
repetitions (order swapped every repetition); throughput = N / median time. The two sides'
logits are compared (they should agree up to float rounding).

    python bench/extract.py [--n 2000] [--reps 3] [--quick]

Last line: ratio=<project sentences/s / naive sentences/s>."""
from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch

from _common import GLUE_DIR, load_sentences, machine_info, rotated


@torch.no_grad()
def naive_extract(model, data, batch_size: int = 32, pad_to: int = 128) -> np.ndarray:
    model.eval()
    out = np.zeros((len(data), model.config.num_labels), dtype=np.float32)
    for i in range(0, len(data), batch_size):
        idx = np.arange(i, min(i + batch_size, len(data)))
        out[idx] = model(**data.batch(idx, pad_to=pad_to)).logits.float().numpy()
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--glue-dir", default=str(GLUE_DIR))
    ap.add_argument("--n", type=int, default=2000, help="sentences")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--layers", type=int, default=None, help="keep the first k layers (default: all 6)")
    ap.add_argument("--quick", action="store_true", help="smoke test: 64 sentences, 1 layer, 1 repetition")
    args = ap.parse_args()
    if args.quick:
        args.n, args.reps, args.layers = 64, 1, 1

    from mtkd.models import encode, load_classifier, load_tokenizer
    from mtkd.train import predict, sorted_batches
    print(machine_info())
    texts, _, C, what = load_sentences(args.n, args.glue_dir)
    tok = load_tokenizer("minilm")
    t0 = time.perf_counter()
    data = encode(tok, texts, 128)
    tok_s = time.perf_counter() - t0
    model = load_classifier("minilm", C, args.layers, seed=0).eval()
    lengths = data.lengths
    project_tokens = sum(len(b) * lengths[b].max() for b in sorted_batches(lengths, 128))
    print(f"data: {what}; model minilm layers={args.layers or 6}; mean length {lengths.mean():.1f}, "
          f"max {lengths.max()} tokens")
    print(f"tokens through the model: project {project_tokens}, naive {len(data) * 128} "
          f"(x{len(data) * 128 / project_tokens:.2f}); tokenization {tok_s * 1e3:.0f} ms (both sides)")

    warm = data.subset(range(64))
    predict(model, warm, 128)
    naive_extract(model, warm)
    sides = {"project": lambda: predict(model, data, 128), "naive": lambda: naive_extract(model, data)}
    times, outs = {k: [] for k in sides}, {}
    for r in range(args.reps):
        for name in rotated(list(sides), r):
            t0 = time.perf_counter()
            outs[name] = sides[name]()
            times[name].append(time.perf_counter() - t0)

    tput = {k: len(data) / statistics.median(v) for k, v in times.items()}
    for k, v in times.items():
        print(f"  {k:8s} {tput[k]:8.1f} sentences/s   (seconds per pass: {', '.join(f'{t:.2f}' for t in v)})")
    diff = float(np.abs(outs["project"] - outs["naive"]).max())
    print(f"max |logit difference| project vs naive: {diff:.2e}")
    incl = (statistics.median(times["naive"]) + tok_s) / (statistics.median(times["project"]) + tok_s)
    print(f"project/naive including tokenization on both sides: {incl:.2f}")
    print(f"ratio={tput['project'] / tput['naive']:.3f}")


if __name__ == "__main__":
    main()
