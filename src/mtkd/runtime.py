"""Where a run executes, decided once per run (pipeline.run.Run) and read by train.py and stages.py:

- processes: one, or N under `accelerate launch --num_processes N` (Accelerate's PartialState). Rank 0
  (the main process) decides and writes every stage; the others wait at a barrier and read.
- mixed precision: `mixed_precision` in the config, else what `accelerate launch` / `accelerate config`
  chose, else none. One value for training and logit extraction alike.
- tracking: which Accelerate tracker (tensorboard | mlflow | wandb) the training loop logs to, and under
  which run name (the stage folder being built).
"""
from __future__ import annotations

import contextlib
import os
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path

from .errors import MtkdError
from .registry import PRECISIONS

TRACKER_MODULES = {"tensorboard": "tensorboard", "mlflow": "mlflow", "wandb": "wandb"}   # registry.TRACKERS' libraries


def _state():
    from accelerate import PartialState
    if not PartialState._shared_state:
        # first use: processes launched on a machine without a GPU (accelerate launch --multi_gpu, torchrun)
        # train on CPU with gloo; Accelerate would otherwise see each as a run of its own
        import torch
        return PartialState(cpu=int(os.environ.get("WORLD_SIZE", "1")) > 1 and not torch.cuda.is_available())
    return PartialState()


def world() -> int:
    return _state().num_processes


def rank() -> int:
    return _state().process_index


def is_main() -> bool:
    return _state().is_main_process


def barrier() -> None:
    if world() > 1:
        _state().wait_for_everyone()


def broadcast(obj):
    """`obj` as rank 0 has it, on every rank."""
    if world() == 1:
        return obj
    from accelerate.utils import broadcast_object_list
    return broadcast_object_list([obj])[0]


def gather(obj) -> list:
    """[rank 0's obj, rank 1's obj, ...] on every rank."""
    if world() == 1:
        return [obj]
    from accelerate.utils import gather_object
    return gather_object([obj])


@contextlib.contextmanager
def main_first():
    """Rank 0 runs the block first (e.g. downloads into a shared cache), then the others."""
    if world() == 1:
        yield
        return
    with _state().main_process_first():
        yield


def resolve_precision(configured: str | None) -> str:
    """The run's mixed precision: the config's, else `accelerate launch --mixed_precision`'s, else 'no'."""
    value = configured or os.environ.get("ACCELERATE_MIXED_PRECISION") or "no"
    if value not in PRECISIONS:
        raise MtkdError(f"mixed precision must be one of {', '.join(PRECISIONS)}, got '{value}'")
    return value


def set_precision(value: str) -> str:
    """Make `value` the process's mixed precision (Accelerate keeps one per process). A single
    process that ran another precision before (several runs in one Python session) is re-set."""
    from accelerate.state import AcceleratorState, is_initialized
    _state()   # the processes first (see _state)
    if is_initialized() and AcceleratorState().mixed_precision != value and world() == 1:
        AcceleratorState._reset_state()
    from accelerate import Accelerator
    try:
        Accelerator(mixed_precision=value)   # the state is made through an Accelerator; later ones share it
    except ValueError as e:   # e.g. fp16 on a machine without a GPU, or a launch that chose another one
        raise MtkdError(f"mixed_precision '{value}': {str(e).splitlines()[0]}") from None
    return value


def precision() -> str:
    """The mixed precision in force ('no' until a run set one)."""
    from accelerate.state import AcceleratorState, is_initialized
    return AcceleratorState().mixed_precision if is_initialized() else resolve_precision(None)


def autocast_dtype():
    import torch
    return {"fp16": torch.float16, "bf16": torch.bfloat16}.get(precision())


# ------------------------------------------------------------------ tracking

@dataclass
class Tracking:
    backend: str             # tensorboard | mlflow | wandb
    project_dir: Path        # RUN/tracking
    project: str             # the run's name (the MLflow experiment / W&B project)
    run_name: str = ""       # the stage being built, e.g. demo/students/multi_average
    used: dict = field(default_factory=dict)   # run_name -> trainings logged under it so far

    def next_name(self) -> str:
        """A stage that trains several models (cross-fitting folds, a temperature grid) logs each
        under its own name: the stage's, then <stage>#2, #3, ..."""
        n = self.used.get(self.run_name, 0) + 1
        self.used[self.run_name] = n
        return self.run_name if n == 1 else f"{self.run_name}#{n}"


TRACKING: ContextVar[Tracking | None] = ContextVar("mtkd_tracking", default=None)


@contextlib.contextmanager
def tracking_as(run_name: str):
    """Trainings inside the block log under `run_name` (when the run tracks at all)."""
    current = TRACKING.get()
    if current is None:
        yield
        return
    token = TRACKING.set(Tracking(current.backend, current.project_dir, current.project, run_name, current.used))
    try:
        yield
    finally:
        TRACKING.reset(token)


def check_tracker(backend: str) -> None:
    """Refuse a tracker whose library is not installed, before anything runs."""
    if backend == "none":
        return
    import importlib.util
    if importlib.util.find_spec(TRACKER_MODULES[backend]) is None:
        extra = "mlflow-skinny" if backend == "mlflow" else backend
        raise MtkdError(f"tracking: {backend} needs the '{TRACKER_MODULES[backend]}' package: pip install {extra}")
