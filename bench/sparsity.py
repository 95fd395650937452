"""What sparsity costs and buys: students pruned to 0, 50, 70 and 90% on real SST-2, distilled from one
teacher and from all of them, each at several seeds, on the cached teachers of one base run.

    python bench/sparsity.py [--levels 0,0.9,0.5,0.7] [--seeds 3] [--structured 0.5] [--max-train 2000] [--out runs/bench_sparsity]
    python bench/sparsity.py --quick          # smoke test: the demo task, tiny models (figures are not results)

Per (arm, sparsity): accuracy (mean over seeds, sd, worst seed), prediction churn between seeds (with its
bootstrap CI), the achieved sparsity of the saved weights, size on disk (safetensors, and gzip-compressed:
safetensors stores zeros densely) and CPU inference throughput of the saved run-seed student on the eval
split (sentences/s, median of rounds that alternate the models, each round every model once).
Arms: `single` = KD from the config's first teacher alone, `multi` = the `average` fusion of all teachers;
`--structured` levels add a multi-teacher student with whole FFN neurons pruned, timed as saved (dense
with zero rows) and compacted (the FFN sliced to its kept neurons, sparsity.compact_ffn).
configs/sst2_cpu.yaml with `--max-train` SST-2 training examples (default 2000, a quarter of the config's,
so that 27 students train in about an hour on a shared 2-core machine). Training happens in ordinary run folders OUT/<arm>_s<level>[_structured] (cached: a rerun only re-measures).
Last line: ratio=<throughput of the 90%-sparse multi-teacher student / dense multi-teacher student>.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import GLUE_DIR, ROOT, machine_info, rotated  # noqa: E402


def configs(args):
    """(base config, [(label, arm, level, structured, point config)])."""
    from mtkd.config import first_seeds, load_config, validate
    if args.quick:
        base = load_config(None, ["name=sparsity_quick", "tasks=[{name: demo, demo_size: 400}]",
                                  "teachers=[{name: t1, model: tiny, epochs: 1, lr: 1.0e-3, max_length: 32}, {name: tf, kind: tfidf}]",
                                  "student.model=tiny", "student.layers=2", "student.epochs=1", "student.max_length=32"])
    else:
        base = load_config(ROOT / "configs" / "sst2_cpu.yaml", [f"tasks.0.glue_dir={args.glue_dir}",
                                                                f"tasks.0.max_train_examples={args.max_train}"])
    seeds = first_seeds(base.seed, args.seeds)
    points = []
    plan = [(lv, arm, False) for lv in args.levels for arm in ("single", "multi")] + \
           [(lv, "multi", True) for lv in args.structured]
    for level, arm, structured in plan:
        teachers = base.teachers[:1] if arm == "single" else base.teachers
        distill = dataclasses.replace(base.distill, strategies=[] if arm == "single" else ["average"],
                                      single_teacher=arm == "single", baseline=False)
        student = dataclasses.replace(base.student, sparsity=level, sparsity_structured=structured, save_model=True)
        cfg = validate(dataclasses.replace(base, seeds=seeds, teachers=teachers, distill=distill, student=student))
        label = f"{arm}_s{level:g}" + ("_structured" if structured else "")
        points.append((label, arm, level, structured, cfg))
    return base, points


def train_points(base, points, out: Path):
    from mtkd.experiments import Run
    from mtkd.sweeps import link_cached_stages
    quiet = lambda m: None
    Run(base, out / "base", log=quiet).execute("logits")
    for label, *_, cfg in points:
        t0 = time.time()
        link_cached_stages(out / "base", out / label, base)
        Run(cfg, out / label, log=quiet).execute("evaluate")
        print(f"  trained {label:22s} {time.time() - t0:7.0f} s", flush=True)


def measure(base, points, out: Path, rounds: int):
    from mtkd import sparsity
    from mtkd.analysis.stability import stability
    from mtkd.experiments import Run, planned_students
    from mtkd.models import encode, load_saved_classifier, load_tokenizer
    from mtkd.tasks import load_task
    from mtkd.train import predict

    task = load_task(base.tasks[0])
    name, metric = task.name, task.metric
    tok = load_tokenizer(base.student.model)
    data = encode(tok, task.splits["eval"].texts, base.student.max_length)
    rows, models = [], {}
    for label, arm, level, structured, cfg in points:
        (student,) = planned_students(cfg)
        man = json.loads((out / label / name / "eval" / "manifest.json").read_text())
        entry = next(m for m in man["models"] if m["method"] == student.method)
        folder = Run(cfg, out / label).student_dir(name, student.method)
        preds = {int(s): eval_preds(out / label / name / "eval" / f) for s, f in entry["seed_files"].items()}
        st = stability({int(s): m["eval"][metric] for s, m in entry["seed_metrics"].items()}, preds)
        model = load_saved_classifier(folder / "model")
        achieved = sparsity.report(model, structured)
        rows.append({"label": label, "arm": arm, "level": level, "structured": structured, "method": student.method,
                     "stability": st, "achieved": achieved["sparsity"], "encoder": achieved["encoder_sparsity"],
                     "nonzero": achieved["model_nonzero_params"], "params": achieved["model_params"],
                     "size": sparsity.disk_size(folder / "model")})
        models[label] = model
        if structured:
            models[label + "+compact"] = sparsity.compact_ffn(load_saved_classifier(folder / "model"))
    for m in models.values():          # warm-up, and the compacted copy computes what the saved one does
        predict(m, data, base.eval_batch_size)
    times = {k: [] for k in models}
    for r in range(rounds):
        for k in rotated(list(models), r):
            t0 = time.perf_counter()
            predict(models[k], data, base.eval_batch_size)
            times[k].append(time.perf_counter() - t0)
    speed = {k: len(data) / statistics.median(v) for k, v in times.items()}
    return task, rows, speed


def eval_preds(path: Path):
    import numpy as np
    return np.load(path).argmax(1)


def report(task, rows, speed, seeds, n_eval):
    dense = {r["arm"]: r for r in rows if r["level"] == 0}
    head = (f"| arm | sparsity | structured | {task.metric} mean ± sd | worst seed | churn % [95% CI] | achieved "
            f"(encoder) | safetensors MB | gzip MB | sentences/s | vs dense: acc pp | gzip | speed |")
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for r in sorted(rows, key=lambda r: (r["structured"], r["level"], r["arm"])):
        st, d = r["stability"], dense.get(r["arm"])
        sz = r["size"]
        def vs(k):
            return speed[k] / speed[d["label"]] if d else float("nan")
        lines.append(
            f"| {r['arm']} | {r['level']:.0%} | {'FFN neurons' if r['structured'] else 'no'} | "
            f"{st.mean:.2f} ± {st.std:.2f} | {st.worst:.2f} (seed {st.worst_seed}) | "
            f"{st.churn:.2f} [{st.churn_low:.2f}, {st.churn_high:.2f}] | {r['achieved']:.1%} ({r['encoder']:.1%}) | "
            f"{sz['safetensors_bytes'] / 1e6:.1f} | {sz['gzip_bytes'] / 1e6:.1f} | {speed[r['label']]:.0f} | "
            f"{st.mean - d['stability'].mean:+.2f} | {sz['gzip_bytes'] / d['size']['gzip_bytes']:.3f} | {vs(r['label']):.3f} |"
            if d else f"| {r['label']} | (no dense row) |")
        if r["structured"]:
            k = r["label"] + "+compact"
            lines.append(f"| {r['arm']} | {r['level']:.0%} | FFN neurons, compacted | (same model) | | | | | | "
                         f"{speed[k]:.0f} | | | {vs(k):.3f} |")
    lines.append(f"\n{task.name} eval: {n_eval} sentences; seeds {', '.join(map(str, seeds))}; "
                 f"params of the saved student: {rows[0]['params']:,}.")
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--levels", default="0,0.9,0.5,0.7", help="sparsity levels, trained in this order")
    ap.add_argument("--max-train", type=int, default=2000,
                    help="SST-2 training examples (incl. the 10%% validation carve); configs/sst2_cpu.yaml uses 8000")
    ap.add_argument("--structured", default="0.5", help="levels of the structured multi-teacher student ('' for none)")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--rounds", type=int, default=5, help="timed inference rounds")
    ap.add_argument("--glue-dir", default=str(GLUE_DIR))
    ap.add_argument("--out", default=None)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--measure-only", action="store_true",
                    help="train nothing: measure the points whose runs are finished (skipping the others)")
    args = ap.parse_args()
    args.levels = [float(x) for x in args.levels.split(",") if x]
    args.structured = [float(x) for x in args.structured.split(",") if x]
    if args.quick:
        args.seeds, args.rounds = min(args.seeds, 2), 2
    elif not Path(args.glue_dir, "SST-2").is_dir():
        raise SystemExit(f"SST-2 not found under {args.glue_dir} (use --quick for a smoke test on the demo task)")
    out = Path(args.out or ROOT / "runs" / ("bench_sparsity_quick" if args.quick else "bench_sparsity"))
    print(machine_info(), flush=True)
    base, points = configs(args)
    t0 = time.time()
    if args.measure_only:
        points = [p for p in points if (out / p[0] / base.tasks[0].name / "eval" / "manifest.json").is_file()]
        print(f"measuring the finished points: {', '.join(p[0] for p in points)}", flush=True)
    else:
        train_points(base, points, out)
    print(f"training (or cache lookups): {time.time() - t0:.0f} s", flush=True)
    task, rows, speed = measure(base, points, out, args.rounds)
    print(report(task, rows, speed, points[0][-1].seeds, len(task.splits["eval"])))
    dense = {r["arm"]: r for r in rows if r["level"] == 0 and not r["structured"]}
    arm = "multi" if any(r["arm"] == "multi" and r["level"] > 0 for r in rows) else "single"
    top = max((r for r in rows if r["arm"] == arm and not r["structured"]), key=lambda r: r["level"])
    print(f"ratio={speed[top['label']] / speed[dense[arm]['label']]:.3f}  ({top['label']} / {dense[arm]['label']})")


if __name__ == "__main__":
    main()
