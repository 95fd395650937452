"""Shared helpers of the micro-benchmarks in bench/: machine info, SST-2 sentences (or the demo
task), and `Stepper`, one optimizer step of mtkd.train.train's inner loop (keep it in sync)."""
from __future__ import annotations

import math
import os
import platform
import statistics
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
GLUE_DIR = ROOT.parent / "shared" / "data" / "glue"


def machine_info() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        cpu = next(l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name"))
    except (OSError, StopIteration):
        pass
    import transformers
    return (f"machine: {cpu}, {os.cpu_count()} cpus, torch {torch.__version__} ({torch.get_num_threads()} threads), "
            f"transformers {transformers.__version__}, python {platform.python_version()}")


def load_sentences(n: int, glue_dir: str | Path = GLUE_DIR):
    """(texts, labels, num_labels, description): n SST-2 training sentences (a seeded random subset,
    via the task loader), or n sentences of the built-in demo task when SST-2 is absent."""
    from mtkd.config import TaskConfig
    from mtkd.tasks import load_task
    want = math.ceil(n / 0.9) + 2          # the loader carves 10 % validation out of train
    if Path(glue_dir, "SST-2").is_dir():
        task = load_task(TaskConfig(name="sst2", glue_dir=str(glue_dir), max_train_examples=want))
        what = f"SST-2 train sentences from {glue_dir}"
    else:
        task = load_task(TaskConfig(name="demo", demo_size=max(want, 100)))
        what = "built-in demo sentences (SST-2 not found)"
    train = task.splits["train"]
    if len(train) < n:
        raise SystemExit(f"only {len(train)} sentences available, {n} asked")
    return train.texts[:n], train.labels[:n], task.num_labels, f"{n} {what}"


def take_batches(lengths: np.ndarray, batch_size: int, count: int, group_by_length: bool, seed: int = 0):
    """The first `count` batches of mtkd's epoch order (epochs 0, 1, ... concatenated)."""
    from mtkd.train import epoch_batches
    out, epoch = [], 0
    while len(out) < count:
        out += epoch_batches(lengths, batch_size, seed, epoch, group_by_length)
        epoch += 1
    return out[:count]


class Stepper:
    """Times one training step of mtkd's own `Trainer` (the step `mtkd.train.train` runs)."""

    def __init__(self, model, data, loss_fn, extra=None, want_features=False, lr=1e-4, total=100_000):
        from mtkd.train import Trainer, TrainSpec
        self.trainer = Trainer(model, data, TrainSpec(1, lr, 32), loss_fn, total, extra, want_features)
        self.trainer.model.train()

    def __call__(self, batch_idx, pad_to: int | None = None) -> float:
        """Seconds for one step on examples `batch_idx`."""
        t0 = time.perf_counter()
        self.trainer.step(batch_idx, pad_to=pad_to)
        return time.perf_counter() - t0


def rotated(items: list, r: int) -> list:
    """`items` rotated by r: alternating sides change places every round (no position bias)."""
    r %= len(items)
    return items[r:] + items[:r]


def summary(times: list[float]) -> str:
    q = np.percentile(times, [10, 90]) * 1e3
    return f"median {statistics.median(times) * 1e3:8.1f} ms  (p10 {q[0]:.1f}, p90 {q[1]:.1f}, n={len(times)})"


def run_mtkd(args: list[str], log, command: list[str] | None = None) -> float:
    """Run one mtkd command, its output appended to the open file `log`; its wall time in seconds. A failed
    command ends the benchmark with one line naming the command and the log (its output is there). A benchmark
    stopped by SIGTERM or Ctrl-C stops its mtkd command too (it would otherwise run on, holding the cores and
    the run's stage locks). `command`: what runs instead of `python -m mtkd` (tests)."""
    import signal
    import subprocess
    import sys
    log.write(f"$ mtkd {' '.join(args)}\n")
    log.flush()
    t0 = time.perf_counter()

    def stop(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")
    proc = subprocess.Popen([*(command or [sys.executable, "-m", "mtkd"]), *args], stdout=log,
                            stderr=subprocess.STDOUT)
    previous = signal.signal(signal.SIGTERM, stop)
    try:
        code = proc.wait()
    except BaseException:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
        raise
    finally:
        signal.signal(signal.SIGTERM, previous)
    if code:
        sys.exit(f"error: `mtkd {' '.join(args)}` failed; its output is in {log.name}")
    return time.perf_counter() - t0
