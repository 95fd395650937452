"""Tasks: a task knows its text columns, label names (in GLUE's order), official metric and positive class;
loading gives three splits -- `train`, `validation` (carved from train, group-aware: see carve.py; for
everything fitted besides the student) and `eval` (GLUE dev, an eval file or split, or carved from train
with `eval_fraction`: reported, never fitted on) -- and the transfer and extra eval sets.

  data.py      Split, TaskData, the metrics (what the stages read)
  sources.py   where rows come from: the demo, a GLUE folder, Hugging Face datasets, a user file; the registry
  carving.py   eval / validation carves and the seeded samples
  transfer.py  the transfer set (leak-filtered) and the extra eval sets
  load.py      load_task: the walk through the four

Data flows one way: config -> tasks (the config never reads them). Import from here; the modules import
each other, never this file."""
from .data import METRIC_SHORT, Split, TaskData, compute_metrics, table_values
from .load import load_task
from .sources import REGISTRY, TaskSpec, label_column, resolve_source, text_columns

__all__ = ["METRIC_SHORT", "REGISTRY", "Split", "TaskData", "TaskSpec", "compute_metrics", "label_column", "load_task",
           "resolve_source", "table_values", "text_columns"]
