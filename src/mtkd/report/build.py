"""`build_report(RUN)`: RUN/report.md and a self-contained RUN/report.html.

The report opens with the answer: the question, the answer in two sentences, one row per task (the two
validation-selected students, their difference with its CI and Holm p, the verdict, gap closed, headroom) and a
forest plot of every strategy (mtkd.report.answer, mtkd.report.plots); a table of contents follows, then the
headroom, the findings, every analysis table with its plot before it, the sweeps, what the run contains, its
files and its config. Long tables, per-seed detail and the config are one click away (render.py).

It only reads RUN/analysis (written by `mtkd analyze`; `mtkd report` and `mtkd run` analyse first, visibly,
when it is missing or stale) and refuses in one line an analysis that is not current. A published folder that
kept its analysis but not the evaluation (no evidence/) is reported from the analysis as written, saying so.
The figures the report draws itself go to RUN/report_files/.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

from mtkd.analysis.load import eval_manifests, read_config, read_eval_manifest, task_name, transfer_lines
from mtkd.analysis.run import ANALYSIS_DIR, analysis_problem
from mtkd.errors import MtkdError
from mtkd.io import atomic_write_bytes, atomic_write_text
from mtkd.report import answer, plots
from mtkd.report.answer import _disagreement, verdict_lines   # noqa: F401  (the report's API, used by tests)
from mtkd.report.display import mean_sd, shown
from mtkd.report.render import md_to_html, to_html, to_markdown   # noqa: F401
from mtkd.report.sweep_section import sweep_blocks, sweep_folders   # noqa: F401
from mtkd.tables import Table, read_csv

FINDINGS = "findings.md"      # RUN/findings.md: hand-written findings, shown after the headroom
FILES_DIR = "report_files"    # RUN/report_files/: the figures the report draws (forest plot, sweep grids)
# the analysis tables in the order a reader follows them ("master" = results/master_results.csv); a table the
# analysis adds later and this list lacks follows them
ORDER = ["significance", "advantage", "master", "student_vs_teachers", "gap_closed", "steadiness", "agreement_regions", "agreement_accuracy",
         "failure_categories", "worst_slices", "students_at_teacher_worst", "teacher_ceilings",
         "teacher_pairwise_agreement", "teacher_confidence", "calibration", "ranking", "gate_weights"]
FIGURES = {"gap_closed": ["gap_analysis.png"], "agreement_accuracy": ["agreement_breakdown.png"],
           "failure_categories": ["failure_categories.png"], "ranking": ["ranking_heatmap.png"]}
SAME_AS_FIGURE = {"ranking"}   # tables whose numbers the plot above them shows: closed whatever their length
MASTER = ("Master results", "Official metrics on the eval split, in % (from results/master_results.csv; mean ± sample "
          "sd over seeds where a model was trained at several, AVG's sd that of each seed's mean over tasks); "
          "`<task>_ece`: expected calibration error of the eval predictions (%, 15 bins; lower is better; not part of "
          "AVG); AVG: the mean of the tasks' official metrics; transfer (when a task has a transfer set): the tasks "
          "whose transfer set the model learned from.")


def build_report(run_dir: Path) -> tuple[Path, Path]:
    """Write RUN/report.md and RUN/report.html from RUN/analysis (which must be current)."""
    run_dir = Path(run_dir)
    manifests = eval_manifests(run_dir)     # raises MtkdError if the run dir is missing
    analysis = run_dir / ANALYSIS_DIR
    published = not manifests and (analysis / "manifest.json").is_file()
    if not manifests and not published:
        raise MtkdError(f"no evaluated task in {run_dir}: no <task>/eval/manifest.json (run the evaluate stage first) "
                        f"and no evidence/<task>.json (a published folder's evidence) found")
    man = _analysis_manifest(analysis) if published else None
    problem = None if published else analysis_problem(run_dir)
    if problem:
        raise MtkdError(f"{problem}: run `mtkd analyze {run_dir}` first")
    saved: list[str] = []

    def save(name: str, png: bytes) -> str:
        atomic_write_bytes(run_dir / FILES_DIR / name, png)
        saved.append(name)
        return f"{FILES_DIR}/{name}"
    blocks = _blocks(run_dir, analysis, manifests, man, save)
    for old in (run_dir / FILES_DIR).glob("*.png"):   # figures of an earlier report that this one no longer draws
        if old.name not in saved:
            old.unlink()
    files = run_files(run_dir)
    md_path, html_path = run_dir / "report.md", run_dir / "report.html"
    atomic_write_text(md_path, to_markdown(blocks, files))
    atomic_write_text(html_path, to_html(blocks, run_dir, files))
    return md_path, html_path


def _analysis_manifest(analysis: Path) -> dict:
    try:
        man = json.loads((analysis / "manifest.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise MtkdError(f"{analysis / 'manifest.json'} is unreadable ({e})") from None
    gone = [f for f in man.get("outputs", {}) if not (analysis / f).is_file()]
    if gone:
        raise MtkdError(f"{analysis / gone[0]} is missing (a published analysis must keep every file it lists)")
    return man


# ---------------------------------------------------------------- content

def _blocks(run_dir: Path, analysis: Path, manifests: list[Path], published: dict | None, save) -> list[tuple]:
    man = published or json.loads((analysis / "manifest.json").read_text(encoding="utf-8"))
    success = json.loads((analysis / "success_metrics.json").read_text(encoding="utf-8"))
    sig = read_csv(analysis / "significance.csv")
    config = read_config(run_dir)
    name = config.get("name") or run_dir.name
    master = run_dir / "results" / "master_results.csv"
    master_table = read_csv(master) if master.is_file() else None
    seeds = _seeds(config)
    blocks = [("h1", f"mtkd report: {name}"), ("p", meta_line(success, master_table, seeds))]
    if published:
        blocks.append(("note", f"A published analysis (format {published.get('format', 1)}) without the evaluation "
                               f"it was computed from: its tables and plots are shown as they were written."))
    blocks += answer_blocks(analysis, sig, success, seeds, save)
    blocks += [("h2", "Contents"), ("toc",)]
    tables = {t["name"]: t for t in man.get("tables", [])}
    figures = {f["file"]: f for f in man.get("figures", [])}
    if success.get("headroom") and "headroom" in tables:   # what several teachers could teach, before any student
        blocks += [("h2", tables["headroom"]["title"]),
                   ("ul", [f"{task}: {h['reading']}" for task, h in success["headroom"].items()]),
                   ("p", tables["headroom"]["description"]), *_table(analysis, "headroom")]
    blocks += findings_blocks(run_dir)
    placed = {"headroom"}
    for key in ORDER + [t for t in tables if t not in ORDER]:
        if key == "master":
            blocks += [("h2", MASTER[0]), ("p", MASTER[1])]
            blocks += [*_table(run_dir, "master_results", mean_sd(master_table), "results")] if master_table \
                else [("p", "results/master_results.csv not found.")]
            continue
        if key not in tables or key in placed:
            continue
        placed.add(key)
        t = tables[key]
        blocks += [("h2", t["title"]), ("p", t["description"])]
        figs = FIGURES.get(key, []) if key != "calibration" else [f for f in figures if f.startswith("reliability_")]
        shown_figs = [(f"{ANALYSIS_DIR}/{f}", figures.pop(f)) for f in figs if f in figures]
        if key == "calibration" and shown_figs:
            blocks.append(("imgs", shown_figs))
        else:
            blocks += [("img", p, f) for p, f in shown_figs]
        blocks += _table(analysis, key, collapse=key in SAME_AS_FIGURE)
    if figures:
        blocks += [("h2", "Other figures")] + [("img", f"{ANALYSIS_DIR}/{f}", fig) for f, fig in figures.items()]
    blocks += sweep_blocks(run_dir, save)
    lines = coverage_lines(run_dir, manifests, config) if manifests else master_coverage(master_table, success)
    blocks += [("h2", "What this run contains"), ("ul", group_lines(lines))]
    blocks += files_blocks(run_dir, tables)
    cfg_path = run_dir / "config.yaml"
    cfg = cfg_path.read_text(encoding="utf-8", errors="replace") if cfg_path.is_file() else None
    blocks += [("h2", "Configuration (config.yaml)"),
               ("details", f"config.yaml, {len(cfg.splitlines())} lines", [("code", cfg)], "config.yaml")
               if cfg is not None else ("p", "config.yaml not found in the run directory.")]
    return blocks


def answer_blocks(analysis: Path, sig: Table, success: dict, seeds: list, save) -> list[tuple]:
    """The question, the answer, the summary table and the forest plot."""
    gap = read_csv(analysis / "gap_closed.csv") if (analysis / "gap_closed.csv").is_file() else None
    blocks = [("h2", "The answer"), ("p", f"**Question.** {answer.QUESTION}"),
              ("p", f"**Answer.** {answer.answer(sig, success, seeds)}")]
    summary = answer.summary_table(sig, success, gap)
    if summary.rows:
        path = save("forest.png", plots.forest(answer.forest_data(sig, success)))
        blocks += [("table", summary),
                   ("img", path, {"title": "Every strategy against the best single-teacher student",
                                  "caption": "Each multi-teacher strategy minus the validation-selected single-teacher "
                                             "student named in its panel (eval), with its 95% interval; the square is "
                                             "the strategy selected on validation (the table's row). From "
                                             "analysis/significance.csv."}),
                   ("note", "Differences in points (pp) of each task's official metric; [low, high]: paired bootstrap "
                            "95% interval over eval examples; Holm p: paired permutation test, Holm-corrected over "
                            "every strategy × task; a verdict says better or worse only where the interval excludes 0. "
                            "Gap closed = (student − baseline) / (best teacher − baseline), n/a where best teacher − "
                            "baseline has a CI not above 0"
                            + ("; headroom: the validation-selected teacher ensemble minus the best teacher, before "
                               "any student (next section)" if success.get("headroom") else "") + ".")]
    blocks.append(("details", "The verdicts in words", [("ul", verdict_lines(sig, success))], None))
    return blocks


def findings_blocks(run_dir: Path) -> list[tuple]:
    findings = run_dir / FINDINGS
    if not findings.is_file():   # hand-written from the numbers below; kept when the report is rebuilt
        return []
    try:
        text = findings.read_text(encoding="utf-8", errors="replace").replace("\r\n", "\n").strip()
    except OSError as e:
        raise MtkdError(f"cannot read {findings}: {e.strerror or e}") from None
    text = re.sub(r"\A#+ *Findings\b[^\n]*(\n+|\Z)", "", text)
    return [("h2", "Findings"), ("md", text)] if text else []


def _table(folder: Path, name: str, table: Table | None = None, sub: str = ANALYSIS_DIR,
           collapse: bool = False) -> list[tuple]:
    """A table as shown (display.shown), with its source CSV and a note of the columns it dropped."""
    table, notes = shown(table if table is not None else read_csv(folder / f"{name}.csv"), name)
    source = f"{sub}/{name}.csv"
    return [("table", table, source, collapse)] + ([("note", f"({'; '.join(notes)}; all columns: {source})")] if notes else [])


def meta_line(success: dict, master: Table | None, seeds: list) -> str:
    tasks = list(success.get("tasks", {}))
    parts = [f"{len(tasks)} task{'s' if len(tasks) != 1 else ''} ({', '.join(tasks)})"] if tasks else []
    if master is not None and "type" in master.columns:
        types = [r[master.columns.index("type")] for r in master.rows]
        n_t, n_s = types.count("teacher"), sum(t in ("baseline", "single", "multi") for t in types)
        parts += [f"{n_t} teacher{'s' if n_t != 1 else ''}", f"{n_s} student{'s' if n_s != 1 else ''}"]
    if seeds:
        parts.append(f"{len(seeds)} seed{'s' if len(seeds) != 1 else ''} ({', '.join(map(str, seeds))})")
    return " · ".join(parts) + ". Every \"best\" is selected on validation and reported on eval."


def _seeds(config: dict) -> list:
    seeds = config.get("seeds")
    if isinstance(seeds, list) and seeds:
        return seeds
    return [config["seed"]] if config.get("seed") is not None else []


def group_lines(lines: list[str]) -> list[str]:
    """`task: text` lines that say the same for several tasks, said once for all of them."""
    groups: dict[str, list[str]] = {}
    for line in lines:
        task, sep, rest = line.partition(": ")
        rest = rest.replace(f"{task}: ", "") if sep else line
        groups.setdefault(rest if sep else line, []).append(task if sep else "")
    return [(f"{', '.join(t)}: {rest}" if t[0] else rest) for rest, t in groups.items()]


def master_coverage(master: Table | None, success: dict) -> list[str]:
    """What a published folder without its evaluation contains, from results/master_results.csv."""
    if master is None or "type" not in master.columns:
        return [f"{t}: evaluated (this folder keeps no list of its models)." for t in success.get("tasks", {})]
    types = [r[master.columns.index("type")] for r in master.rows]
    has = (f"{types.count('teacher')} teachers, {types.count('baseline')} baseline, {types.count('single')} "
           f"single-teacher and {types.count('multi')} multi-teacher students (results/master_results.csv)")
    return [f"{t}: {has}." for t in success.get("tasks", {})]


def coverage_lines(run_dir: Path, manifests: list[Path], config: dict) -> list[str]:
    """One line per task: which models it has and which expected ones are missing.

    Expected (from config.yaml; defaults when absent): every configured teacher; the no-KD
    baseline unless distill.baseline is false; one single-teacher student per teacher unless
    distill.single_teacher is false; one multi-teacher student per distill.strategies entry
    when there are at least 2 teachers (any one when the config does not list strategies)."""
    distill = config.get("distill") or {}
    cfg_teachers = [t.get("name") for t in config.get("teachers") or [] if isinstance(t, dict) and t.get("name")]
    strategies = distill.get("strategies")
    lines, evaluated = [], set()
    for p in manifests:
        man = read_eval_manifest(p)
        models = man.get("models", [])
        by_type = {k: [m for m in models if m.get("type") == k] for k in ("teacher", "baseline", "single", "multi")}
        teachers = [m["method"] for m in by_type["teacher"]]
        expected_teachers = cfg_teachers or man.get("teachers") or teachers
        missing = [f"teacher {t}" for t in expected_teachers if t not in teachers]
        if distill.get("baseline", True) and not by_type["baseline"]:
            missing.append("no-KD baseline")
        single = distill.get("single_teacher", True)
        if single:
            covered = {tuple(m.get("teachers") or []) for m in by_type["single"]}
            missing += [f"single-teacher student for {t}" for t in expected_teachers
                        if (t,) not in covered and (single is True or t in single)]
        if len(expected_teachers) >= 2:
            have = {m.get("strategy") or m["method"] for m in by_type["multi"]}
            if strategies:
                missing += [f"multi-teacher student '{s}'" for s in strategies
                            if s not in have and not any(s in m["method"] for m in by_type["multi"])]
            elif not by_type["multi"]:
                missing.append("any multi-teacher student")
        n_base = len(by_type["baseline"])
        has = (f"{len(teachers)} teacher{'s' if len(teachers) != 1 else ''}, {n_base} baseline{'s' if n_base != 1 else ''}, "
               f"{len(by_type['single'])} single-teacher and {len(by_type['multi'])} multi-teacher students")
        task = task_name(p, man)
        evaluated.add(task)
        lines.append(f"{task}: {has}; " + (f"missing: {', '.join(missing)}." if missing else "nothing missing."))
        lines += transfer_lines(man)
        if man.get("extra_eval"):
            sets = ", ".join(f"{k} ({v['size']} examples)" for k, v in man["extra_eval"].items())
            lines.append(f"{task}: every model is also evaluated on the extra eval set(s) {sets} "
                         f"({task}/eval/manifest.json: extra_files, extra_metrics).")
    for t in config.get("tasks") or []:
        name = t if isinstance(t, str) else (t or {}).get("name") if isinstance(t, dict) else None
        if name and name not in evaluated:
            lines.append(f"{name}: not evaluated (no {name}/eval/manifest.json); it is absent from every table.")
    return lines


# ---------------------------------------------------------------- files

def run_files(run_dir: Path) -> set[str]:
    """The files a reader may open, relative to RUN: its top level, results/, analysis/, evidence/, report_files/
    and the sweeps' files (a name in the report's text that is one of them becomes a link)."""
    out = set()
    for pattern in ("*", "results/*", f"{ANALYSIS_DIR}/*", "evidence/*", f"{FILES_DIR}/*"):
        out |= {p.relative_to(run_dir).as_posix() for p in run_dir.glob(pattern) if p.is_file()}
    for folder in sweep_folders(run_dir):
        out |= {p.relative_to(run_dir).as_posix() for p in folder.glob("*") if p.is_file()}
    return out - {"report.md", "report.html"}


def files_blocks(run_dir: Path, tables: dict) -> list[tuple]:
    """Links to every table's CSV (titled); the files the text names are links where they are named."""
    lines = [f"[{t['title']}]({ANALYSIS_DIR}/{n}.csv)" for n, t in tables.items()
             if (run_dir / ANALYSIS_DIR / f"{n}.csv").is_file()]
    if (run_dir / "results" / "master_results.csv").is_file():
        lines.insert(0, "[Master results](results/master_results.csv)")
    return [("h2", "Files"), ("p", "Every table as CSV (a Markdown copy beside each):"), ("ul", lines)]
