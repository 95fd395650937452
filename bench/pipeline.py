"""Wall time of the full CPU pipeline on real SST-2 (configs/sst2_cpu.yaml: three teachers from the
packaged MiniLM and TF-IDF, the no-KD student, three single-teacher students, every fusion strategy,
every student at the config's seeds), with a per-stage breakdown read from the stage manifests. Goal: <= 30 min on 2 cores.

    python bench/pipeline.py [--glue-dir ../shared/data/glue] [--out runs/bench_pipeline]

Last line: ratio=<wall time / 30 min>  (<= 1 meets the goal)."""
from __future__ import annotations

import argparse
import json
import shutil
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--glue-dir", default=str(ROOT.parent / "shared" / "data" / "glue"))
    ap.add_argument("--out", default=str(ROOT / "runs" / "bench_pipeline"))
    ap.add_argument("--keep", action="store_true", help="reuse cached stages instead of starting fresh")
    ap.add_argument("overrides", nargs="*")
    args = ap.parse_args()

    from mtkd.config import load_config
    from mtkd.experiments import Run
    overrides = list(args.overrides)
    if Path(args.glue_dir, "SST-2").is_dir():
        overrides.append(f"tasks.0.glue_dir={args.glue_dir}")
        data = "SST-2 (GLUE TSV)"
    else:
        overrides += ["tasks.0.name=demo", "tasks.0.glue_dir=null"]
        data = "the built-in demo (SST-2 not found)"
    cfg = load_config(ROOT / "configs" / "sst2_cpu.yaml", overrides)
    out = Path(args.out)
    if out.exists() and not args.keep:
        shutil.rmtree(out)
    t0 = time.time()
    Run(cfg, out, log=lambda m: None).execute("report")
    wall = time.time() - t0

    per_stage = defaultdict(float)
    task = cfg.tasks[0].name
    for m in sorted((out / task).glob("*/*/manifest.json")) + sorted((out / task).glob("*/manifest.json")):
        kind = m.parent.parent.name if m.parent.parent.name != task else m.parent.name
        man = json.loads(m.read_text())
        if kind == "students":
            kind = f"students ({man.get('type')})"
        per_stage[kind] += man.get("seconds", 0.0)
    print(f"data: {data}; train {cfg.tasks[0].max_train_examples} examples (incl. validation)")
    print(f"{'stage':24s} {'seconds':>8s}")
    for k, v in per_stage.items():
        print(f"{k:24s} {v:8.1f}")
    print(f"{'analysis + report':24s} {wall - sum(per_stage.values()):8.1f}  (and data loading)")
    print(f"{'wall':24s} {wall:8.1f}  = {wall / 60:.1f} min")
    print((out / "results" / "master_results.md").read_text())
    print(f"ratio={wall / 1800:.3f}")


if __name__ == "__main__":
    main()
