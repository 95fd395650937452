"""Student training step in bf16 mixed precision vs float32, on CPU: what `mixed_precision: bf16` buys.

Two copies of the same student (packaged MiniLM, 2 layers), each trained with the step of
mtkd.train.train (bench/_common.Stepper: Accelerate's autocast, fused AdamW, clipping; plain CE), one in
the process's float32 and one under `mixed_precision: bf16` (the precision is switched before every chunk
of steps, so each side runs in its own), over the same length-grouped batches of N SST-2 sentences and N
QQP question pairs (max_length 128, batch 32). After a warm-up the sides alternate in chunks of --chunk
steps (order swapped every chunk); throughput = N / total step time.

bf16 pays on CPUs with native bf16 arithmetic (AVX512-BF16 or AMX: the script prints which the CPU has);
on others PyTorch emulates it and it is slower. What it does to the study's results: docs/benchmarks.md.

    python bench/precision.py [--n 3200] [--quick]

Last line: ratio=<bf16 examples/s / float32 examples/s>, over both tasks' steps together."""
from __future__ import annotations

import argparse
import copy
import math
import time
from pathlib import Path

import torch

from _common import GLUE_DIR, Stepper, load_sentences, machine_info, rotated, summary, take_batches


def cpu_bf16() -> str:
    """The CPU's native bf16 instructions, from /proc/cpuinfo ('none found' where it has none or says nothing)."""
    try:
        flags = next(l.split(":", 1)[1].split() for l in open("/proc/cpuinfo") if l.startswith("flags"))
    except (OSError, StopIteration):
        return "unknown (no /proc/cpuinfo)"
    found = [f for f in ("avx512_bf16", "amx_bf16", "amx_tile") if f in flags]
    return ", ".join(found) or "none found (bf16 is emulated: expect a ratio below 1)"


def load_pairs(n: int, glue_dir: str | Path):
    """(pairs, labels, num_labels, description): n QQP training pairs, or None when QQP is absent."""
    from mtkd.config import TaskConfig
    from mtkd.tasks import load_task
    if not Path(glue_dir, "QQP").is_dir():
        return None
    task = load_task(TaskConfig(name="qqp", glue_dir=str(glue_dir), max_train_examples=math.ceil(n / 0.9) + 2))
    train = task.splits["train"]
    return train.texts[:n], train.labels[:n], task.num_labels, f"{n} QQP train pairs from {glue_dir}"


def check_dtypes(steppers: dict, precision: dict, batch: dict) -> None:
    """Each side's forward, in its Trainer's autocast, gives logits of its dtype (bf16 is really in force)."""
    from mtkd import runtime
    want = {"no": torch.float32, "bf16": torch.bfloat16}
    for s, step in steppers.items():
        runtime.set_precision(precision[s])
        with torch.no_grad(), step.trainer.accelerator.autocast():
            got = step.trainer.model(**batch).logits.dtype
        if got != want[precision[s]]:
            raise SystemExit(f"error: the {s} side computed in {got}, not {want[precision[s]]}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--glue-dir", default=str(GLUE_DIR))
    ap.add_argument("--n", type=int, default=3200, help="examples per task (one epoch per side; a multiple of 32)")
    ap.add_argument("--chunk", type=int, default=20, help="steps per side before switching")
    ap.add_argument("--warmup", type=int, default=3, help="warm-up steps per side")
    ap.add_argument("--quick", action="store_true", help="smoke test: 64 examples, 1 layer")
    args = ap.parse_args()
    layers = 1 if args.quick else 2
    if args.quick:
        args.n, args.chunk, args.warmup = 64, 1, 1
    if args.n < 32 or args.chunk < 1 or args.warmup < 0:
        ap.error("--n must be >= 32 (one batch), --chunk >= 1, --warmup >= 0")

    from mtkd import runtime
    from mtkd.losses import kd_loss
    from mtkd.models import encode, load_classifier, load_tokenizer
    print(machine_info())
    print(f"CPU bf16 instructions: {cpu_bf16()}")
    tok = load_tokenizer("minilm")
    tasks = [load_sentences(args.n, args.glue_dir)]
    pairs = load_pairs(args.n, args.glue_dir)
    if pairs is not None:
        tasks.append(pairs)
    sides = ("float32", "bf16")
    precision = {"float32": "no", "bf16": "bf16"}
    times = {s: [] for s in sides}
    t0 = time.perf_counter()
    for texts, labels, C, what in tasks:
        data = encode(tok, texts, 128)
        y = torch.as_tensor(labels)

        def loss_fn(logits, feats, idx, y=y):
            return kd_loss(logits, None, y[idx], 1.0, 0.0)

        student = load_classifier("minilm", C, layers, seed=0)
        steppers = {}
        for s in sides:   # each Trainer's Accelerator takes the precision in force when it is made
            runtime.set_precision(precision[s])
            steppers[s] = Stepper(copy.deepcopy(student), data, loss_fn)
        batches = take_batches(data.lengths, 32, len(data) // 32, group_by_length=True)
        check_dtypes(steppers, precision, data.batch(batches[0]))
        warm = take_batches(data.lengths, 32, args.warmup, group_by_length=True, seed=1)
        print(f"data: {what}; student minilm layers={layers}; batch 32, {len(batches)} steps per side")
        mine = {s: [] for s in sides}
        for c, start in enumerate(range(0, len(batches), args.chunk)):
            for s in rotated(list(sides), c):
                runtime.set_precision(precision[s])
                if c == 0:
                    for b in warm:
                        steppers[s](b)
                mine[s] += [steppers[s](b) for b in batches[start:start + args.chunk]]
        for s in sides:
            print(f"  {s:8s} {32 * len(batches) / sum(mine[s]):7.1f} examples/s   step {summary(mine[s])}")
            times[s] += mine[s]
        print(f"  ratio {sum(mine['float32']) / sum(mine['bf16']):.3f} (bf16 / float32 throughput)")
    runtime.set_precision("no")
    print(f"wall {time.perf_counter() - t0:.1f} s for both sides")
    print(f"ratio={sum(times['float32']) / sum(times['bf16']):.3f}")


if __name__ == "__main__":
    main()
