"""Sweeps and multi-seed runs on top of one run: only the students are retrained.

`run_sweep(RUN, ["distill.temperature=1,2,4,8", "distill.alpha=0.5,0.7"])` trains the students at
every point of a 1-D sweep or a joint grid. Each point is an ordinary run directory
RUN/sweeps/<name>/<point>/ (e.g. `T=4_alpha=0.5`) built by `Run(config + overrides, point)
.execute("evaluate")`. Before it runs, the finished data, teachers and logits stage folders of RUN
are hard-linked into it (copied where the file system refuses links), so those stages are found
cached: their keys depend neither on T, alpha nor the student, nor on the seed once the teachers
are pinned to the seed they were trained with (done whenever `seed` is swept).

With `ray=OnRay(...)` (`mtkd sweep/seeds --ray [ADDRESS]`) the points run at once as Ray tasks, each
reserving `ray.cpus_per_task` CPUs and `ray.gpus_per_task` of a GPU, over the same linked stages.

`run_seeds(RUN, ["1", "2", "3"])` is the sweep over `seed`, summarised across seeds: per task and
method the mean, std and a 95% t-interval, and the paired difference best multi − best single.

  plan.py      the params, the points and their configs, validated first
  execute.py   the base run, the linked stages, each point's students; what each point gave (Result)
  on_ray.py    the points as Ray tasks
  outputs.py   sweep_results, best.md, the plots, sweep.json
  seeds.py     the summary across seeds
  run.py       run_sweep and run_seeds: the three steps

Import from here; the modules import each other, never this file."""
from .execute import Result, donor_runs, execute, link_cached_stages, point_results
from .on_ray import OnRay
from .outputs import best_markdown, best_table, per_task_table, results_table, write_outputs
from .plan import SWEEP_DIR, Param, Point, Sweep, parse_param, plan
from .run import run_seeds, run_sweep
from .seeds import Interval, seed_summary, t_critical, t_interval

__all__ = ["SWEEP_DIR", "Interval", "OnRay", "Param", "Point", "Result", "Sweep", "best_markdown", "best_table",
           "donor_runs", "execute", "link_cached_stages", "parse_param", "per_task_table", "plan", "point_results",
           "results_table", "run_seeds", "run_sweep", "seed_summary", "t_critical", "t_interval", "write_outputs"]
