"""Do many voices beat one on real SST-2? Every strategy, with and without a transfer set, with and without
calibration, at several seeds, on the teachers of configs/quality_sst2.yaml; writes docs/results-cpu.md.

    python bench/quality_cpu.py --out runs/quality_sst2       # every variant, strategy and teacher: ~6 h on 2 cores
    python bench/quality_cpu.py --out runs/quality_sst2 --variants transfer \
        --strategies average,kl_sum --single-teachers minilm_l6,minilm_l3     # a part (what docs/results-cpu.md says)
    python bench/quality_cpu.py --out runs/quality_sst2 --variants plain,transfer --report-only   # the page only

What runs (each step is an ordinary mtkd command, cached: rerunning finishes only what is missing; a
variant run earlier in RUN is reported with the ones of this call):
1. `mtkd train-baseline CONFIG --out RUN`: the teachers, their cached logits (train, validation, eval, the
   transfer set, the extra eval sets) and the no-KD student at every seed of the config;
2. one `mtkd sweep RUN --name <variant> --param ...` per variant: `plain` (distill.use_transfer=false),
   `transfer` (+ the teacher-labelled transfer set), `calibrated` and `transfer+calibrated` (distill.calibrate:
   true: every teacher's temperature fitted on validation before the strategy; --no-single, and without
   calibrated_average, which calibrates already).
Then every point is loaded as one pool of students ("<method> [<variant>]"); "best" is always selected on
validation (mean over seeds) and reported on eval: best multi-teacher student vs best single-teacher student
(paired bootstrap 95% CI over the eval examples, every seed; paired permutation test on the metric), per variant and
over all variants; gap closed by the best student with its CI; the teachers and what each fixed-target
strategy teaches on the training set (accuracy, how sure where the teachers agree and where they do not,
raw and calibrated); what the transfer set and calibration each change, student by student (the same method
in two variants that differ in that one factor, with a paired CI); the worst-slice tables (worst class, worst
teacher-agreement region, worst extra eval set; every selected student at each teacher's worst slice).
"""
from __future__ import annotations

import argparse
import math
import re
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
from _common import machine_info, run_mtkd  # noqa: E402

from mtkd.analysis import gap, significance, slices, stats  # noqa: E402
from mtkd.analysis.load import Model, TaskEval, eval_manifests, load_run  # noqa: E402
from mtkd.tables import Table, cell  # noqa: E402

FINDINGS = re.compile(r"^##[ \t]+Findings[ \t]*\r?\n.*?(?=^#{1,2} |\Z)", re.S | re.M)
VARIANTS = {   # variant -> the sweep params that make it (each variant is its own sweep RUN/sweeps/<variant>)
    "plain": ["distill.use_transfer=false"],
    "transfer": ["distill.use_transfer=true"],
    "calibrated": ["distill.use_transfer=false", "distill.calibrate=true"],
    "transfer+calibrated": ["distill.use_transfer=true", "distill.calibrate=true"],
}
CONTRASTS = [   # (factor, variant without it, variant with it): two variants that differ in that one factor
    ("transfer set", "plain", "transfer"), ("transfer set", "calibrated", "transfer+calibrated"),
    ("calibration", "plain", "calibrated"), ("calibration", "transfer", "transfer+calibrated"),
]


def built_seconds(folder: Path, pattern: str, seen: set) -> tuple[float, int]:
    """Total seconds recorded in the manifests of the stage folders matching `pattern` (when they were built),
    each stage counted once: a folder linked from another run (same key) shares its manifest file (`seen`)."""
    import json
    found = []
    for m in folder.glob(f"{pattern}/manifest.json"):
        st = m.stat()
        if (st.st_dev, st.st_ino) not in seen:
            seen.add((st.st_dev, st.st_ino))
            found.append(json.loads(m.read_text()).get("seconds", 0.0))
    return sum(found), len(found)


def seed_scores(task: TaskEval, m) -> np.ndarray:
    """The official eval metric of model m at each of its seeds, in %."""
    c = len(task.label_names)
    return np.array([float(stats.metric_from_confusion(stats.confusion(task.labels, p, c), task.metric, task.pos_label))
                     for p in m.seed_preds()])


def with_baseline(run: Path, task: TaskEval, seeds: list[int]) -> TaskEval:
    """`task` (a sweep point) with the no-KD student of the base run, where the sweep trained it (once, for
    every variant: it never sees the transfer set nor a teacher), read from its stage folders."""
    if task.of_type("baseline"):
        return task
    folders = [run / task.name / "students" / ("no_kd" if i == 0 else f"no_kd@seed{s}") for i, s in enumerate(seeds)]
    seed_logits = {s: np.load(f / "logits_eval.npy") for s, f in zip(seeds, folders)}
    val = [np.load(f / "logits_validation.npy") for f in folders]
    c = len(task.label_names)
    score = lambda y, lg: float(stats.metric_from_confusion(stats.confusion(y, lg.argmax(1), c), task.metric,  # noqa: E731
                                                             task.pos_label))
    extra = {n: np.load(folders[0] / f"logits_{n}.npy") for n in task.extra_labels
             if (folders[0] / f"logits_{n}.npy").is_file()}
    model = Model("no_kd", "baseline", seed_logits[seeds[0]], float(np.mean([score(task.labels, lg) for lg in seed_logits.values()])),
                  seeds=list(seeds), seed_logits=seed_logits, val_metric=float(np.mean([score(task.val_labels, lg) for lg in val])),
                  val_logits=val[0], extra_logits=extra)
    teachers = task.of_type("teacher")
    return replace(task, models=[*teachers, model, *task.of_type("single", "multi")])


# what a variant may change in the base run's config (and what says which students it trains)
VARIANT_KEYS = {"use_transfer", "calibrate", "strategies", "single_teacher", "baseline"}


def stale_settings(run: Path, point: Path) -> list[str]:
    """The settings in which sweep point `point` differs from the base run `run` beyond what a variant sets
    (e.g. a student recipe changed since the variant ran): its students are not comparable with the others."""
    from mtkd.config import load_config, to_dict
    from mtkd.errors import MtkdError
    base = to_dict(load_config(run / "config.yaml"))   # local paths resolved (the base run's: loaded before)
    try:
        pt = to_dict(load_config(point / "config.yaml"))
    except (MtkdError, OSError) as e:   # a point folder whose config.yaml is broken: not comparable either
        return [f"its config.yaml does not load: {e}"]
    out = []
    for k in sorted(set(base) | set(pt)):
        a, b = base.get(k), pt.get(k)
        if k == "name" or a == b:
            continue
        if isinstance(a, dict) and isinstance(b, dict):   # student, distill: name the settings
            out += [f"{k}.{j}" for j in sorted(set(a) | set(b))
                    if a.get(j) != b.get(j) and not (k == "distill" and j in VARIANT_KEYS)]
        else:
            out.append(k)
    return out


def merged(tasks: dict[str, TaskEval]) -> TaskEval:
    """One task holding every variant's students (renamed "<method> [<variant>]") beside the teachers and
    the no-KD baseline (the same in every variant: trained once, in the base run)."""
    first = next(iter(tasks.values()))
    models = [m for m in first.models if m.type in ("teacher", "baseline")]
    for variant, t in tasks.items():
        models += [replace(m, method=f"{m.method} [{variant}]") for m in t.of_type("single", "multi")]
    return replace(first, models=models)


def keep(task: TaskEval, names: set[str]) -> TaskEval:
    return replace(task, models=[m for m in task.models if m.type == "teacher" or m.method in names])


def pm(x: np.ndarray) -> str:
    return f"{x.mean():.2f} ± {x.std(ddof=1):.2f}" if len(x) > 1 else f"{x.mean():.2f}"


def students_table(task: TaskEval, variants: list[str], sig: dict) -> Table:
    """Every model: eval metric mean ± sd over seeds per variant (validation mean in brackets: what selects)."""
    sel = gap.selection(task)
    by = {m.method: m for m in task.models}
    rows = []
    for m in task.of_type("teacher", "baseline"):
        rows.append([m.method, m.type] + [f"{pm(seed_scores(task, m))} ({cell(m.val_metric)})"] + [""] * (len(variants) - 1))
    methods = list(dict.fromkeys(m.method.rsplit(" [", 1)[0] for m in task.of_type("single", "multi")))
    for base in methods:
        row = [base, "single" if base.startswith("kd_") else "multi"]
        for v in variants:
            m = by.get(f"{base} [{v}]")
            if m is None:
                row.append("—")
                continue
            lo, hi = sig["gap_ci"].get(m.method, (math.nan, math.nan))
            g = gap.gap_closed(m.metric, sel["baseline"].metric, sel["teacher"].metric)
            row.append(f"{pm(seed_scores(task, m))} ({cell(m.val_metric)}); gap {cell(g, 0)}% [{cell(lo, 0)}, {cell(hi, 0)}]")
        rows.append(row)
    return Table(["model", "type", *variants], rows)


def headline_rows(tasks: dict[str, TaskEval], pool: TaskEval, sig_pool: dict) -> Table:
    rows = []
    for name, t in [*tasks.items(), ("all variants", pool)]:
        sig = sig_pool if t is pool else significance.task_significance(t)
        h, sel = sig["headline"], gap.selection(t)
        if h is None:
            continue
        best = sel["student"]
        lo, hi = sig["gap_ci"].get(best.method, (math.nan, math.nan))
        rows.append([name, h["method"], cell(h["method_validation"]), h["reference"], cell(h["reference_validation"]),
                     cell(h["diff_pp"]), f"[{cell(h['ci_low'])}, {cell(h['ci_high'])}]", cell(h["p_value"], 3),
                     gap.verdict(h["ci_low"], h["ci_high"]), best.method,
                     f"{cell(gap.gap_closed(best.metric, sel['baseline'].metric, sel['teacher'].metric), 0)}% "
                     f"[{cell(lo, 0)}, {cell(hi, 0)}]"])
    return Table(["students", "best multi (val-selected)", "its val", "best single (val-selected)", "its val",
                  "multi − single (pp, eval)", "95% CI", "permutation p", "verdict", "best student (val-selected)",
                  "its gap closed [95% CI]"], rows)


def effects_table(pool: TaskEval) -> Table | None:
    """What the transfer set and calibration each change, student by student: the same method in two
    variants that differ in that one factor (CONTRASTS). Difference of the official eval metric (mean over
    seeds), paired bootstrap 95% CI over the eval examples with every seed (both students on the same
    resamples), paired permutation p over the shared seeds, Holm over the students' rows; after each contrast's students,
    the mean effect over its single- and over its multi-teacher students (the mean of their differences on the
    same resamples: its CI; no p). A student run in only one of the two variants, or at other seeds there, has
    no pair. None when no pair was run."""
    by = {m.method: m for m in pool.of_type("single", "multi")}
    methods = list(dict.fromkeys(k.rsplit(" [", 1)[0] for k in by))
    groups = [(factor, f"{a} → {b}", [(base, by[f"{base} [{a}]"], by[f"{base} [{b}]"]) for base in methods
                                      if f"{base} [{a}]" in by and f"{base} [{b}]" in by
                                      and sorted(by[f"{base} [{a}]"].seeds) == sorted(by[f"{base} [{b}]"].seeds)])
              for factor, a, b in CONTRASTS]   # paired only at the same seeds: the CI resamples every seed of both
    groups = [g for g in groups if g[2]]
    if not groups:
        return None
    used = {m.method: m for *_, pairs in groups for _, *two in pairs for m in two}
    boot = stats.bootstrap_metrics(pool.labels, {k: m.seed_preds() for k, m in used.items()}, pool.metric,
                                   len(pool.label_names), seed=[stats.SEED, 1], pos_label=pool.pos_label)
    rows, tested, ps = [], [], []
    for factor, variants, pairs in groups:
        for base, a, b in pairs:
            lo, hi = stats.percentile_ci(boot[b.method] - boot[a.method])
            ps.append(stats.permutation_p(pool.labels, [(b.seed_logits[s].argmax(1), a.seed_logits[s].argmax(1))
                                                        for s in b.seeds if s in a.seed_logits],
                                          pool.metric, len(pool.label_names), pos_label=pool.pos_label))
            tested.append([factor, base, variants, cell(a.metric), cell(b.metric), cell(b.metric - a.metric),
                           cell(lo), cell(hi), cell(ps[-1], 3)])
            rows.append(tested[-1])
        for kind in ("single", "multi"):   # the mean effect over the contrast's students of one type
            group = [(a, b) for _, a, b in pairs if a.type == kind]
            if len(group) > 1:
                lo, hi = stats.percentile_ci(np.mean([boot[b.method] - boot[a.method] for a, b in group], axis=0))
                rows.append([factor, f"**mean of the {len(group)} {kind}-teacher students**", variants,
                             cell(np.mean([a.metric for a, _ in group])), cell(np.mean([b.metric for _, b in group])),
                             cell(np.mean([b.metric - a.metric for a, b in group])), cell(lo), cell(hi), "", ""])
    for row, p in zip(tested, stats.holm(ps)):
        row.append(cell(p, 3))
    return Table(["factor", "student", "variants", "without (eval)", "with (eval)", "with − without (pp)", "ci_low",
                  "ci_high", "p", "p_holm"], rows)


def effects_section(pool: TaskEval) -> list[str]:
    table = effects_table(pool)
    return [] if table is None else [
        "## What the transfer set and calibration change",
        "",
        "Each student against itself in the variant without that one factor: eval metric difference (mean over "
        "seeds), paired bootstrap 95% CI over the eval examples with every seed, paired permutation p over the seeds, "
        "Holm-corrected over the students' rows; each contrast's mean rows average its students' differences on "
        "the same resamples (their CI; no p).",
        "",
        table.to_markdown()]


def calibration_temperatures(run: Path, task: str) -> dict[str, float]:
    """Each teacher's temperature fitted on validation (recorded by any multi-teacher student of the run)."""
    import json
    for m in sorted(run.glob(f"sweeps/*/*/{task}/students/multi_*/manifest.json")):
        temps = json.loads(m.read_text()).get("teacher_calibration_temperatures")
        if temps:
            return temps
    return {}


def teachers_table(task: TaskEval, temps: dict[str, float]) -> Table:
    """The teachers and what fusing them can give: accuracy on validation and eval, mean max probability at
    T = 1 and at the run's T (how flat the targets are), the calibration temperature, how often each is the
    lowest-entropy teacher (the one `best_per_sample` follows); then the fused targets themselves as
    classifiers (logit average, probability average, calibrated logit average, best_per_sample's pick with and
    without calibration) and the oracle."""
    from mtkd.analysis.confidence import softmax
    T = task.temperature
    teachers = task.teachers
    acc = lambda lg, y: 100.0 * float((lg.argmax(1) == y).mean())   # noqa: E731
    entropy = lambda lg: -(softmax(lg) * np.log(np.clip(softmax(lg), 1e-12, 1.0))).sum(1)   # noqa: E731

    def pick(split, calibrate=False):   # per example the lowest-entropy teacher's logits (first on ties)
        split = [lg / temps.get(m.method, 1.0) if calibrate else lg for lg, m in zip(split, teachers)]
        k = np.argmin([entropy(lg) for lg in split], axis=0)
        return np.stack(split)[k, np.arange(len(k))], k
    picked = np.bincount(pick([m.logits for m in teachers])[1], minlength=len(teachers)) / len(task.labels)
    rows = [[m.method, cell(acc(m.val_logits, task.val_labels)), cell(acc(m.logits, task.labels)),
             cell(float(softmax(m.logits).max(1).mean())), cell(float(softmax(m.logits, T).max(1).mean())),
             cell(temps.get(m.method)), cell(100.0 * float(share), 1)] for m, share in zip(teachers, picked)]
    fused = {
        "logit average of all": lambda split: np.mean([lg for lg in split], axis=0),
        "probability average of all": lambda split: np.log(np.mean([softmax(lg) for lg in split], axis=0)),
        "calibrated logit average of all": lambda split: np.mean([lg / temps.get(m.method, 1.0) for lg, m in zip(split, teachers)], axis=0),
        "lowest-entropy teacher per example (best_per_sample)": lambda split: pick(split)[0],
        "the same after calibration": lambda split: pick(split, calibrate=True)[0],
    }
    for name, f in fused.items():
        val, ev = f([m.val_logits for m in teachers]), f([m.logits for m in teachers])
        rows.append([name, cell(acc(val, task.val_labels)), cell(acc(ev, task.labels)),
                     cell(float(softmax(ev).max(1).mean())), cell(float(softmax(ev, T).max(1).mean())), "", ""])
    oracle = lambda split, y: 100.0 * float(np.any([lg.argmax(1) == y for lg in split], axis=0).mean())   # noqa: E731
    rows.append(["oracle (any teacher right)", cell(oracle([m.val_logits for m in teachers], task.val_labels)),
                 cell(oracle([m.logits for m in teachers], task.labels)), "", "", "", ""])
    return Table(["teacher / fused target", "validation acc (%)", "eval acc (%)", "mean max prob (T = 1)",
                  f"mean max prob (T = {T:g})", "calibration T", "lowest entropy on eval (% of examples)"], rows)


def targets_table(task: TaskEval, temps: dict[str, float]) -> Table | None:
    """What each fixed-target strategy teaches on the labelled training set, raw and calibrated: the target's
    accuracy against the gold labels, and its mean max probability at the run's T where all teachers' argmax
    agree (the easy examples) and where they do not. A target surer where the teachers disagree than where
    they agree inverts the confidence signal. None when the run kept no teacher train logits."""
    import torch
    from mtkd import fusion
    teachers = task.teachers
    if task.train_labels is None or any(m.method not in task.train_logits for m in teachers):
        return None
    z = torch.tensor(np.stack([task.train_logits[m.method] for m in teachers]), dtype=torch.float64)
    y = torch.as_tensor(task.train_labels)
    ctx = fusion.FusionContext(temperature=task.temperature, labels=y, labelled=torch.ones_like(y, dtype=torch.bool),
                               teacher_scores=torch.tensor([m.val_metric for m in teachers], dtype=torch.float64),
                               teacher_temperatures=torch.tensor([temps.get(m.method, 1.0) for m in teachers],
                                                                 dtype=torch.float64))
    preds = z.argmax(-1)
    agree = (preds == preds[0]).all(0)
    rows = []
    for name in ("average", "prob_average", "weighted", "best_per_sample", "entropy_weighted", "confidence_aware",
                 "agreement"):
        for calibrate in (False, True) if temps else (False,):
            q = fusion.as_fused(fusion.STRATEGIES[name](fusion.calibrated(z, ctx) if calibrate else z, ctx)).target
            top = q.max(-1).values
            surest = [float(top[m].mean()) if bool(m.any()) else math.nan for m in (agree, ~agree)]
            rows.append([name + (" (calibrated)" if calibrate else ""),
                         cell(100.0 * float((q.argmax(-1) == y).double().mean())),
                         cell(surest[0]), cell(surest[1]), cell(surest[1] - surest[0])])
    T = f"{task.temperature:g}"
    return Table(["strategy's target", "accuracy vs gold (%)",
                  f"mean max prob, all teachers agree ({100.0 * float(agree.double().mean()):.0f}%; T = {T})",
                  f"mean max prob, they disagree (T = {T})", "disagree − agree"], rows)


def targets_section(task: TaskEval, temps: dict[str, float]) -> list[str]:
    table = targets_table(task, temps)
    return [] if table is None else [
        "What the fixed-target strategies teach on the labelled training set (the teachers' train logits, "
        "out-of-fold for the cross-fitted ones; calibrated = each teacher's logits divided by its validation "
        "temperature first):", "", table.to_markdown()]


def cost_rows(run: Path, tasks: dict) -> list[list[str]]:
    task = next(iter(tasks.values())).name
    rows, seen = [], set()
    for what, folder, pattern in [("teachers (fit, cross-fit)", run / task, "teachers/*"),
                                  ("teacher logits (every split)", run / task, "logits/*"),
                                  ("no-KD students", run / task, "students/no_kd*")] + \
            [(f"students: {v}", p, "students/*") for v in tasks
             for p in sorted((run / "sweeps" / v.replace("+", "_")).glob("*/" + task))]:
        seconds, n = built_seconds(folder, pattern, seen)
        rows.append([what, str(n), f"{seconds / 60:.1f}"])
    return rows


def with_findings(lines: list[str], old: str) -> list[str]:
    """The page's new `lines` with the hand-written "## Findings" section of the `old` page (up to the next
    # or ## heading, or the end) put back before "## Every student": the tables are regenerated, the
    findings written from them are kept."""
    findings = FINDINGS.search(old)
    if not findings:
        return lines
    at = lines.index("## Every student")
    return [*lines[:at], findings.group(0).rstrip(), "", *lines[at:]]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--config", default=str(ROOT / "configs" / "quality_sst2.yaml"))
    ap.add_argument("--out", default=str(ROOT / "runs" / "quality_sst2"))
    ap.add_argument("--doc", default=str(ROOT / "docs" / "results-cpu.md"))
    ap.add_argument("--variants", default=",".join(VARIANTS), help=f"comma-separated, of: {', '.join(VARIANTS)}")
    ap.add_argument("--strategies", help="comma-separated (default: the config's)")
    ap.add_argument("--single-teachers", help="comma-separated teacher names for single-teacher students "
                    "(default: the config's distill.single_teacher, every teacher)")
    ap.add_argument("--report-only", action="store_true", help="run nothing: rewrite the page from the students "
                    "RUN has (e.g. while another call of this bench is training in RUN)")
    args = ap.parse_args()
    run = Path(args.out)
    from mtkd.config import load_config
    from mtkd.errors import MtkdError
    try:
        load_config(args.config)   # a missing or bad config: one line, before anything runs
    except MtkdError as e:
        sys.exit(f"error: {e}")
    cfg = yaml.safe_load(Path(args.config).read_text())
    strategies = args.strategies.split(",") if args.strategies else cfg["distill"]["strategies"]
    variants = args.variants.split(",")
    for v in variants:
        if v not in VARIANTS:
            sys.exit(f"error: unknown variant '{v}'; known: {', '.join(VARIANTS)}")
    base = ["train-baseline", args.config, "--out", str(run), "--recompute"]   # only stale stages are rebuilt
    if args.single_teachers:
        base.append(f"distill.single_teacher=[{args.single_teachers}]")

    def steps(variants: list[str]) -> list[tuple[str, list[str]]]:
        out = [("teachers, logits, no-KD students", base)]
        for v in variants:
            cmd = ["sweep", str(run), "--name", v.replace("+", "_"), "--recompute"]   # another strategy list: only new students
            for p in VARIANTS[v]:
                cmd += ["--param", p]
            if "distill.calibrate=true" in VARIANTS[v]:   # calibrated_average calibrates already; single-teacher
                cmd += ["--no-single", "--strategies", ",".join(s for s in strategies if s != "calibrated_average")]
            else:                                          # students are not re-run calibrated
                cmd += ["--strategies", ",".join(strategies)]
            out.append((f"students: {v}", cmd))
        return out
    if not args.report_only:
        run.mkdir(parents=True, exist_ok=True)
        with open(run / "quality_cpu.log", "a", encoding="utf-8") as log:
            for what, cmd in steps(variants):
                print(f"{what}: {run_mtkd(cmd, log) / 60:.1f} min", flush=True)
    seeds = cfg.get("seeds") or [cfg.get("seed", 42)]
    tasks = {}
    for v in VARIANTS:   # every variant run so far (this call's or an earlier one's)
        points = [p for p in sorted((run / "sweeps" / v.replace("+", "_")).glob("*/config.yaml"))
                  if eval_manifests(p.parent)]   # a variant whose students are not all evaluated yet is left out
        if points and (stale := stale_settings(run, points[0].parent)):
            print(f"variant {v} left out: it ran with other settings than {run}/config.yaml ({', '.join(stale)}); "
                  f"rerun it with --variants {v}", flush=True)
        elif points:
            tasks[v] = with_baseline(run, load_run(points[0].parent)[0], seeds)
    if not tasks:
        sys.exit(f"error: no variant in {run} has all its students evaluated yet; nothing to report")
    pool = merged(tasks)
    temps = calibration_temperatures(run, pool.name)
    sig_pool = significance.task_significance(pool)
    for r, p in zip(sig_pool["rows"], stats.holm([r["p_value"] for r in sig_pool["rows"]])):
        r["p_holm"] = p
    variants = list(tasks)
    default_config = args.config == ap.get_default("config")
    # the command that makes this page: the variants it reports (this call's and those run earlier in RUN)
    command = f"python bench/quality_cpu.py --out {args.out}" + ("" if default_config else f" --config {args.config}") + "".join(
        f" --{k.replace('_', '-')} {v}" for k, v in (("variants", ",".join(variants)), ("strategies", args.strategies),
                                                    ("single_teachers", args.single_teachers)) if v)
    commands = ["mtkd " + " ".join(cmd).replace(f"{ROOT}/", "") for _, cmd in steps(variants)]
    # the worst-slice tables on the selected models only: per variant its best single and best multi
    chosen = {m.method for m in pool.of_type("baseline")}
    for t in tasks.values():
        sel = gap.selection(t)
        v = next(k for k, x in tasks.items() if x is t)
        chosen |= {f"{sel[k].method} [{v}]" for k in ("single", "multi") if sel[k]}
    small = keep(pool, chosen)
    sel = gap.selection(pool)
    config = Path(args.config).resolve()
    config_name = config.relative_to(ROOT) if config.is_relative_to(ROOT) else config
    worst = slices.teacher_worst_table([small])
    worst.rows = [r for r in worst.rows if r[worst.columns.index("teacher's worst")] == "yes"]
    lines = [
        f"# Many voices vs one: {pool.name} on CPU",
        "",
        f"Measured by `{command}` "
        f"({machine_info()}); config `{config_name}`.",
        f"Seeds {', '.join(map(str, seeds))} for every student, on the same cached teachers. Eval: "
        f"{len(pool.labels)} examples, never used to select or fit anything; validation: {len(pool.val_labels)} "
        "examples carved from train (group-aware), which selects every \"best\" below.",
        "",
        "## Headline: best multi-teacher student vs best single-teacher student",
        "",
        "Per variant and over all variants pooled (the bests chosen on validation among all of them). "
        "Difference of the official metric (mean over seeds) on eval; paired bootstrap 95% CI over the eval "
        "examples with every seed; paired permutation p over the seeds. Gap closed = 100 (student − no-KD) / (best teacher − no-KD), "
        "the teacher and the no-KD student selected on validation, CI from the same bootstrap.",
        "",
        headline_rows(tasks, pool, sig_pool).to_markdown(),
        f"Best teacher (selected on validation): {sel['teacher'].method} {sel['teacher'].metric:.2f}; "
        f"no-KD student: {pm(seed_scores(pool, sel['baseline']))}.",
        "",
        "## The teachers, and what fusing them can give",
        "",
        "Accuracy in %; mean max prob on eval (how confident; at the run's T: how flat the KD targets are); "
        "calibration T: each teacher's temperature fitted on validation (what `calibrated_average` and "
        "`distill.calibrate` divide its logits by); lowest entropy: the share of eval examples on which the teacher "
        "is the most confident one (at T = 1), i.e. the teacher `best_per_sample` follows there. The fused rows "
        "score the fused target itself as a classifier: the most a fused target can teach beyond the best teacher.",
        "",
        teachers_table(pool, temps).to_markdown(),
        *targets_section(pool, temps),
        "## Every student",
        "",
        "Eval metric mean ± sd over seeds, (validation mean), gap closed % [95% CI]. "
        "plain = labelled train only; transfer = + the teacher-labelled transfer set (KD term only); "
        "calibrated = `distill.calibrate: true` (each teacher's temperature fitted on validation first); "
        "— = not run (single-teacher students are not re-run calibrated; calibrated_average is calibrated already).",
        "",
        students_table(pool, variants, sig_pool).to_markdown(),
        *effects_section(pool),
        "## Every multi-teacher student vs the best single-teacher student (all variants pooled)",
        "",
        "Holm-corrected over the rows of this table.",
        "",
        Table(["multi-teacher student", "val", "reference", "diff (pp)", "ci_low", "ci_high", "p", "p_holm"],
              [[r["method"], cell(r["method_validation"]), r["reference"], cell(r["diff_pp"]), cell(r["ci_low"]),
                cell(r["ci_high"]), cell(r["p_value"], 3), cell(r["p_holm"], 3)]
               for r in sorted(sig_pool["rows"], key=lambda r: -r["method_validation"])]).to_markdown(),
        "## At their worst",
        "",
        "Worst class and worst teacher-agreement region selected on validation, reported on eval; worst extra set "
        "(out-of-domain reviews: no validation, reported as measured). The no-KD student and each variant's "
        "validation-selected best single and best multi student.",
        "",
        slices.worst_slices_table([small]).to_markdown(),
        "Each teacher at its worst (the lowest of its worst class, worst region and worst extra set, by the "
        "selection score), and each of those students there: difference to the teacher, paired bootstrap 95% CI "
        "over the slice's examples (a student beats the teacher at its worst where ci_low > 0):",
        "",
        worst.to_markdown(),
        "## Wall time",
        "",
        "Seconds recorded by each stage when it was built (so a cached rerun reports the original cost); "
        "the commands, in order:",
        "",
        Table(["what", "stages", "minutes"], cost_rows(run, tasks)).to_markdown(),
        "\n".join(f"- `{c}`" for c in commands),
        "",
    ]
    not_run = [v for v in VARIANTS if v not in tasks]
    missing = [s for s in cfg["distill"]["strategies"] if s not in strategies]
    if not_run or missing:
        lines[lines.index("## Headline: best multi-teacher student vs best single-teacher student"):0] = [
            "**Not run here** (the cost on this machine is in the wall-time table): "
            + "; ".join(x for x in (f"variants {', '.join(not_run)}" if not_run else "",
                                    f"strategies {', '.join(missing)} of the config" if missing else "") if x) + ".", ""]
    from mtkd.io import atomic_write_text
    doc = Path(args.doc)
    old = doc.read_text(encoding="utf-8") if doc.is_file() else ""
    if FINDINGS.search(old):
        print(f"kept the hand-written Findings of {doc}: check them against the new tables", flush=True)
    atomic_write_text(doc, "\n".join(with_findings(lines, old)))   # a killed bench leaves the old page whole
    print(f"wrote {args.doc}")


if __name__ == "__main__":
    main()
