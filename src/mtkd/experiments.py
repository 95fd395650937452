"""The pipeline's public names, where they have always been imported from: the pipeline itself is the
package mtkd.pipeline (one module per stage; docs/architecture.md)."""
from __future__ import annotations

from .pipeline.checks import CHANCE_MARGIN, chance_level, validation_gap_threshold
from .pipeline.evaluate import mean_metrics
from .pipeline.logits import verify_run
from .pipeline.plan import STAGES, Student, planned_students
from .pipeline.run import Run, run_config
from .pipeline.table import eval_ece, write_master_table

__all__ = ["CHANCE_MARGIN", "STAGES", "Run", "Student", "chance_level", "eval_ece", "mean_metrics", "planned_students",
           "run_config", "validation_gap_threshold", "verify_run", "write_master_table"]
