"""`build_report(RUN)`: RUN/report.md and a self-contained RUN/report.html.

The report is a list of blocks (heading, paragraph, list, code, table, image) rendered
twice, once as Markdown and once as HTML, so both always say the same thing. It only reads
RUN/analysis/ (written by `mtkd analyze`; `mtkd report` and `mtkd run` analyse first, visibly,
when it is missing or stale) and refuses in one line an analysis that is not current. Its
verdict per task comes from analysis/significance.csv (the paired bootstrap CI of the best
multi- vs the best single-teacher student, both selected on validation), never canned.
"""
from __future__ import annotations

import base64
import csv
import html
import json
import re
from pathlib import Path

from mtkd.analysis.gap import verdict
from mtkd.analysis.load import eval_manifests, read_config, read_eval_manifest, task_name, transfer_lines
from mtkd.analysis.run import analysis_problem
from mtkd.errors import MtkdError
from mtkd.io import atomic_write_text
from mtkd.tables import Table, read_csv

FINDINGS = "findings.md"   # RUN/findings.md: hand-written findings, shown after the verdict
CSS = ("body{font-family:sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}"
       "table{border-collapse:collapse;margin:.5em 0 1.5em;font-size:13px}"
       "th,td{border:1px solid #bbb;padding:3px 8px;text-align:left}th{background:#eee}"
       "pre{background:#f6f6f6;padding:1em;overflow-x:auto;font-size:12px}"
       "img{max-width:100%;border:1px solid #ddd}.caption{color:#555;font-size:13px}")


def build_report(run_dir: Path) -> tuple[Path, Path]:
    """Write RUN/report.md and RUN/report.html from RUN/analysis (which must be current)."""
    run_dir = Path(run_dir)
    manifests = eval_manifests(run_dir)     # raises MtkdError if the run dir is missing
    if not manifests:
        raise MtkdError(f"no evaluated task in {run_dir}: no <task>/eval/manifest.json (run the evaluate stage first) "
                        f"and no evidence/<task>.json (a published folder's evidence) found")
    problem = analysis_problem(run_dir)
    if problem:
        raise MtkdError(f"{problem}: run `mtkd analyze {run_dir}` first")
    blocks = _blocks(run_dir, run_dir / "analysis", manifests)
    md_path, html_path = run_dir / "report.md", run_dir / "report.html"
    atomic_write_text(md_path, to_markdown(blocks))
    atomic_write_text(html_path, to_html(blocks, run_dir))
    return md_path, html_path


# ---------------------------------------------------------------- content

def _blocks(run_dir: Path, analysis: Path, manifests: list[Path]) -> list[tuple]:
    man = json.loads((analysis / "manifest.json").read_text(encoding="utf-8"))
    success = json.loads((analysis / "success_metrics.json").read_text(encoding="utf-8"))
    sig = read_csv(analysis / "significance.csv")
    config = read_config(run_dir)
    name = config.get("name") or run_dir.name
    blocks = [("h1", f"mtkd report: {name}")]
    tables = {t["name"]: t for t in man.get("tables", [])}
    if success.get("headroom") and "headroom" in tables:   # what several teachers could teach, before any student
        blocks += [("h2", tables["headroom"]["title"]),
                   ("ul", [f"{task}: {h['reading']}" for task, h in success["headroom"].items()]),
                   ("p", tables["headroom"]["description"]),
                   ("table", read_csv(analysis / "headroom.csv"))]
    blocks += [("h2", "Verdict"), ("ul", verdict_lines(sig, success))]
    findings = run_dir / FINDINGS
    if findings.is_file():   # hand-written from the numbers below; kept when the report is rebuilt
        try:
            text = findings.read_text(encoding="utf-8", errors="replace").replace("\r\n", "\n").strip()
        except OSError as e:
            raise MtkdError(f"cannot read {findings}: {e.strerror or e}") from None
        text = re.sub(r"\A#+ *Findings\b[^\n]*(\n+|\Z)", "", text)
        if text:
            blocks += [("h2", "Findings"), ("md", text)]
    blocks += [("h2", "What this run contains"), ("ul", coverage_lines(run_dir, manifests, config)),
               ("h2", "Master results"),
               ("p", "Official metrics on the eval split, in % (from results/master_results.csv; mean ± sample sd over "
                     "seeds where a model was trained at several, AVG's sd that of each seed's mean over tasks); "
                     "<task>_ece: expected "
                     "calibration error of the eval predictions (%, 15 bins; lower is better; not part of AVG); transfer "
                     "(when a task has a transfer set): the tasks whose transfer set the model learned from.")]
    master = run_dir / "results" / "master_results.csv"
    blocks.append(("table", mean_sd(read_csv(master))) if master.is_file() else ("p", "results/master_results.csv not found."))
    figures = {f["file"]: f for f in man.get("figures", [])}
    after = {"gap_closed": ["gap_analysis.png"], "ranking": ["ranking_heatmap.png"],
             "agreement_accuracy": ["agreement_breakdown.png"], "failure_categories": ["failure_categories.png"],
             "calibration": sorted(f for f in figures if f.startswith("reliability_"))}
    for t in man.get("tables", []):
        if t["name"] == "headroom":   # it opens the report
            continue
        blocks += [("h2", t["title"]), ("p", t["description"]),
                   ("table", read_csv(analysis / f"{t['name']}.csv"))]
        for f in after.get(t["name"], []):
            if f in figures:
                blocks.append(("img", f"analysis/{f}", figures.pop(f)))
    blocks += [("img", f"analysis/{f}", fig) for f, fig in figures.items()]
    blocks += sweep_blocks(run_dir)
    cfg_path = run_dir / "config.yaml"
    cfg_text = cfg_path.read_text(encoding="utf-8", errors="replace") if cfg_path.is_file() else None
    blocks += [("h2", "Configuration (config.yaml)"),
               ("code", cfg_text) if cfg_text is not None else ("p", "config.yaml not found in the run directory.")]
    return blocks


def mean_sd(table: Table) -> Table:
    """The master table with each `<column>_sd` folded into its column as "mean ± sd" (a model of one seed,
    e.g. a teacher trained once, keeps its plain mean)."""
    cols = table.columns
    keep = [c for c in cols if not (c.endswith("_sd") and c[:-3] in cols)]

    def value(row: dict, c: str) -> str:
        sd = row.get(f"{c}_sd", "") if f"{c}_sd" in cols else ""
        return f"{row[c]} ± {sd}" if sd and row[c] else row[c]
    rows = [dict(zip(cols, r)) for r in table.rows]
    return Table(keep, [[value(r, c) for c in keep] for r in rows])


def sweep_folders(run_dir: Path) -> list[Path]:
    """RUN/sweeps/*, and the sweeps of a run folder directly inside RUN (one holding run.json, e.g. a sweep
    base with some of its tasks)."""
    def runs():
        yield run_dir
        for d in sorted(run_dir.iterdir()):
            try:
                if d.is_dir() and (d / "run.json").is_file():
                    yield d
            except OSError:   # an unreadable folder is no run
                continue
    out = []
    for base in runs():
        try:
            out += [f for f in sorted((base / "sweeps").glob("*")) if (f / "sweep.json").is_file()]
        except OSError:
            continue
    return out


SWEEP_TABLES = ("seed_summary.csv", "best.csv", "best_per_task.csv", "sweep_results.csv")


def sweep_blocks(run_dir: Path) -> list[tuple]:
    """One section per finished sweep: what it varied, its best point per method (selected on validation),
    the seed statistics where it has them, every point's results and its plots (the files its sweep.json lists
    as outputs). A sweep whose files cannot be read is left out, saying so."""
    blocks = []
    for folder in sweep_folders(run_dir):
        rel = folder.relative_to(run_dir).as_posix()
        try:
            blocks += _sweep_section(folder, rel)
        except (OSError, ValueError, TypeError, AttributeError, KeyError, csv.Error) as e:
            blocks += [("h2", f"Sweep {rel}"), ("p", f"{rel} is unreadable ({type(e).__name__}: {e}): sweep left out.")]
    return blocks


def _sweep_section(folder: Path, rel: str) -> list[tuple]:
    info = json.loads((folder / "sweep.json").read_text(encoding="utf-8"))
    params = info["params"]
    outputs = [str(o) for o in info.get("outputs", [])]
    command = "mtkd seeds" if list(params) == ["seed"] else "mtkd sweep"
    base = Path(str(info.get("base_run") or "")).resolve().name or "?"
    blocks = [("h2", f"Sweep {rel}"),
              ("p", f"`{command}` of the run {base}: "
                    + "; ".join(f"{k} = {', '.join(map(str, v))}" for k, v in params.items())
                    + f". Tables and plots from {rel}/ (rerun `mtkd report` after a sweep to refresh this section).")]
    if info.get("summary"):
        blocks.append(("ul", [str(line).removeprefix("- ").replace("**", "") for line in info["summary"]]))
    tables = [name for name in SWEEP_TABLES if name in outputs and (folder / name).is_file()]
    if "best.md" in outputs and "best.csv" not in tables and (folder / "best.md").is_file():   # an older sweep
        best = (folder / "best.md").read_text(encoding="utf-8")
        blocks.append(("md", re.sub(r"\A# [^\n]*\n+", "", best)))
    blocks += [("table", read_csv(folder / name)) for name in tables]
    for png in (o for o in outputs if o.endswith(".png")):
        if (folder / png).is_file():
            (folder / png).read_bytes()   # unreadable: the whole sweep is left out, not the report
            blocks.append(("img", f"{rel}/{png}", {"title": f"{rel}: {Path(png).stem}", "caption": f"From {rel}/{png}."}))
    return blocks


def verdict_lines(sig: Table, s: dict) -> list[str]:
    """Sentences computed from significance.csv (its selected rows) and success_metrics.json (the verdicts, from
    the unrounded CIs: a CI of (0.003, 1.2) is above 0 though the CSV shows 0.00)."""
    rows = [dict(zip(sig.columns, r)) for r in sig.rows]
    heads = [r for r in rows if r["selected"] == "true" and r["task"] != "AVG"]
    tasks = s["tasks"]
    lines = []
    if not heads:
        lines.append("The multi-teacher advantage cannot be computed: no task has both single- and multi-teacher "
                     "students with validation metrics.")
    else:
        verdicts = [tasks.get(r["task"], {}).get("verdict") or verdict(_float(r["ci_low"]), _float(r["ci_high"]))
                    for r in heads]
        n = len(heads)
        better, worse = verdicts.count("multi-teacher better"), verdicts.count("multi-teacher worse")
        lines.append(f"Best multi-teacher vs best single-teacher student (both selected on validation, compared on "
                     f"eval): better on {better}, worse on {worse}, no significant difference on {n - better - worse} "
                     f"of {n} task{'s' if n != 1 else ''} (paired bootstrap 95% CI over eval examples, pooled over "
                     f"seeds; better or worse only when the CI excludes 0).")
        for r, v in zip(heads, verdicts):
            lines.append(f"{r['task']}: {v}. {r['method']} − {r['reference']} = {float(r['diff_pp']):+.2f} pp "
                         f"{tasks.get(r['task'], {}).get('metric', '')} on eval, 95% CI [{r['ci_low']}, {r['ci_high']}]; "
                         f"paired permutation p = {r['p_value']} (Holm-corrected {r['p_holm']}, {r['seeds']} seed(s))"
                         f"{_disagreement(v, _float(r['p_value']))}.")
        avg = next((r for r in rows if r["task"] == "AVG"), None)
        if avg:
            v = s.get("average_verdict") or verdict(_float(avg["ci_low"]), _float(avg["ci_high"]))
            lines.append(f"Average over tasks: {v}. "
                         f"{float(avg['diff_pp']):+.2f} pp, 95% CI [{avg['ci_low']}, {avg['ci_high']}] "
                         f"(each task resampled independently; no permutation test for an average).")
    missing = [t for t in tasks if t not in {r["task"] for r in heads}]
    if missing:
        lines.append(f"Advantage not computed for {', '.join(missing)} (single- or multi-teacher students, or their validation metrics, missing).")
    gaps = {t: v["best_student"] for t, v in tasks.items() if v["best_student"]["gap_closed_pct"] is not None}
    if gaps:
        per = ", ".join(f"{t} {g['gap_closed_pct']:.0f}%{_ci(g['gap_closed_ci_pct'])} ({g['method']})"
                        for t, g in gaps.items())
        lines.append(f"The best student (selected on validation) closes on average "
                     f"{s['average_gap_closed_by_best_student_pct']:.0f}%{_ci(s.get('average_gap_closed_ci_pct'))} "
                     f"of the gap between the no-KD baseline and "
                     f"the best teacher (selected on validation) on eval: {per}.")
    else:
        lines.append("Gap closed cannot be computed: a baseline, a teacher or a KD student is missing on every task.")
    return lines


def _disagreement(verdict_: str, p: float) -> str:
    """The words for a CI and a p-value that point different ways (the verdict follows the CI)."""
    if verdict_ == "no significant difference" and p < 0.05:
        return ("; the test's p is below 0.05 but the interval contains 0: not significant by the verdict's rule "
                "(the interval decides)")
    if verdict_ in ("multi-teacher better", "multi-teacher worse") and p > 0.05:
        return "; the interval excludes 0 but the test's p is above 0.05: a borderline difference"
    return ""


def _float(x: str) -> float:
    try:
        return float(x)
    except ValueError:   # n/a
        return float("nan")


def _ci(ci) -> str:
    return "" if not ci or ci[0] is None else f" (95% CI {ci[0]:.0f} to {ci[1]:.0f}%)"


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


# ---------------------------------------------------------------- rendering

def to_markdown(blocks: list[tuple]) -> str:
    out = []
    for kind, *rest in blocks:
        if kind in ("h1", "h2"):
            out.append(("# " if kind == "h1" else "## ") + rest[0])
        elif kind in ("p", "md"):
            out.append(rest[0])
        elif kind == "ul":
            out.append("\n".join(f"- {line}" for line in rest[0]))
        elif kind == "code":
            fence = "````" if "```" in rest[0] else "```"
            out.append(f"{fence}yaml\n{rest[0].rstrip()}\n{fence}")
        elif kind == "table":
            out.append(rest[0].to_markdown().rstrip() if rest[0].columns else "(empty table)")
        elif kind == "img":
            path, fig = rest
            link = f"<{path}>" if re.search(r"[\s()<>]", path) else path   # a folder name with spaces
            out.append(f"![{fig['title']}]({link})\n\n*{fig['title']}.* {fig['caption']}")
    return "\n\n".join(out) + "\n"


def md_to_html(text: str) -> str:
    """The small Markdown subset of a hand-written findings file: `#` headings (one to six, then a space),
    `- ` list items (indented lines continue an item), pipe tables (`| a | b |`, a `|---|` rule after the
    header; `\\|` is a pipe inside a cell), paragraphs, `code`, **bold** and [links](url); anything else is text."""
    def link(m: re.Match) -> str:   # a relative path or a web / mail address; any other scheme stays text
        scheme = re.match(r"([a-zA-Z][\w+.-]*):", html.unescape(m.group(2)))
        return m.group(0) if scheme and scheme.group(1).lower() not in ("http", "https", "mailto") \
            else f'<a href="{m.group(2)}">{m.group(1)}</a>'

    def inline(s: str) -> str:
        parts = re.split(r"(`[^`]+`)", s)   # code spans first: nothing inside them is bold or a link
        return "".join(f"<code>{html.escape(p[1:-1])}</code>" if p.startswith("`") and p.endswith("`") and len(p) > 1
                       else re.sub(r"\[([^\]]+)\]\(([^)\s]+)\)", link,
                                   re.sub(r"\*\*([^*]+)\*\*", r"<b>\1</b>", html.escape(p))) for p in parts)
    out, para, items, rows = [], [], [], []

    def cells(line: str) -> list[str]:   # as in GitHub's tables, `\|` is a pipe inside a cell (code spans too)
        line = re.sub(r"^\||(?<!\\)\|$", "", line.strip())
        return [c.strip().replace("\\|", "|") for c in re.split(r"(?<!\\)\|", line)]

    def flush():
        if para:
            out.append(f"<p>{inline(' '.join(para))}</p>")
            para.clear()
        if items:
            out.append("<ul>" + "".join(f"<li>{inline(i)}</li>" for i in items) + "</ul>")
            items.clear()
        if rows:
            rule = len(rows) > 1 and all(re.fullmatch(r":?-+:?", c) for c in cells(rows[1]))
            head, body = (rows[0], rows[2:]) if rule else (None, rows)
            out.append("<table>" + (f"<tr>{''.join(f'<th>{inline(c)}</th>' for c in cells(head))}</tr>" if head else "")
                       + "".join(f"<tr>{''.join(f'<td>{inline(c)}</td>' for c in cells(r))}</tr>" for r in body)
                       + "</table>")
            rows.clear()
    for line in text.replace("\r\n", "\n").split("\n"):
        heading = re.match(r"(#{1,6}) +(.*)", line)
        if not line.strip():
            flush()
        elif heading:
            flush()
            out.append(f"<h3>{inline(heading.group(2).strip())}</h3>")
        elif line.lstrip().startswith("|"):
            if para or items:
                flush()
            rows.append(line)
        elif line.startswith(("- ", "* ")):
            if para or rows:
                flush()
            items.append(line[2:].strip())
        elif items and line.startswith(" "):
            items[-1] += " " + line.strip()
        else:
            if items or rows:
                flush()
            para.append(line.strip())
    flush()
    return "\n".join(out)


def to_html(blocks: list[tuple], run_dir: Path) -> str:
    e = html.escape
    body = []
    for kind, *rest in blocks:
        if kind in ("h1", "h2"):
            body.append(f"<{kind}>{e(rest[0])}</{kind}>")
        elif kind == "p":
            body.append(f"<p>{e(rest[0])}</p>")
        elif kind == "md":
            body.append(md_to_html(rest[0]))
        elif kind == "ul":
            body.append("<ul>" + "".join(f"<li>{e(line)}</li>" for line in rest[0]) + "</ul>")
        elif kind == "code":
            body.append(f"<pre><code>{e(rest[0])}</code></pre>")
        elif kind == "table":
            table: Table = rest[0]
            body.append(table.to_html() if table.columns else "<p>(empty table)</p>")
        elif kind == "img":
            path, fig = rest
            data = base64.b64encode((run_dir / path).read_bytes()).decode("ascii")
            body.append(f'<figure><img src="data:image/png;base64,{data}" alt="{e(fig["title"])}">'
                        f'<figcaption class="caption"><b>{e(fig["title"])}.</b> {e(fig["caption"])}</figcaption></figure>')
    title = e(blocks[0][1]) if blocks and blocks[0][0] == "h1" else "mtkd report"
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{title}</title>'
            f"<style>{CSS}</style></head>\n<body>\n" + "\n".join(body) + "\n</body></html>\n")
