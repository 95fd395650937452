"""Headroom: can several teachers teach more than the best one? Measured on the teachers' cached logits,
before any student is trained (`mtkd headroom`).

A multi-teacher student can at best learn what the teachers' combination knows beyond the best teacher.
Per task and split (validation, eval) this module computes, from each teacher's logits [N, C]:
- every teacher's official metric, and the **best teacher** (selected on validation);
- the **teacher ensembles**: logit average (the `average` strategy's target at T = 1), probability average,
  validation-weighted logit average (`weighted`: w_k = validation score / sum), majority vote (plurality of
  the teachers' predicted classes; ties go to the tied class with the highest average probability);
- the **oracle**: the gold label wherever some teacher predicts it, else the best teacher's prediction
  (an upper bound no fusion of these teachers' predictions can pass);
- the **pairwise error overlap** of the teachers: the share of examples both get wrong against the share
  independence predicts (err_i x err_j); a ratio near 1 means their errors are unrelated (voices worth
  hearing), a ratio of 1 / max(err) means one teacher's errors contain the other's;
- **ensemble - best teacher** on each split with a paired bootstrap 95% CI (stats.bootstrap_metrics: the
  same resamples of the examples for both), and a one-line reading of what it means for a student. The
  headline ensemble is the one best on validation; its eval difference and CI are the reading's evidence.
Metrics come from stats.metric_from_confusion (the task's metric and positive class, in %).

**Which teams have headroom** (`subset_headroom`): the same question for every subset of two or more teachers
— its best member and its ensemble both chosen on validation, the ensemble's eval difference from that member
with a paired bootstrap CI, beside how far apart the members are on validation (the *spread*: best − weakest)
and how related their errors are (mean pairwise ratio), and in hindsight against the member that is best on
eval (no CI: part of a difference from the validation-chosen member can be the cost of a validation split too
small to pick the best member). Exploratory: one row per subset, no correction for their number; it says
*which kind* of team leaves room (members close in strength, unrelated errors), not which team to pick after
seeing eval.
"""
from __future__ import annotations

import math
import zlib
from itertools import combinations

import numpy as np

from . import stats

ENSEMBLES = ("logit_average", "prob_average", "weighted", "majority_vote")
COLUMNS = ["task", "split", "kind", "model", "metric", "value", "diff_vs_best", "ci_low", "ci_high", "n"]
PAIR_COLUMNS = ["task", "split", "teacher_a", "teacher_b", "err_a", "err_b", "both_wrong", "expected_if_independent",
                "ratio"]
SUBSET_COLUMNS = ["task", "teachers", "size", "best_member", "spread_val", "error_ratio", "ensemble", "ensemble_val",
                  "best_member_eval", "ensemble_eval", "diff_vs_best", "ci_low", "ci_high", "diff_vs_strongest_on_eval", "n"]


def softmax(z: np.ndarray) -> np.ndarray:
    z = np.asarray(z, dtype=np.float64)
    e = np.exp(z - z.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def score(labels, preds, metric: str, n_classes: int, pos_label: int = 1) -> float:
    return float(stats.metric_from_confusion(stats.confusion(np.asarray(labels), np.asarray(preds), n_classes),
                                             metric, pos_label))


def ensemble_preds(logits: np.ndarray, weights: np.ndarray) -> dict[str, np.ndarray]:
    """{ensemble: predicted classes [N]} of the teachers' logits [K, N, C]; `weights` [K] for `weighted`."""
    probs = softmax(logits)
    w = np.clip(np.asarray(weights, dtype=np.float64), 0, None)
    w = w / w.sum() if w.sum() > 0 else np.full(len(w), 1.0 / len(w))
    votes = (logits.argmax(-1)[..., None] == np.arange(logits.shape[-1])).sum(0)      # [N, C] votes per class
    return {"logit_average": logits.mean(0).argmax(-1),
            "prob_average": probs.mean(0).argmax(-1),
            "weighted": np.tensordot(w, logits, axes=1).argmax(-1),
            "majority_vote": (votes + probs.mean(0) / 2).argmax(-1)}   # mean probability < 1 vote: breaks ties only


def oracle_preds(logits: np.ndarray, labels: np.ndarray, best: int) -> np.ndarray:
    """The gold label where some teacher predicts it, else the best teacher's prediction."""
    preds = logits.argmax(-1)
    return np.where((preds == labels[None, :]).any(0), labels, preds[best])


def error_overlap(logits: np.ndarray, labels: np.ndarray, names) -> list[dict]:
    """Per teacher pair: error rates, the share both get wrong and what independence predicts (in %)."""
    wrong = logits.argmax(-1) != labels[None, :]
    out = []
    for i, j in combinations(range(len(names)), 2):
        ei, ej, both = wrong[i].mean(), wrong[j].mean(), (wrong[i] & wrong[j]).mean()
        expected = ei * ej
        out.append({"teacher_a": names[i], "teacher_b": names[j], "err_a": 100 * ei, "err_b": 100 * ej,
                    "both_wrong": 100 * both, "expected_if_independent": 100 * expected,
                    "ratio": both / expected if expected > 0 else math.nan})
    return out


def task_headroom(name: str, teachers: dict[str, dict[str, np.ndarray]], labels: dict[str, np.ndarray], metric: str,
                  n_classes: int, pos_label: int = 1, n_resamples: int = stats.N_RESAMPLES) -> dict:
    """teachers: {teacher: {"validation": logits [N, C], "eval": logits}}; labels: {split: int [N]}.
    Returns {"rows": [COLUMNS dicts], "pairs": [PAIR_COLUMNS dicts], "best_teacher", "headline": the eval
    row of the validation-best ensemble, "reading": one line}."""
    names = list(teachers)
    val_scores = np.array([score(labels["validation"], teachers[n]["validation"].argmax(-1), metric, n_classes,
                                 pos_label) for n in names])
    best = int(val_scores.argmax())
    rows, pairs, by_split = [], [], {}
    for split in ("validation", "eval"):
        y = np.asarray(labels[split], dtype=np.int64)
        z = np.stack([np.asarray(teachers[n][split], dtype=np.float64) for n in names])
        preds = {n: z[k].argmax(-1) for k, n in enumerate(names)}
        ens = ensemble_preds(z, val_scores)
        models = {**preds, **ens, "oracle": oracle_preds(z, y, best)}
        boot = stats.bootstrap_metrics(y, {m: p[None, :] for m, p in models.items()}, metric, n_classes, n_resamples,
                                       seed=[stats.SEED, zlib.crc32(f"{name}/{split}".encode())], pos_label=pos_label)
        ref = score(y, preds[names[best]], metric, n_classes, pos_label)
        for m, p in models.items():
            kind = "teacher" if m in preds else ("oracle" if m == "oracle" else "ensemble")
            value = score(y, p, metric, n_classes, pos_label)
            low, high = (math.nan, math.nan) if m == names[best] else stats.percentile_ci(boot[m] - boot[names[best]])
            row = {"task": name, "split": split, "kind": kind + (" (best)" if m == names[best] else ""), "model": m,
                   "metric": metric, "value": value, "diff_vs_best": value - ref, "ci_low": low, "ci_high": high,
                   "n": len(y)}
            rows.append(row)
            by_split.setdefault(split, {})[m] = row
        pairs += [{"task": name, "split": split, **p} for p in error_overlap(z, y, names)]
    chosen = max(ENSEMBLES, key=lambda e: (by_split["validation"][e]["value"], -ENSEMBLES.index(e)))
    headline = by_split["eval"][chosen]
    return {"rows": rows, "pairs": pairs, "best_teacher": names[best], "headline": headline,
            "oracle": by_split["eval"]["oracle"], "reading": reading(headline, names[best], by_split["eval"]["oracle"])}


def subset_headroom(name: str, teachers: dict[str, dict[str, np.ndarray]], labels: dict[str, np.ndarray],
                    metric: str, n_classes: int, pos_label: int = 1, n_resamples: int = stats.N_RESAMPLES) -> list[dict]:
    """SUBSET_COLUMNS rows, one per subset of >= 2 teachers (arguments as task_headroom): the subset's
    validation-best member and validation-best ensemble, the ensemble's eval difference from that member with a
    paired bootstrap 95% CI (every subset on the same resamples), the members' validation spread (best − weakest,
    points) and the mean pairwise error ratio on validation (both wrong / what independence predicts)."""
    names = list(teachers)
    y = {s: np.asarray(labels[s], dtype=np.int64) for s in ("validation", "eval")}
    z = {s: np.stack([np.asarray(teachers[n][s], dtype=np.float64) for n in names]) for s in y}
    val_scores = np.array([score(y["validation"], z["validation"][k].argmax(-1), metric, n_classes, pos_label)
                           for k in range(len(names))])
    rows, preds = [], {}
    for size in range(2, len(names) + 1):
        for members in combinations(range(len(names)), size):
            idx = list(members)
            best = idx[int(val_scores[idx].argmax())]
            ens = {s: ensemble_preds(z[s][idx], val_scores[idx]) for s in y}
            val = {e: score(y["validation"], p, metric, n_classes, pos_label) for e, p in ens["validation"].items()}
            chosen = max(ENSEMBLES, key=lambda e: (val[e], -ENSEMBLES.index(e)))
            key = "+".join(names[i] for i in idx)
            preds[key] = ens["eval"][chosen]
            ratios = [p["ratio"] for p in error_overlap(z["validation"][idx], y["validation"], [names[i] for i in idx])]
            rows.append({"task": name, "teachers": key, "size": size, "best_member": names[best],
                         "spread_val": float(val_scores[idx].max() - val_scores[idx].min()),
                         "error_ratio": float(np.nanmean(ratios)) if not all(math.isnan(r) for r in ratios) else math.nan,
                         "ensemble": chosen, "ensemble_val": val[chosen],
                         "best_member_eval": score(y["eval"], z["eval"][best].argmax(-1), metric, n_classes, pos_label),
                         "ensemble_eval": score(y["eval"], preds[key], metric, n_classes, pos_label), "n": len(y["eval"])})
    singles = {n: z["eval"][k].argmax(-1) for k, n in enumerate(names)}
    boot = stats.bootstrap_metrics(y["eval"], {m: p[None, :] for m, p in {**singles, **preds}.items()}, metric,
                                   n_classes, n_resamples, seed=[stats.SEED, zlib.crc32(f"{name}/subsets".encode())],
                                   pos_label=pos_label)
    eval_scores = {n: score(y["eval"], p, metric, n_classes, pos_label) for n, p in singles.items()}
    for r in rows:
        r["diff_vs_best"] = r["ensemble_eval"] - r["best_member_eval"]
        # against the member that is best on eval (hindsight, no CI): what of the difference is not the cost of
        # a validation split too small to pick the best member
        r["diff_vs_strongest_on_eval"] = r["ensemble_eval"] - max(eval_scores[n] for n in r["teachers"].split("+"))
        r["ci_low"], r["ci_high"] = stats.percentile_ci(boot[r["teachers"]] - boot[r["best_member"]])
    return rows


def subsets_markdown(rows: list[dict]) -> str:
    """Per task, every team of teachers by its eval headroom (largest first)."""
    def f(v, signed=False):
        return "" if v is None or (isinstance(v, float) and math.isnan(v)) else (f"{v:+.2f}" if signed else f"{v:.2f}")
    out = ["# Which teams of teachers have headroom", "",
           "Every subset of two or more teachers: its best member and its ensemble chosen on validation, the "
           "ensemble's eval difference from that member (95% paired bootstrap CI), the members' spread on validation "
           "(best − weakest, points) and their mean pairwise error ratio on validation (both wrong ÷ independence; "
           "1 = unrelated errors); last column, in hindsight, against the member best on eval (no CI). Exploratory: "
           "no correction for the number of subsets.", ""]
    for task in dict.fromkeys(r["task"] for r in rows):
        out += [f"## {task}", "", "| teachers | best member (val) | spread (val) | error ratio | ensemble | "
                "eval − best member | 95% CI | eval − strongest on eval |", "|---|---|---:|---:|---|---:|---|---:|"]
        for r in sorted((r for r in rows if r["task"] == task), key=lambda r: -r["diff_vs_best"]):
            out.append(f"| {r['teachers']} | {r['best_member']} | {f(r['spread_val'])} | {f(r['error_ratio'])} | "
                       f"{r['ensemble']} | {f(r['diff_vs_best'], True)} | [{f(r['ci_low'], True)}, {f(r['ci_high'], True)}] | "
                       f"{f(r['diff_vs_strongest_on_eval'], True)} |")
        out.append("")
    return "\n".join(out)


def plot_subsets(rows: list[dict], path) -> None:
    """One panel per task: every team's eval headroom over its validation-chosen best member (95% CI) against
    the spread of its members on validation — where the room is, if anywhere."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    tasks = list(dict.fromkeys(r["task"] for r in rows))
    fig, axes = plt.subplots(1, len(tasks), figsize=(4.2 * len(tasks), 3.6), squeeze=False, sharey=False)
    for ax, task in zip(axes[0], tasks):
        sub = [r for r in rows if r["task"] == task]
        x, y = np.array([r["spread_val"] for r in sub]), np.array([r["diff_vs_best"] for r in sub])
        err = np.array([[r["diff_vs_best"] - r["ci_low"] for r in sub], [r["ci_high"] - r["diff_vs_best"] for r in sub]])
        resolved = np.array([r["ci_low"] > 0 or r["ci_high"] < 0 for r in sub])
        ax.axhline(0, color="0.5", lw=0.8)
        ax.errorbar(x, y, yerr=np.nan_to_num(err), fmt="none", ecolor="0.75", lw=0.8)
        ax.scatter(x[~resolved], y[~resolved], s=18, color="0.55", label="CI includes 0")
        ax.scatter(x[resolved], y[resolved], s=22, color=np.where(y[resolved] > 0, "tab:green", "tab:red"),
                   label="CI excludes 0")
        ax.set_title(f"{task} ({sub[0]['n']:,} eval examples)", fontsize=10)
        ax.set_xlabel("spread of the team on validation (best − weakest, points)", fontsize=9)
        ax.tick_params(labelsize=9)
    axes[0][0].set_ylabel("ensemble − best member on eval (points)", fontsize=9)
    fig.suptitle("Which teams of teachers have headroom: every subset of two or more teachers", fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def reading(head: dict, best: str, oracle: dict) -> str:
    """One line: what the validation-best ensemble's eval difference from the best teacher means for a student."""
    d, lo, hi = head["diff_vs_best"], head["ci_low"], head["ci_high"]
    what = f"{head['model']} − {best} = {d:+.2f} pp [{lo:+.2f}, {hi:+.2f}] on eval"
    if lo > 0:
        return (f"{what}: the teachers together know more than the best one — a multi-teacher student has "
                f"room to beat a single-teacher student (at most this much, usually less).")
    if hi < 0:
        return (f"{what}: the ensemble is worse than the best teacher — fusing these teachers pulls a student "
                f"towards the weaker ones; distil from the best teacher (or weight it).")
    return (f"{what}: no headroom resolved — expect a multi-teacher student to match, not beat, the best "
            f"teacher's student (the oracle's +{oracle['diff_vs_best']:.2f} pp is what no fusion reaches).")


def markdown(results: list[dict]) -> str:
    """The headroom tables as Markdown: per task, one line of reading, then teachers / ensembles / oracle on
    validation and eval, then the teachers' pairwise error overlap on eval."""
    def cell(v, signed=False):
        return "" if v is None or (isinstance(v, float) and math.isnan(v)) else (f"{v:+.2f}" if signed else f"{v:.2f}")
    out = ["# Headroom: what the teachers know together beyond the best one", "",
           "Selected on validation, reported on eval. Differences in points of the task's metric; 95% paired "
           "bootstrap CIs over the examples. Ensembles: logit average, probability average, validation-weighted "
           "logit average, majority vote; oracle = right wherever some teacher is right.", ""]
    for r in results:
        h = r["headline"]
        out += [f"## {h['task']} ({h['metric']})", "", f"**{r['reading']}**", "",
                "| model | kind | validation | eval | eval − best | 95% CI |", "|---|---|---:|---:|---:|---|"]
        val = {x["model"]: x for x in r["rows"] if x["split"] == "validation"}
        for x in (x for x in r["rows"] if x["split"] == "eval"):
            ci = "" if math.isnan(x["ci_low"]) else f"[{cell(x['ci_low'], True)}, {cell(x['ci_high'], True)}]"
            out.append(f"| {x['model']} | {x['kind']} | {cell(val[x['model']]['value'])} | {cell(x['value'])} | "
                       f"{cell(x['diff_vs_best'], True)} | {ci} |")
        out += ["", "| teachers (eval) | errors a / b % | both wrong % | if independent % | ratio |",
                "|---|---|---:|---:|---:|"]
        for p in (p for p in r["pairs"] if p["split"] == "eval"):
            out.append(f"| {p['teacher_a']} · {p['teacher_b']} | {cell(p['err_a'])} / {cell(p['err_b'])} | "
                       f"{cell(p['both_wrong'])} | {cell(p['expected_if_independent'])} | {cell(p['ratio'])} |")
        out.append("")
    return "\n".join(out)


def from_task(t, n_resamples: int = stats.N_RESAMPLES) -> dict | None:
    """task_headroom of an analysis TaskEval (its teachers' run-seed validation and eval logits); None with
    fewer than two teachers or without validation logits."""
    teachers = [m for m in t.teachers if m.val_logits is not None]
    if len(teachers) < 2 or t.val_labels is None:
        return None
    return task_headroom(t.name, {m.method: {"validation": m.val_logits, "eval": m.logits} for m in teachers},
                         {"validation": t.val_labels, "eval": t.labels}, t.metric, len(t.label_names), t.pos_label,
                         n_resamples)


def from_logit_store(run_dir, task: str, teachers: list[str], n_resamples: int = stats.N_RESAMPLES,
                     subsets: bool = False):
    """task_headroom from a run's data and logit stages alone (RUN/<task>/data, RUN/<task>/logits/<teacher>),
    so it can be measured before any student is trained; `subsets`: subset_headroom's rows instead."""
    import json
    from pathlib import Path

    from mtkd.errors import MtkdError
    from mtkd.io import load_npy, read_json
    root = Path(run_dir) / task
    try:
        data = read_json(root / "data" / "manifest.json")
        labels = {s: np.array([json.loads(line)["label"] for line in
                               (root / "data" / f"{s}.jsonl").read_text(encoding="utf-8").splitlines() if line.strip()])
                  for s in ("validation", "eval")}
        logits = {n: {s: load_npy(root / "logits" / n / f"{s}.npy") for s in ("validation", "eval")} for n in teachers}
    except (OSError, ValueError, KeyError) as e:
        raise MtkdError(f"{root}: the data and logit stages are not complete ({type(e).__name__}: {e})") from None
    return (subset_headroom if subsets else task_headroom)(task, logits, labels, data["metric"], len(data["label_names"]),
                                                          int(data.get("pos_label", 1)), n_resamples)


def table_rows(results: list[dict]) -> tuple[list[list], list[list]]:
    """(COLUMNS rows, PAIR_COLUMNS rows) of several tasks' results as table cells."""
    from mtkd.tables import cell
    return ([[cell(r[c]) for c in COLUMNS] for x in results for r in x["rows"]],
            [[cell(p[c]) for c in PAIR_COLUMNS] for x in results for p in x["pairs"]])
