"""One model of run A against one model of run B, per example, on the same eval examples — e.g. the student of
three bagged teachers against the student of the one teacher fine-tuned on all the labels, trained in two runs:

    python bench/across_runs.py docs/results/voices_cpu:kd_minilm_l6 docs/results/voices_bags:multi_average --task mnli

A and B: run folders or published result folders (their evidence/), each with a model name. The two tasks must
be the same eval examples: the eval split's fingerprint (when both record one) and the labels must match, or the
comparison is refused in one line. Prints B − A on the task's official metric (each model's metric averaged over
its seeds) with the paired bootstrap 95% CI over eval examples and the paired permutation p over the seed pairs
(seeds paired in order) — the statistics of analysis/significance.py, across two runs.
Last line: diff=<B − A> ci=<low>,<high> p=<p>."""
from __future__ import annotations

import argparse
import json
import sys
import zlib
from pathlib import Path

from mtkd.analysis import stats
from mtkd.analysis.load import load_run
from mtkd.errors import MtkdError


def _side(spec: str, task: str):
    folder, sep, model = spec.rpartition(":")
    if not sep or not folder or not model:
        raise MtkdError(f"'{spec}': expected RUN_OR_PUBLISHED_FOLDER:MODEL")
    tasks = {t.name: t for t in load_run(Path(folder), split="eval")}
    if task not in tasks:
        raise MtkdError(f"{folder} has no task '{task}' (its tasks: {', '.join(tasks)})")
    t = tasks[task]
    models = {m.method: m for m in t.models}
    if model not in models:
        raise MtkdError(f"{folder} has no model '{model}' on {task} (its models: {', '.join(models)})")
    doc = json.loads(Path(t.manifest_path).read_text())
    fingerprint = (doc.get("fingerprints") or doc.get("manifest", {}).get("fingerprints") or {}).get("eval")
    return t, models[model], fingerprint


def compare(a_spec: str, b_spec: str, task: str, n_resamples: int = stats.N_RESAMPLES) -> dict:
    """{"diff", "ci", "p", "n", "seeds"}: B − A in points of the task's official metric."""
    ta, a, fa = _side(a_spec, task)
    tb, b, fb = _side(b_spec, task)
    if fa and fb and fa != fb:
        raise MtkdError(f"{task}: the two runs' eval splits differ (fingerprints {fa[:12]} vs {fb[:12]}): "
                        f"not the same examples")
    if len(ta.labels) != len(tb.labels) or (ta.labels != tb.labels).any():
        raise MtkdError(f"{task}: the two runs' eval labels differ ({len(ta.labels)} vs {len(tb.labels)} "
                        f"examples): not the same examples")
    seed = [stats.SEED, zlib.crc32(f"{task}/{a.method}/{b.method}".encode())]
    boot = stats.bootstrap_metrics(ta.labels, {"a": a.seed_preds(), "b": b.seed_preds()}, ta.metric,
                                   len(ta.label_names), n_resamples, seed=seed, pos_label=ta.pos_label)
    pairs = list(zip(b.seed_preds(), a.seed_preds()))
    p = stats.permutation_p(ta.labels, pairs, ta.metric, len(ta.label_names), n_resamples, seed=seed,
                            pos_label=ta.pos_label)
    return {"diff": b.metric - a.metric, "ci": stats.percentile_ci(boot["b"] - boot["a"]), "p": p,
            "n": len(ta.labels), "seeds": (len(a.seeds), len(b.seeds)), "metric": ta.metric}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("a", help="RUN_OR_PUBLISHED_FOLDER:MODEL (the reference)")
    ap.add_argument("b", help="RUN_OR_PUBLISHED_FOLDER:MODEL (compared with A: B − A)")
    ap.add_argument("--task", required=True)
    ap.add_argument("--resamples", type=int, default=stats.N_RESAMPLES)
    args = ap.parse_args(argv)
    if args.resamples < 100:
        sys.exit(f"error: --resamples must be at least 100 (a 95% interval needs them), got {args.resamples}")
    try:
        r = compare(args.a, args.b, args.task, args.resamples)
    except MtkdError as e:
        sys.exit(f"error: {e}")
    lo, hi = r["ci"]
    print(f"{args.task} ({r['metric']}, {r['n']:,} eval examples; seeds {r['seeds'][0]} and {r['seeds'][1]}): "
          f"{args.b} − {args.a} = {r['diff']:+.2f} pp [{lo:+.2f}, {hi:+.2f}], paired permutation p = {r['p']:.3g}")
    print(f"diff={r['diff']:.4f} ci={lo:.4f},{hi:.4f} p={r['p']:.4g}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
