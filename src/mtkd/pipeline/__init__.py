"""The pipeline: config -> task -> teachers -> logit store -> students (fusion and recipe.py inside) ->
evaluate -> table (-> analyse -> report). Every box is a cached, resumable stage folder (stages.py), and
every stage is one module here with its key, its build and what it records (docs/architecture.md):

  data.py       RUN/<task>/data                      the splits as the run sees them
  teachers.py   RUN/<task>/teachers/<teacher>        a fitted teacher (mtkd.teachers fits it)
  logits.py     RUN/<task>/logits/<teacher>          its logits on every split; reading them; verify-logits
  checks.py     (warnings)                           teachers at chance, in-sample train logits, val >> eval
  students.py   RUN/<task>/students/<method>         a student distilled with recipe.Recipe
  evaluate.py   RUN/<task>/eval                      every model's logits and metrics, what analysis reads
  table.py      RUN/results/master_results.*         the run's table

  plan.py       the stage names and the students a config asks for
  context.py    RunContext: config, folder, seed views, folder names, log/warn, running a stage
  run.py        Run: the driver (order, seeds, progress, the run folder's config.yaml) and run_config

Stage modules import context.py and the stages upstream of them, never run.py; mtkd.experiments re-exports
the public names (Run, run_config, ...)."""
