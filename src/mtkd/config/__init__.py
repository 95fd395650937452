"""Typed run configuration: YAML + dotted `key=value` overrides, validated once, never mutated during a run,
and saved resolved (defaults filled in) as RUN/config.yaml.

  schema.py    the dataclasses (every key: type, default, meaning) and the names some keys allow
  load.py      YAML -> dataclasses: strict types with one-line errors, overrides, paths; the saved YAML
  validate.py  every rule across keys, one line each with the closest name when there is one

Everything is imported from here (`from mtkd.config import load_config, RunConfig`); the three modules
import each other, never this file."""
from .load import apply_overrides, dump_yaml, load_config, parse_overrides
from .schema import (GROUP_BY, KEYED_WHEN_SET, KIND_DEFAULTS, METRICS, MODES, POOLINGS, RESERVED_TASK_NAMES, SOURCES,
                     SPLIT_NAMES, TEACHER_COMMON, TEACHER_FIELDS, TEACHER_KINDS, DistillConfig, ExtraEvalConfig,
                     RayConfig, RunConfig, StudentConfig, TaskConfig, TeacherConfig, first_seeds, seeds_of,
                     teacher_fields, to_dict)
from .validate import did_you_mean, safe_name, teacher_splits, validate

__all__ = ["GROUP_BY", "KEYED_WHEN_SET", "KIND_DEFAULTS", "METRICS", "MODES", "POOLINGS", "RESERVED_TASK_NAMES",
           "SOURCES", "SPLIT_NAMES", "TEACHER_COMMON", "TEACHER_FIELDS", "TEACHER_KINDS", "DistillConfig",
           "ExtraEvalConfig", "RayConfig", "RunConfig", "StudentConfig", "TaskConfig", "TeacherConfig",
           "apply_overrides", "did_you_mean", "dump_yaml", "first_seeds", "load_config", "parse_overrides",
           "safe_name", "seeds_of", "teacher_fields", "teacher_splits", "to_dict", "validate"]
