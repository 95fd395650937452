"""The report's opening: the question, its answer in two sentences, the per-task summary table and the data of
the forest plot, all computed from analysis/significance.csv and success_metrics.json (never canned).

Every difference is best multi − best single, both selected on validation and compared on eval, in points of
the task's official metric, with its paired bootstrap 95% interval written [low, high]; a verdict says better or
worse only where that interval excludes 0.
"""
from __future__ import annotations

from mtkd.analysis.gap import DUPLICATE_OF, verdict
from mtkd.report.display import ci_text, num
from mtkd.tables import NA, Table

QUESTION = ("Does a student distilled from several teachers beat one distilled from the best single teacher "
            "(both selected on validation, compared on eval)?")
METRIC_NAMES = {"f1": "F1", "accuracy": "accuracy", "mcc": "MCC"}


def unit(metric: str) -> str:
    return f"pp {METRIC_NAMES.get(metric, metric)}"


def _metrics(success: dict) -> list[str]:
    return list(dict.fromkeys(METRIC_NAMES.get(t["metric"], t["metric"]) for t in success["tasks"].values()))


def avg_unit(success: dict) -> str:
    """AVG's unit: pp of the one metric all tasks share, else points of a mean of different metrics."""
    m = _metrics(success)
    return f"pp {m[0]}" if len(m) == 1 else f"points (a mean of {_join(m)} differences)"


def avg_metric(success: dict) -> str:
    m = _metrics(success)
    return m[0] if len(m) == 1 else f"mean of {', '.join(m)}"


def selected_rows(sig: Table) -> list[dict]:
    rows = [dict(zip(sig.columns, r)) for r in sig.rows]
    return [r for r in rows if r.get("selected") == "true" and r["task"] != "AVG"]


def twin(sig: Table, row: dict) -> str:
    """The student `row`'s student trains exactly as (gap.DUPLICATE_OF), when that one is in the same task."""
    if row.get("duplicate_of"):
        return row["duplicate_of"]
    other = DUPLICATE_OF.get(row["method"])
    return other if other and any(r[0] == row["task"] and r[1] == other for r in sig.rows) else ""


def _verdict(success: dict, row: dict) -> str:
    return success["tasks"].get(row["task"], {}).get("verdict") or verdict(_float(row["ci_low"]), _float(row["ci_high"]))


def _holm_fails(success: dict, row: dict) -> bool:
    """The row's interval excludes 0 (better / worse) but its Holm-corrected p is 0.05 or more: a difference
    that does not survive counting every strategy × task comparison."""
    p = _float(row.get("p_holm"))
    return _verdict(success, row) in ("multi-teacher better", "multi-teacher worse") and p == p and p >= 0.05


def answer(sig: Table, success: dict, seeds: list) -> str:
    """The answer to QUESTION in two sentences (three where a difference does not survive Holm)."""
    heads = selected_rows(sig)
    if not heads:
        return ("This run cannot answer it: no task has both single- and multi-teacher students with validation "
                "metrics. " + seeds_sentence(seeds))
    by = {"multi-teacher better": [], "multi-teacher worse": [], "no significant difference": [], "n/a": []}
    for r in heads:
        by.setdefault(_verdict(success, r), []).append(r)
    better, worse, level = by["multi-teacher better"], by["multi-teacher worse"], by["no significant difference"]
    n = len(heads)
    lead = ("Yes" if len(better) == n else "Partly" if better and not worse else "It depends on the task" if better
            else "No")

    def named(rows):
        return _join([f"{r['task']} ({num(r['diff_pp'], 2, True)} {unit(success['tasks'][r['task']]['metric'])} "
                      f"{ci_text(r['ci_low'], r['ci_high'])}, Holm p {r['p_holm']})" for r in rows])
    if n == 1:
        r = heads[0]
        how = {"multi-teacher better": "better than", "multi-teacher worse": "worse than"}.get(
            _verdict(success, r), "not significantly different from")
        first = (f"{lead}: on {r['task']} the best multi-teacher student is {how} the best single-teacher student "
                 f"({num(r['diff_pp'], 2, True)} {unit(success['tasks'][r['task']]['metric'])} "
                 f"{ci_text(r['ci_low'], r['ci_high'])}, Holm p {r['p_holm']}).")
        return f"{first} {seeds_sentence(seeds)}"
    clauses = [f"better on {named(better)}" if better else "better on no task"]
    if worse:
        clauses.append(f"worse on {named(worse)}")
    if level:
        clauses.append(f"not significantly different on {_join([r['task'] for r in level])}")
    joined = " and ".join(clauses) if len(clauses) < 3 else ", ".join(clauses[:-1]) + ", and " + clauses[-1]
    first = (f"{lead}: the best multi-teacher student is {joined} "
             f"({n} task{'s' if n != 1 else ''} compared).")
    weak = [r["task"] for r in better + worse if _holm_fails(success, r)]
    if weak:
        first += (f" Counting every strategy × task comparison (Holm), the difference on {_join(weak)} is not "
                  f"significant.")
    avg = next((dict(zip(sig.columns, r)) for r in sig.rows if r[0] == "AVG"), None)
    if avg:
        v = success.get("average_verdict") or verdict(_float(avg["ci_low"]), _float(avg["ci_high"]))
        second = (f"Averaged over the tasks the difference is {num(avg['diff_pp'], 2, True)} {avg_unit(success)} "
                  f"{ci_text(avg['ci_low'], avg['ci_high'])}: {v}; " + seeds_sentence(seeds, lower=True))
    else:
        second = seeds_sentence(seeds)
    return f"{first} {second}"


def seeds_sentence(seeds: list, lower: bool = False) -> str:
    if len(seeds) == 1:
        s = f"one seed ({seeds[0]}): the intervals cover the eval examples, not seed-to-seed variation."
        s = s[0].upper() + s[1:]
    elif seeds:
        s = (f"{len(seeds)} seeds ({', '.join(map(str, seeds))}): each interval resamples the eval examples with "
             f"the metric averaged over the seeds.")
    else:
        s = "The run's seeds are not recorded in this folder."
    return s[0].lower() + s[1:] if lower else s


def summary_table(sig: Table, success: dict, gap: Table | None) -> Table:
    """One row per compared task (and AVG): the two validation-selected students, their difference with its CI,
    Holm p, verdict, gap closed by the best student and, where measured, the headroom (ensemble − best teacher)."""
    heads = {r["task"]: r for r in selected_rows(sig)}
    tasks = success["tasks"]
    rooms = success.get("headroom") or {}
    gap_rows = {} if gap is None else {(r[0], r[1]): dict(zip(gap.columns, r)) for r in gap.rows}
    cols = ["task", "metric", "best single (eval %)", "best multi (eval %)", "multi − single, pp [95% CI]",
            "Holm p", "verdict", "gap closed by the best student, % [95% CI]"]
    if rooms:
        cols.append("headroom: ensemble − best teacher, pp [95% CI]")
    rows = []
    for task, s in tasks.items():
        r = heads.get(task)
        if r is None:
            continue
        student = s.get("best_student") or {}
        g = gap_rows.get((task, student.get("method")), {})
        ci = student.get("gap_closed_ci_pct") or [g.get("ci_low"), g.get("ci_high")]
        closed = (f"{num(student.get('gap_closed_pct'), 0)} {ci_text(*ci, digits=0, sign=False)} "
                  f"({student.get('method')})" if student.get("gap_closed_pct") is not None else _no_gap(s))
        row = [task, METRIC_NAMES.get(s["metric"], s["metric"]),
               f"{s['best_single']['method']} {num(s['best_single']['value'])}",
               f"{s['best_multi']['method']} {num(s['best_multi']['value'])}"
               + (f" (trains as {twin(sig, r)})" if twin(sig, r) else ""),
               f"{num(r['diff_pp'], 2, True)} {ci_text(r['ci_low'], r['ci_high'])}", r["p_holm"],
               _verdict(success, r) + (" (not after Holm)" if _holm_fails(success, r) else ""), closed]
        if rooms:
            h = rooms.get(task)
            row.append(f"{num(h['diff_pp'], 2, True)} {ci_text(*h['ci_pp'])} ({h['ensemble']})" if h else NA)
        rows.append(row)
    avg = next((dict(zip(sig.columns, r)) for r in sig.rows if r[0] == "AVG"), None)
    if avg and rows:
        mean = lambda key: sum(tasks[t][key]["value"] for t in heads) / len(heads)   # noqa: E731
        gap_avg = success.get("average_gap_closed_by_best_student_pct")
        row = ["AVG", avg_metric(success), num(mean("best_single")), num(mean("best_multi")),
               f"{num(avg['diff_pp'], 2, True)} {ci_text(avg['ci_low'], avg['ci_high'])}", "— (not in Holm)",
               success.get("average_verdict") or verdict(_float(avg["ci_low"]), _float(avg["ci_high"])),
               f"{num(gap_avg, 0)} {ci_text(*(success.get('average_gap_closed_ci_pct') or [None, None]), digits=0, sign=False)}"
               if gap_avg is not None else NA]
        rows.append(row + ([""] if rooms else []))
    return Table(cols, rows)


def forest_data(sig: Table, success: dict) -> list[dict]:
    """Per task (run order): every multi-teacher strategy's difference from the selected single-teacher student,
    its CI, whether it is the validation-selected one and whether it trains exactly as another (duplicate)."""
    rows = [dict(zip(sig.columns, r)) for r in sig.rows if r[0] != "AVG"]
    out = []
    for task in dict.fromkeys(r["task"] for r in rows):
        mine = [r for r in rows if r["task"] == task]
        out.append({"task": task, "metric": success["tasks"].get(task, {}).get("metric", ""),
                    "reference": mine[0]["reference"],
                    "rows": [(r["method"], _float(r["diff_pp"]), _float(r["ci_low"]), _float(r["ci_high"]),
                              r.get("selected") == "true",
                              twin(sig, r)) for r in mine]})
    return out


def verdict_lines(sig: Table, s: dict) -> list[str]:
    """The verdicts in words, from significance.csv (its selected rows) and success_metrics.json (the verdicts,
    from the unrounded CIs: a CI of (0.003, 1.2) is above 0 though the CSV shows 0.00)."""
    heads = selected_rows(sig)
    rows = [dict(zip(sig.columns, r)) for r in sig.rows]
    tasks = s["tasks"]
    lines = []
    if not heads:
        lines.append("The multi-teacher advantage cannot be computed: no task has both single- and multi-teacher "
                     "students with validation metrics.")
    else:
        verdicts = [_verdict(s, r) for r in heads]
        n = len(heads)
        better, worse = verdicts.count("multi-teacher better"), verdicts.count("multi-teacher worse")
        lines.append(f"Best multi-teacher vs best single-teacher student (both selected on validation, compared on "
                     f"eval): better on {better}, worse on {worse}, no significant difference on {n - better - worse} "
                     f"of {n} task{'s' if n != 1 else ''} (paired bootstrap 95% CI over eval examples, pooled over "
                     f"seeds; better or worse only when the CI excludes 0).")
        for r, v in zip(heads, verdicts):
            seeds = int(r["seeds"]) if str(r.get("seeds", "")).isdigit() else None
            same = twin(sig, r)
            lines.append(f"{r['task']}: {v}. {r['method']} − {r['reference']} = {num(r['diff_pp'], 2, True)} "
                         f"{unit(tasks.get(r['task'], {}).get('metric', ''))} on eval, 95% CI "
                         f"{ci_text(r['ci_low'], r['ci_high'])}; paired permutation p = {r['p_value']} (Holm-corrected "
                         f"p = {r['p_holm']}; {seeds if seeds is not None else '?'} seed pair"
                         f"{'' if seeds == 1 else 's'}){_disagreement(v, _float(r['p_value']))}"
                         + (f"; note: it trains exactly as {same}, so the two are one method" if same else "") + ".")
        avg = next((r for r in rows if r["task"] == "AVG"), None)
        if avg:
            v = s.get("average_verdict") or verdict(_float(avg["ci_low"]), _float(avg["ci_high"]))
            lines.append(f"Average over tasks: {v}. {num(avg['diff_pp'], 2, True)} {avg_unit(s)}, 95% CI "
                         f"{ci_text(avg['ci_low'], avg['ci_high'])} (each task resampled independently; no permutation "
                         f"test for an average).")
    missing = [t for t in tasks if t not in {r["task"] for r in heads}]
    if missing:
        lines.append(f"Advantage not computed for {', '.join(missing)} (single- or multi-teacher students, or their "
                     f"validation metrics, missing).")
    gaps = {t: v["best_student"] for t, v in tasks.items() if v["best_student"]["gap_closed_pct"] is not None}
    if gaps:
        per = ", ".join(f"{t} {g['gap_closed_pct']:.0f}%{_ci(g.get('gap_closed_ci_pct'))} ({g['method']})"
                        for t, g in gaps.items())
        lines.append(f"The best student (selected on validation) closes on average "
                     f"{s['average_gap_closed_by_best_student_pct']:.0f}%{_ci(s.get('average_gap_closed_ci_pct'))} "
                     f"of the gap between the no-KD baseline and the best teacher (selected on validation) on eval: "
                     f"{per}.")
    else:
        lines.append("Gap closed cannot be computed: a baseline, a teacher or a KD student is missing on every task.")
    for t, v in tasks.items():
        if v["best_student"]["gap_closed_pct"] is None and _teacher_gap(v):
            lines.append(f"{t}: no gap closed — the best teacher is not above the no-KD baseline on eval "
                         f"({_teacher_gap(v)}), so a share of that gap means nothing.")
    return lines


def _disagreement(verdict_: str, p: float) -> str:
    """The words for a CI and a p-value that point different ways (the verdict follows the CI)."""
    if verdict_ == "no significant difference" and p < 0.05:
        return ("; the test's p is below 0.05 but the interval contains 0: not significant by the verdict's rule "
                "(the interval decides)")
    if verdict_ in ("multi-teacher better", "multi-teacher worse") and p > 0.05:
        return "; the interval excludes 0 but the test's p is above 0.05: a borderline difference"
    return ""


def _join(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1] if items else ""


def _float(x) -> float:
    try:
        return float(x)
    except (TypeError, ValueError):   # n/a
        return float("nan")


def _ci(ci) -> str:
    return "" if not ci or ci[0] is None else f" [{ci[0]:.0f}, {ci[1]:.0f}]"


def _teacher_gap(summary: dict) -> str:
    """Best teacher − baseline with its CI (e.g. "+0.46 [-1.72, +2.75]") where that CI is not above 0 — the gap
    closed is then undefined; "" otherwise."""
    ci = summary.get("teacher_minus_baseline_ci_pp") or [None, None]
    if summary.get("teacher_minus_baseline_pp") is None or ci[0] is None or ci[0] > 0:
        return ""
    return f"{num(summary['teacher_minus_baseline_pp'], 2, True)} {ci_text(*ci)}"


def _no_gap(summary: dict) -> str:
    """The gap-closed cell where no gap closed is reported: why, when the teacher − baseline CI says so."""
    return f"n/a: teacher − baseline {_teacher_gap(summary)}" if _teacher_gap(summary) else NA
