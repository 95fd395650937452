"""Wall time of a 4-point sweep (student.lr over 4 values, one multi-teacher student per point) run one
point after the other vs as Ray tasks on a local Ray with 2 workers. Goal: ratio <= 0.8 on 2 cores.

    python bench/sweep_ray.py [--quick] [--examples N] [--out runs/bench_sweep_ray]

The sequential sweep gets every core through torch's intra-op threads (torch.set_num_threads(cpus)); on
Ray each point is a task of 1 CPU running 1 thread, 2 at a time. So the comparison is 2 points x 1 thread
vs 1 point x 2 threads: Ray wins what intra-op parallelism loses (small matrices, Python overhead,
tokenisation and evaluation that use one core) and pays Ray's start (~5-10 s) and each worker's imports.
0.5 would need intra-op threads that do nothing. The base run's teachers and logits are built first and
not timed; each timed sweep starts from empty point folders (nothing cached).

Last line: ratio=<Ray wall time / sequential wall time>."""
from __future__ import annotations

import argparse
import os
import shutil
import time
from pathlib import Path

from _common import machine_info

ROOT = Path(__file__).resolve().parents[1]

BASE = """
name: bench_sweep_ray
seed: 42
tasks: [{{name: demo, demo_size: {n}}}]
teachers: [{{name: tfidf, kind: tfidf}}]
student: {{model: {model}, layers: {layers}, epochs: 1, lr: 1.0e-4, max_length: 48}}
distill: {{strategies: [average], single_teacher: false, baseline: false}}
"""


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=str(ROOT / "runs" / "bench_sweep_ray"))
    ap.add_argument("--quick", action="store_true", help="the tiny random student on 300 examples (a quick check)")
    ap.add_argument("--cpus", type=int, default=2, help="cores used by either side (Ray workers / torch threads)")
    ap.add_argument("--examples", type=int, default=None,
                    help="demo training sentences per point (default 1200; --quick 300): longer points amortise "
                         "each Ray worker's start and imports")
    args = ap.parse_args()

    import torch

    from mtkd.experiments import run_config
    from mtkd.sweeps import OnRay, run_sweep

    out = Path(args.out)
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    model, layers, n = ("tiny", 1, 300) if args.quick else ("minilm", 2, 1200)
    n = args.examples or n
    (out / "base.yaml").write_text(BASE.format(n=n, model=model, layers=layers))
    run = out / "run"
    run_config(out / "base.yaml", run, until="logits", log=lambda m: None)
    points = ["student.lr=5e-5,1e-4,2e-4,4e-4"]
    quiet = lambda m: None  # noqa: E731

    torch.set_num_threads(args.cpus)
    t0 = time.time()
    run_sweep(run, points, name="sequential", log=quiet)
    sequential = time.time() - t0

    import ray
    t0 = time.time()
    ray.init(num_cpus=args.cpus, include_dashboard=False, configure_logging=False, log_to_driver=False)
    started = time.time() - t0
    run_sweep(run, points, name="on_ray", log=quiet, ray=OnRay(cpus_per_task=1))
    on_ray = time.time() - t0
    ray.shutdown()

    same = (run / "sweeps" / "sequential" / "sweep_results.csv").read_text().replace("sequential", "") == \
        (run / "sweeps" / "on_ray" / "sweep_results.csv").read_text().replace("on_ray", "")
    print(machine_info())
    print(f"sweep: 4 points x 1 student ({model}, {layers} layer(s), {n} demo examples, 1 epoch); "
          f"load: {os.getloadavg()[0]:.1f} (1-min load average at the end)")
    print(f"sequential, {args.cpus} torch threads:       {sequential:7.1f} s")
    print(f"Ray, {args.cpus} tasks x 1 CPU x 1 thread:   {on_ray:7.1f} s  (of which Ray start {started:.1f} s)")
    print(f"same results table: {same} (thread counts differ, so the last float bits may too)")
    print(f"ratio={on_ray / sequential:.3f}")


if __name__ == "__main__":
    main()
