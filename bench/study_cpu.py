"""The whole study on CPU: `mtkd run configs/study_cpu.yaml` (four GLUE tasks, every student at the config's
seeds), then the study's sweeps on two tasks (temperature, alpha at the validation-best temperature, the 3x3
T x alpha grid; each sweep task's validation-best single-teacher student, plus any the sweep base already has, and
the study's four strategies), with the wall
time of every stage per task, so a user knows what the study costs on their machine.

    python bench/study_cpu.py --out runs/study_cpu                       # everything (main run + sweeps: RUN/timing.md)
    python bench/study_cpu.py --out runs/study_cpu --no-sweeps           # the main run only (1.8 h on 2 cores)
    python bench/study_cpu.py --out runs/study_cpu --tasks sst2,mrpc     # a part: these tasks only
    python bench/study_cpu.py --out runs/study_bf16 --no-sweeps --set mixed_precision=bf16 --set 'seeds=[42]'
                                                                         # config overrides (mtkd run's key=value)

Every step is an ordinary mtkd command on RUN (cached: rerunning finishes only what is missing; a session that
ends midway loses only the student being trained). RUN/timing.md (and .json): minutes per task and stage, one
seed of every student, the compute of the whole study; --publish copies them, with the report, the tables and
the evidence they are computed from (DIR/evidence/<task>.npz + .json: `mtkd analyze DIR` works without RUN).
The sweeps run in RUN/sweep_base, a run of the sweep tasks whose stages are hard links to RUN's where RUN has them (`mtkd evaluate --reuse RUN`), at the run seed only
(--sweep-seeds all: at every seed of the config); a sweep point whose student has the key of one trained
already (the base's T, a T x alpha cell that the T or alpha sweep had) links it too. Last line: ratio=<minutes to train one seed of every student / 60> (the goal: <= 1).
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
from collections import defaultdict
from pathlib import Path


ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
from _common import machine_info, run_mtkd  # noqa: E402

STUDY = ["average", "weighted", "best_per_sample", "learned_gating"]


def stage_seconds(run: Path, tasks: list[str]) -> dict[str, dict[str, float]]:
    """task -> stage kind -> seconds, from the stage manifests (students split by type; one seed = the run seed)."""
    out: dict[str, dict[str, float]] = {}
    for task in tasks:
        per = defaultdict(float)
        for m in sorted((run / task).glob("*/*/manifest.json")) + sorted((run / task).glob("*/manifest.json")):
            kind = m.parent.parent.name if m.parent.parent.name != task else m.parent.name
            man = json.loads(m.read_text())
            if kind == "students":
                kind = f"students ({man.get('type')})"
                if "@seed" not in m.parent.name:
                    per["students, run seed only"] += man.get("seconds", 0.0)
            per[kind] += man.get("seconds", 0.0)
        out[task] = dict(per)
    return out


def compute_seconds(run: Path) -> dict[str, float]:
    """Seconds of every stage built in RUN, each counted once: a stage linked into another run folder (the
    sweep base, a sweep point) is a hard link of the same manifest, so manifests are told apart by inode (a
    link that fell back to a copy, across file systems, counts twice; sweeps run on RUN itself count as the
    main run's).
    {"main run": ..., "sweeps": ... (stages under RUN/sweep_base and never in the main run), "all": ...}."""
    seen, out = set(), {"main run": 0.0, "sweeps": 0.0}
    files = sorted(run.rglob("manifest.json"), key=lambda p: (run / "sweep_base") in p.parents)   # main run first
    for m in files:
        try:
            st = m.stat()
            if (st.st_dev, st.st_ino) in seen:
                continue
            seen.add((st.st_dev, st.st_ino))
            seconds = float(json.loads(m.read_text()).get("seconds") or 0.0)
        except (ValueError, TypeError, OSError, AttributeError):   # vanished mid-scan, unreadable, no seconds
            continue
        out["sweeps" if (run / "sweep_base") in m.parents else "main run"] += seconds
    out["all"] = out["main run"] + out["sweeps"]
    return out


def timing_report(run: Path, tasks: list[str], machine: str, walls: list[tuple[str, float]],
                  overrides: list[str] = ()) -> tuple[str, dict]:
    """RUN/timing.md's text and timing.json's content: minutes per task and stage (from the stage manifests),
    one seed of every student, the compute of the main run, of the sweeps and of both, and this invocation's
    wall times; `overrides` (the --set values the run was given) are named under the machine."""
    per = stage_seconds(run, tasks)
    stages = sorted({k for v in per.values() for k in v})
    total = compute_seconds(run)
    one_seed = sum(per[t].get("students, run seed only", 0.0) for t in tasks) / 60
    lines = ["# Wall time of the study on this machine", "", machine, ""]
    if overrides:
        lines += ["config overrides: " + ", ".join(f"`{o}`" for o in overrides), ""]
    lines += [
             "Minutes of compute per stage, from each stage's manifest (the seconds its build took; a student "
             "resumed from a checkpoint counts only its last session, so a resumed stage is undercounted). The "
             f"table covers the tasks {', '.join(tasks)}; the totals below every stage in {run.name}.", "",
             "| stage | " + " | ".join(tasks) + " | all |", "|---|" + "---|" * (len(tasks) + 1)]
    for s in stages:
        vals = [per[t].get(s, 0.0) / 60 for t in tasks]
        lines.append(f"| {s} | " + " | ".join(f"{v:.1f}" for v in vals) + f" | {sum(vals):.1f} |")
    lines += ["", f"- one seed of every student, all tasks: **{one_seed:.1f} min** (goal ≤ 60; ratio {one_seed / 60:.2f})",
              f"- main run, every stage and seed: {total['main run'] / 3600:.1f} h",
              f"- sweeps (stages built for them, not linked from the main run): {total['sweeps'] / 3600:.1f} h",
              f"- the whole study: **{total['all'] / 3600:.1f} h** of compute", "",
              "This invocation's wall time (cached stages cost nothing, so a resumed run's is smaller):", ""]
    lines += [f"- {what}: {sec / 60:.1f} min" for what, sec in walls]
    data = {"machine": machine, "overrides": list(overrides), "minutes": {t: {k: round(v / 60, 2) for k, v in per[t].items()} for t in tasks},
            "one_seed_of_every_student_min": round(one_seed, 2), "ratio": round(one_seed / 60, 3),
            "compute_hours": {k: round(v / 3600, 3) for k, v in total.items()},
            "this_invocation_min": {what: round(sec / 60, 2) for what, sec in walls}}
    return "\n".join(lines) + "\n", data


def best_single_teachers(run: Path, tasks: list[str]) -> list[str]:
    """Per sweep task, the teacher of the validation-selected best single-teacher student of the main run."""
    from mtkd.analysis import gap
    from mtkd.analysis.load import load_task
    names = []
    for task in tasks:
        best = gap.selection(load_task(run / task / "eval" / "manifest.json"))["single"]
        names += [t for t in (best.teachers if best else []) if t not in names]
    return names


def sweep_singles(best: list[str], base: Path) -> list[str]:
    """The sweeps' single-teacher students: the validation-best ones (`best`), after those the sweep base
    already has (config.yaml), so a best single that changes with more seeds of the main run is added to
    the cached sweeps instead of replacing them (more singles compared, none rebuilt)."""
    import yaml
    cfg = base / "config.yaml"
    had = (yaml.safe_load(cfg.read_text(encoding="utf-8")).get("distill") or {}).get("single_teacher") \
        if cfg.exists() else None
    had = [t for t in had or [] if isinstance(t, str)] if isinstance(had, list) else []
    return had + [t for t in best if t not in had]


def publish(run: Path, dest: Path, log) -> None:
    """The run's report (md + html; with DEST/findings.md, the hand-written findings, in it; without it, none),
    config, master table and analysis, every sweep's tables and plots at the paths the report links to, and the
    evidence (DEST/evidence/<task>.npz + .json: every model's per-example logits, labels, fingerprints), so that
    `mtkd analyze DEST` and `mtkd report DEST` recompute the same tables and report without the run folder."""
    dest.mkdir(parents=True, exist_ok=True)
    if (dest / "findings.md").is_file():
        shutil.copy2(dest / "findings.md", run / "findings.md")
    elif (run / "findings.md").is_file():   # DEST's findings were removed: the run's old copy must not stay
        (run / "findings.md").unlink()
    run_mtkd(["report", str(run)], log)
    for name in ("report.md", "report.html", "config.yaml", "timing.md", "timing.json"):
        if (run / name).is_file():
            shutil.copy2(run / name, dest / name)
    for sub in ("results", "analysis", "report_files"):   # report_files: the figures the report draws
        if (run / sub).is_dir():
            shutil.copytree(run / sub, dest / sub, dirs_exist_ok=True)
    from mtkd.analysis.evidence import write_evidence
    from mtkd.report.build import sweep_folders
    write_evidence(run, dest)
    for sweep in sweep_folders(run):   # the run's and the sweep base's, at the paths the report links to
        out = dest / sweep.relative_to(run)
        out.mkdir(parents=True, exist_ok=True)
        for f in sweep.iterdir():
            if f.is_file() and f.suffix in (".md", ".csv", ".png", ".json"):
                shutil.copy2(f, out / f.name)
        base = sweep.parent.parent   # a sweep base's run.json: what makes `mtkd report DEST` find its sweeps
        if base != run and (base / "run.json").is_file():
            shutil.copy2(base / "run.json", dest / base.relative_to(run) / "run.json")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--config", default=str(ROOT / "configs" / "study_cpu.yaml"))
    ap.add_argument("--out", default=str(ROOT / "runs" / "study_cpu"))
    ap.add_argument("--tasks", help="comma-separated: run only these tasks of the config")
    ap.add_argument("--sweep-tasks", help="comma-separated tasks of the sweeps (default: the config's sst2 and mrpc, "
                    "else its first task)")
    ap.add_argument("--no-sweeps", action="store_true")
    ap.add_argument("--recompute", action="store_true", help="rebuild stale stages (after a config change) in the "
                    "main run, the sweep base and the sweeps (their commands' --recompute)")
    ap.add_argument("--sweep-seeds", choices=("run", "all"), default="run")
    ap.add_argument("--temperatures", default="1,2,4,6,8")
    ap.add_argument("--alphas", default="0.3,0.5,0.7,0.9")
    ap.add_argument("--grid", default="2,4,8 x 0.5,0.7,0.9", help="T values x alpha values of the joint grid")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="a config override for the main run and the sweep base, as mtkd run takes it (repeatable), "
                    "e.g. --set mixed_precision=bf16")
    ap.add_argument("--publish", metavar="DIR", help="copy the report, tables, plots and sweeps into DIR, with the "
                    "evidence the tables are computed from (DIR/evidence; e.g. docs/results/study_cpu)")
    args = ap.parse_args()
    run = Path(args.out)
    from mtkd.config import load_config
    from mtkd.errors import MtkdError
    from mtkd.config import to_dict
    try:   # a missing or bad config or --set: one line, before anything runs
        cfg = to_dict(load_config(args.config, args.set))   # its tasks' local paths resolved: overrides of --tasks keep them
    except MtkdError as e:
        sys.exit(f"error: {e}")
    all_tasks = [t["name"] for t in cfg["tasks"]]
    tasks = args.tasks.split(",") if args.tasks else all_tasks
    if args.sweep_tasks is None:   # the study's two small tasks where the config has them
        args.sweep_tasks = ",".join([t for t in ("sst2", "mrpc") if t in all_tasks] or all_tasks[:1])
    for t in tasks + (args.sweep_tasks.split(",") if not args.no_sweeps else []):   # sweep tasks matter only with sweeps
        if t not in all_tasks:
            sys.exit(f"error: task '{t}' is not in {args.config} (its tasks: {', '.join(all_tasks)})")
    run.mkdir(parents=True, exist_ok=True)
    keep = [f"tasks={json.dumps([t for t in cfg['tasks'] if t['name'] in tasks])}"] \
        if args.tasks else []
    times = []
    log = open(run / "study_cpu.log", "a", encoding="utf-8")
    print(machine_info(), flush=True)
    seconds = run_mtkd(["run", args.config, "--out", str(run), *keep, *args.set,
                        *(["--recompute"] if args.recompute else [])], log)
    times.append(("main run (mtkd run)", seconds))
    print(f"main run: {seconds / 60:.1f} min", flush=True)

    if not args.no_sweeps:
        sweep_tasks = [t for t in args.sweep_tasks.split(",") if t in tasks]
        base = run / "sweep_base"
        only = f"tasks={json.dumps([t for t in cfg['tasks'] if t['name'] in sweep_tasks])}"
        over = [*args.set, only,
                f"distill.strategies=[{','.join(STUDY)}]",
                f"distill.single_teacher=[{','.join(sweep_singles(best_single_teachers(run, sweep_tasks), base))}]"]
        if args.sweep_seeds == "run":
            over.append("seeds=null")
        # every stage the main run has with the same key (data, teachers, logits, no-KD and the students
        # of the sweep's methods at the run seed) is linked, not rebuilt
        rec = ["--recompute"] if args.recompute else []
        seconds = run_mtkd(["evaluate", args.config, "--out", str(base), "--reuse", str(run), *over, *rec], log)
        times.append(("sweep base run", seconds))
        t_best = None
        steps = [("temperature sweep", ["--param", f"distill.temperature={args.temperatures}", "--name", "T"])]
        grid_t, grid_a = (s.strip() for s in args.grid.split("x"))
        for what, params in steps + [("alpha sweep", None), ("T x alpha grid", ["--param", f"distill.temperature={grid_t}",
                                                                               "--param", f"distill.alpha={grid_a}"])]:
            if params is None:   # alpha at the validation-best temperature of the multi-teacher students
                rows = list(__import__("csv").DictReader(open(base / "sweeps" / "T" / "sweep_results.csv")))
                multi = [r for r in rows if r["type"] == "multi"]
                t_best = max(multi, key=lambda r: float(r["val_AVG"]))["T"]
                params = ["--param", f"distill.temperature={t_best}", "--param", f"distill.alpha={args.alphas}",
                          "--name", "alpha"]
            seconds = run_mtkd(["sweep", str(base), *params, *rec], log)
            times.append((what, seconds))
            print(f"{what}: {seconds / 60:.1f} min", flush=True)
        run_mtkd(["report", str(base)], log)

    from mtkd.io import atomic_write_text
    text, data = timing_report(run, tasks, machine_info(), times, args.set)
    atomic_write_text(run / "timing.md", text)
    atomic_write_text(run / "timing.json", json.dumps(data, indent=2) + "\n")
    if args.publish:
        try:
            publish(run, Path(args.publish), log)
        except MtkdError as e:
            sys.exit(f"error: {e}")
    print("\n" + text, flush=True)   # the same table and totals as RUN/timing.md
    one_seed = data["one_seed_of_every_student_min"]
    print(f"ratio={one_seed / 60:.3f}")


if __name__ == "__main__":
    main()
