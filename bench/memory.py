"""Peak memory and step time of distillation vs the number K of cached teachers (K = 1, 3, 8).
Expected: peak RSS grows with K by the logit arrays (K * N * C * 4 bytes) and nothing else.

Each K runs in a fresh subprocess (peaks do not mix): the real mtkd.train.train on the same N
SST-2 sentences (or the demo data) with the 2-layer MiniLM student, --steps optimizer steps, the
target of recipe.cached_teachers's cached mode (synthetic logits [K, N, C], np.stack-ed as
Run.teacher_logits does: lookup cost and memory do not depend on values), `average` fusion,
kd_loss(alpha=0.7, T=6). Reported: peak RSS of the whole process (ru_maxrss), peak RSS during
train() (VmHWM reset before it; "steps" = before train's end-of-epoch checkpoint, "train" = with
it), median step time, and the Python memory of the tokenized data (tracemalloc).
The parent also times the target alone (lookup + fuse + KD loss, forward and backward) for
K in {1, 3, 8} and C in {2, 3} at N = 392,702 (MNLI train), for the scaling section.

    python bench/memory.py [--steps 200] [--quick]

Last line: ratio=<peak RSS (K=8) / peak RSS (K=1)>."""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

from _common import GLUE_DIR, load_sentences, machine_info


def rss_mb(field: str = "VmRSS") -> float:
    for line in open("/proc/self/status"):
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


def child(args):
    import resource
    import tempfile
    import tracemalloc
    from mtkd.fusion import FusionContext, average
    from mtkd.losses import kd_loss
    from mtkd.models import encode, load_classifier, load_tokenizer
    from mtkd.train import TrainSpec, train
    texts, labels, C, _ = load_sentences(args.n, args.glue_dir)
    tok = load_tokenizer("minilm")
    tracemalloc.start()
    data = encode(tok, texts, 64)
    encoded_mb = tracemalloc.get_traced_memory()[0] / 2**20
    tracemalloc.stop()
    model = load_classifier("minilm", C, args.layers, seed=0)
    rng = np.random.default_rng(0)
    cached = torch.from_numpy(np.stack([rng.standard_normal((len(texts), C), dtype=np.float32) for _ in range(args.k)]))
    labels_t, ctx, stamps, hwm = torch.as_tensor(labels), FusionContext(6.0), [], [float("nan")]

    def loss_fn(logits, feats, idx):
        stamps.append(time.perf_counter())
        hwm[0] = rss_mb("VmHWM")                           # peak so far, before the final checkpoint
        return kd_loss(logits, average(cached[:, idx], ctx), labels_t[idx], 6.0, 0.7)
    try:
        open("/proc/self/clear_refs", "w").write("5")      # reset VmHWM: the peak of training alone
    except OSError:
        pass
    before = rss_mb()
    per_epoch = -(-len(texts) // 32)
    with tempfile.TemporaryDirectory() as work:
        train(model, data, TrainSpec(epochs=args.steps / per_epoch, lr=1e-4, batch_size=32), loss_fn, Path(work))
    print(json.dumps({"k": args.k, "logits_mb": cached.numel() * 4 / 2**20, "encoded_mb": encoded_mb,
                      "tokens": int(data.lengths.sum()), "rss_before_mb": before, "peak_steps_mb": hwm[0],
                      "peak_train_mb": rss_mb("VmHWM"),
                      "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                      "step_ms": 1e3 * float(np.median(np.diff(stamps))) if len(stamps) > 1 else float("nan")}))


def target_cost(ks, cs, n: int, reps: int):
    """Median ms of lookup + average fusion + KD loss forward/backward for one batch of 32."""
    from mtkd.fusion import FusionContext, average
    from mtkd.losses import kd_loss
    rng = np.random.default_rng(0)
    for c in cs:
        row = []
        for k in ks:
            cached = torch.from_numpy(rng.standard_normal((k, n, c), dtype=np.float32))
            ts = []
            for _ in range(reps):
                idx, s = torch.from_numpy(rng.integers(0, n, 32)), torch.randn(32, c, requires_grad=True)
                t0 = time.perf_counter()
                kd_loss(s, average(cached[:, idx], FusionContext(6.0)), idx % c, 6.0, 0.7)[0].backward()
                ts.append(time.perf_counter() - t0)
            row.append(f"K={k}: {1e3 * np.median(ts):.3f} ms ({cached.numel() * 4 / 2**20:.1f} MB)")
        print(f"  C={c}, N={n}: " + ", ".join(row))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--glue-dir", default=str(GLUE_DIR))
    ap.add_argument("--ks", default="1,3,8")
    ap.add_argument("--n", type=int, default=6400, help="training sentences")
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--quick", action="store_true", help="smoke test: 96 sentences, 3 steps, 1 layer")
    ap.add_argument("--child", dest="k", type=int, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.quick:
        args.n, args.steps, args.layers = 96, 3, 1
    if args.k is not None:
        return child(args)

    ks = [int(k) for k in args.ks.split(",")]
    print(machine_info())
    print(f"data: {args.n} training sentences; student minilm layers={args.layers}; {args.steps} steps per K")
    print("target cost alone (lookup + fuse + KD loss, fwd+bwd, batch 32):")
    target_cost(ks, (2, 3), 2000 if args.quick else 392_702, 20 if args.quick else 300)
    rows = []
    for k in ks:
        cmd = [sys.executable, __file__, "--child", str(k), "--n", str(args.n), "--steps", str(args.steps),
               "--layers", str(args.layers), "--glue-dir", args.glue_dir]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            sys.exit(f"K={k} failed:\n{proc.stderr[-2000:]}")
        rows.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    r0 = rows[0]
    print(f"tokenized data: {r0['encoded_mb']:.2f} MB for {args.n} examples / {r0['tokens']} tokens "
          f"({r0['encoded_mb'] * 2**20 / r0['tokens']:.1f} bytes per token; int32 would be 4)")
    print(f"{'K':>3} {'logits MB':>10} {'RSS before':>11} {'peak steps':>11} {'peak train':>11} {'peak':>8} "
          f"{'growth-logits':>14} {'step ms':>8}   (MB; growth-logits: peak train vs K={r0['k']}, minus logit growth)")
    for r in rows:
        extra = (r["peak_train_mb"] - r0["peak_train_mb"]) - (r["logits_mb"] - r0["logits_mb"])
        print(f"{r['k']:>3} {r['logits_mb']:>10.3f} {r['rss_before_mb']:>11.1f} {r['peak_steps_mb']:>11.1f} "
              f"{r['peak_train_mb']:>11.1f} {r['peak_mb']:>8.1f} {extra:>14.1f} {r['step_ms']:>8.1f}")
    print(f"ratio={rows[-1]['peak_mb'] / r0['peak_mb']:.3f}")


if __name__ == "__main__":
    main()
