"""Does a multi-teacher student beat the best single-teacher student? Per task, on eval examples.

For every multi-teacher student vs the best single-teacher student (selected on validation, gap.best):
- diff_pp: difference of their official eval metrics (means over seeds), in percentage points;
- ci_low/ci_high: paired bootstrap 95% percentile interval of that difference (stats.bootstrap_metrics:
  10,000 resamples of the eval examples, the metric averaged over each model's seeds on every resample);
- p_value: two-sided paired permutation (approximate-randomization) p-value of the same difference, on the
  official metric averaged over the seed pairs both models share (stats.permutation_p; 10,000 random swaps
  per example), so it tests what the interval measures; p_per_seed: that test at each seed pair alone;
  p_holm: Holm-corrected over every row of every task (strategies x tasks), but a student that trains exactly
  as another present one (gap.DUPLICATE_OF: kl_sum as prob_average) is one method: its row is kept, with
  `duplicate_of` set and no p_holm, and it is never selected;
- selected: the row of the validation-selected best multi-teacher student, the task's headline; its CI
  gives the verdict (gap.verdict).
Gap closed gets the same bootstrap: (student - baseline) / (best teacher - baseline) on every resample; it is
left undefined (gap_defined False, no CI) where best teacher - baseline has a 95% interval reaching 0 or below.
The AVG row averages the headline differences over tasks; its interval resamples each task independently
(each task has its own resamples, so the mean of their bootstrap distributions is the AVG's).
"""
from __future__ import annotations

import math
import zlib

import numpy as np

from mtkd.analysis import gap, stats

COLUMNS = ["task", "method", "reference", "diff_pp", "ci_low", "ci_high", "p_value", "p_holm", "selected_on",
           "selected", "seeds", "p_per_seed", "method_validation", "reference_validation", "n_eval", "n_resamples",
           "duplicate_of"]


def task_significance(task, n_resamples: int = stats.N_RESAMPLES) -> dict:
    """{"rows": [row dict per multi-teacher student], "headline": the selected row or None,
    "gap_ci": {student: (low, high)}, "metric_ci": {model: (low, high)} (its eval metric's 95% interval),
    "gap_denominator_ci": the interval of best teacher - baseline, "gap_defined": whether it is above 0,
    "samples": bootstrap distribution of the headline difference,
    "gap_samples": bootstrap distribution of the gap closed by the best student (selected on validation)}."""
    sel = gap.selection(task)
    boot = stats.bootstrap_metrics(task.labels, {m.method: m.seed_preds() for m in task.models}, task.metric,
                                   len(task.label_names), n_resamples, seed=[stats.SEED, zlib.crc32(task.name.encode())],
                                   pos_label=task.pos_label)
    out = {"rows": [], "headline": None, "gap_ci": {}, "samples": None, "gap_samples": None,
           "metric_ci": {m: stats.percentile_ci(b) for m, b in boot.items()}}   # each model's metric, for the plots
    if sel["baseline"] and sel["teacher"]:
        # a ratio is only as defined as its denominator: where the best teacher is not above the baseline with a
        # CI above 0, (student - baseline) / (teacher - baseline) divides by a gap indistinguishable from zero
        denom = stats.percentile_ci(boot[sel["teacher"].method] - boot[sel["baseline"].method])
        out["gap_denominator_ci"] = denom
        out["gap_defined"] = bool(denom[0] > 0)
    if out.get("gap_defined"):
        for m in task.of_type("single", "multi"):
            closed = gap.gap_closed(boot[m.method], boot[sel["baseline"].method], boot[sel["teacher"].method])
            out["gap_ci"][m.method] = stats.percentile_ci(closed)
            if m is sel["student"] and np.isfinite(gap.gap_closed(m.metric, sel["baseline"].metric,
                                                                  sel["teacher"].metric)):
                out["gap_samples"] = closed   # only where the point value is defined, as in the mean it brackets
    ref = sel["single"]
    if ref is None:
        return out
    for m in task.of_type("multi"):
        samples = boot[m.method] - boot[ref.method]
        low, high = stats.percentile_ci(samples)
        shared = [s for s in m.seeds if s in ref.seed_logits] or None
        pairs = [(s, m.seed_logits[s], ref.seed_logits[s]) for s in shared] if shared else \
            [(f"{a}/{b}", m.seed_logits[a], ref.seed_logits[b]) for a, b in zip(m.seeds, ref.seeds)]
        test = dict(metric=task.metric, n_classes=len(task.label_names), n_permutations=n_resamples,
                    seed=[stats.SEED, zlib.crc32(f"{task.name}/{m.method}".encode())], pos_label=task.pos_label)
        preds = [(s, a.argmax(1), b.argmax(1)) for s, a, b in pairs]
        per_seed = {s: stats.permutation_p(task.labels, [(a, b)], **test) for s, a, b in preds}
        p_value = stats.permutation_p(task.labels, [(a, b) for _, a, b in preds], **test) if len(preds) > 1 \
            else next(iter(per_seed.values()))
        row = {"task": task.name, "method": m.method, "reference": ref.method, "diff_pp": m.metric - ref.metric,
               "ci_low": low, "ci_high": high, "p_value": p_value, "p_holm": math.nan,
               "selected_on": gap.SELECTED_ON, "selected": m is sel["multi"], "seeds": len(pairs),
               "p_per_seed": per_seed, "method_validation": m.val_metric, "reference_validation": ref.val_metric,
               "n_eval": len(task.labels), "n_resamples": n_resamples,
               "duplicate_of": gap.duplicate_of(m.method, [x.method for x in task.models]) or ""}
        out["rows"].append(row)
        if row["selected"]:
            out["headline"], out["samples"] = row, samples
    return out


def significance(tasks, n_resamples: int = stats.N_RESAMPLES) -> tuple[dict[str, dict], dict | None]:
    """Every task's task_significance with p_holm filled in over all rows of all tasks, and the AVG row
    (None with fewer than two tasks that have a headline); the AVG row also carries the interval of the mean
    gap closed by each task's best student (`gap_closed_ci_pct`), resampled the same way: NaN unless two
    tasks have a defined gap closed, and absent with the AVG row."""
    sigs = {t.name: task_significance(t, n_resamples) for t in tasks}
    rows = [r for s in sigs.values() for r in s["rows"] if not r["duplicate_of"]]   # one method, one test
    for r, p in zip(rows, stats.holm([r["p_value"] for r in rows])):
        r["p_holm"] = p
    heads = [s for s in sigs.values() if s["headline"]]
    average = None
    if len(heads) > 1:
        low, high = stats.percentile_ci(np.mean([s["samples"] for s in heads], axis=0))
        average = {"task": "AVG", "method": "best multi (per task)", "reference": "best single (per task)",
                   "diff_pp": float(np.mean([s["headline"]["diff_pp"] for s in heads])), "ci_low": low,
                   "ci_high": high, "p_value": math.nan, "p_holm": math.nan, "selected_on": gap.SELECTED_ON,
                   "selected": True, "seeds": "", "p_per_seed": {}, "method_validation": math.nan,
                   "reference_validation": math.nan, "n_eval": sum(s["headline"]["n_eval"] for s in heads),
                   "n_resamples": n_resamples, "duplicate_of": "", "gap_closed_ci_pct": (math.nan, math.nan)}
        closed = [s["gap_samples"] for s in sigs.values() if s["gap_samples"] is not None]
        if len(closed) > 1:
            with np.errstate(invalid="ignore"):
                average["gap_closed_ci_pct"] = stats.percentile_ci(np.mean(closed, axis=0))
    return sigs, average
