"""`mtkd sweep` and `mtkd seeds`: plan the points, run them, write the outputs."""
from __future__ import annotations

from pathlib import Path

from ..errors import MtkdError
from .execute import execute
from .on_ray import OnRay
from .outputs import best_markdown, best_sentences, best_table, heatmaps, line_plot, per_task_table, write_outputs
from .plan import Param, default_name, parse_param, plan, varying
from .seeds import seed_markdown, seed_summary


def run_sweep(run_dir, specs: list[str], name: str | None = None, strategies=None, single=True, baseline=True,
              recompute=False, log=print, ray: OnRay | None = None) -> Path:
    """A 1-D sweep (one spec with several values) or a joint grid (two), plus any fixed settings (specs with
    one value); returns RUN/sweeps/<name>."""
    params = [parse_param(s) for s in specs]
    sweep = plan(run_dir, params, name or default_name(params), strategies, single, baseline)
    tasks, results = execute(sweep, recompute, log, ray)
    axes = varying(params)
    if len(axes) == 1 or len(params) == 1:
        extra = {f"sweep_{default_name([params[(axes or [0])[0]]])}.png": line_plot(sweep, tasks, results)}
    else:   # a joint grid, or several fixed settings (one point: nothing to plot)
        extra = heatmaps(sweep, tasks, results) if axes else {}
    metrics = {t.name: t.metric for t in tasks}
    extra["best.md"] = best_markdown(sweep, results, metrics)
    extra["best.csv"] = best_table(results).to_csv()
    if (per_task := per_task_table(results, metrics)) is not None:
        extra["best_per_task.csv"] = per_task.to_csv()
    write_outputs(sweep, tasks, results, extra, summary=best_sentences(sweep, results))
    return sweep.folder


def run_seeds(run_dir, seeds: list[str], name: str = "seeds", strategies=None, single=True, baseline=True,
              recompute=False, log=print, ray: OnRay | None = None) -> Path:
    """The students retrained at every seed; returns RUN/sweeps/<name> with seed_summary.csv/.md."""
    if not seeds:
        raise MtkdError("--seeds needs at least one seed, e.g. --seeds 1,2,3")
    sweep = plan(run_dir, [Param("seed", tuple(dict.fromkeys(seeds)))], name, strategies, single, baseline)
    tasks, results = execute(sweep, recompute, log, ray)
    table, sentences = seed_summary(tasks, results)
    write_outputs(sweep, tasks, results, {"seed_summary.csv": table.to_csv(),
                                          "seed_summary.md": seed_markdown(sweep, table, sentences)},
                  summary=sentences)
    return sweep.folder
