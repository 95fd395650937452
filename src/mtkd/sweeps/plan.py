"""What a sweep runs: its params (`key=v1,v2,...`, only student-side keys), its points (one config each,
validated before anything is trained) and their folders RUN/sweeps/<name>/<point>/."""
from __future__ import annotations

import itertools
import re
from dataclasses import dataclass
from pathlib import Path

from ..config import RunConfig, StudentConfig, did_you_mean, load_config, safe_name, to_dict
from ..errors import MtkdError

SWEEP_DIR = "sweeps"
SWEEPABLE = ("distill.temperature", "distill.alpha", "distill.use_transfer", "distill.calibrate", "seed")   # and every student.* key
DISTILL_ONLY = {"distill.temperature", "distill.alpha", "distill.use_transfer", "distill.calibrate"}   # the baseline does not depend on these
SHORT = {"distill.temperature": "T"}                                    # folder and column names


@dataclass(frozen=True)
class Param:
    key: str                    # dotted config key, e.g. distill.temperature
    values: tuple[str, ...]     # as typed, e.g. ("1", "2", "4")

    @property
    def short(self) -> str:
        return SHORT.get(self.key, self.key.rsplit(".", 1)[-1])


@dataclass(frozen=True)
class Point:
    folder: str                 # e.g. T=4_alpha=0.5
    values: tuple[str, ...]     # one per param
    cfg: RunConfig


@dataclass
class Sweep:
    run_dir: Path
    base: RunConfig
    folder: Path                # RUN/sweeps/<name>
    params: list[Param]
    points: list[Point]
    baseline_from_base: bool    # the no-KD student is taken from the base run, not retrained per point


def parse_param(spec: str) -> Param:
    """`distill.temperature=1,2,4` -> Param("distill.temperature", ("1", "2", "4"))."""
    key, sep, raw = spec.partition("=")
    values = tuple(dict.fromkeys(v.strip() for v in raw.split(",") if v.strip()))   # in order, no duplicates
    if not sep or not key.strip() or not values:
        raise MtkdError(f"--param '{spec}' must look like key=v1,v2,... (e.g. distill.temperature=1,2,4,8)")
    return Param(key.strip(), values)


def sweepable_keys() -> list[str]:
    return [*SWEEPABLE, *(f"student.{f}" for f in StudentConfig.__dataclass_fields__)]


def check_sweepable(key: str, base: dict) -> None:
    """Only student-side keys may vary: everything upstream of the students is reused from the run."""
    if key in SWEEPABLE or key.startswith("student."):
        return   # an unknown student.* key is refused by the config itself, with its own "did you mean"
    allowed = f"{', '.join(SWEEPABLE)} or student.*"
    if _is_config_key(key, base):
        raise MtkdError(f"cannot sweep '{key}': only student-side params ({allowed}) can be swept; "
                        f"teachers, logits and tasks are reused from the base run")
    raise MtkdError(f"cannot sweep '{key}': unknown parameter{did_you_mean(key, sweepable_keys())}; "
                    f"sweepable: {allowed}")


def _is_config_key(key: str, node) -> bool:
    for part in key.split("."):
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            return False
    return True


def varying(params: list[Param]) -> list[int]:
    """Indices of the params with several values (the axes of the plots); the others are fixed settings."""
    return [i for i, p in enumerate(params) if len(p.values) > 1]


def point_folder(params: list[Param], values) -> str:
    return "_".join(f"{p.short}={re.sub(r'[^A-Za-z0-9.+-]', '_', v)}" for p, v in zip(params, values))


def plan(run_dir, params: list[Param], name: str, strategies=None, single=True, baseline=True) -> Sweep:
    """Every point's config, validated before anything is trained or written."""
    run_dir = Path(run_dir)
    if not (run_dir / "config.yaml").is_file():
        raise MtkdError(f"{run_dir} is not a run directory (no config.yaml)")
    base = load_config(run_dir / "config.yaml")
    keys = [p.key for p in params]
    if len(set(keys)) != len(keys):
        dup = next(k for k in keys if keys.count(k) > 1)
        raise MtkdError(f"--param '{dup}' is given twice; list its values once: {dup}=v1,v2,...")
    if not params or len(varying(params)) > 2:
        raise MtkdError(f"a sweep varies one or two --param (a 1-D sweep or a joint grid; a --param with one value "
                        f"is a fixed setting), got {len(varying(params))} with several values")
    for key in keys:
        check_sweepable(key, to_dict(base))
    if not safe_name(name):
        raise MtkdError(f"sweep name '{name}' may only use letters, digits, '-' and '_'")
    distill_only = set(keys) <= DISTILL_ONLY
    common = []
    if strategies is not None:
        common.append(f"distill.strategies=[{','.join(strategies)}]")
    if not single:
        common.append("distill.single_teacher=false")
    if not baseline or distill_only:
        common.append("distill.baseline=false")
    if "seed" in keys:   # one seed per point; every teacher kept at the seed it was trained with, so it is reused
        common.append("seeds=null")
        common += [f"teachers.{i}.seed={t.seed if t.seed is not None else base.seed}" for i, t in enumerate(base.teachers)]
    points = []
    for values in itertools.product(*(p.values for p in params)):
        cfg = load_config(run_dir / "config.yaml", [*common, *(f"{p.key}={v}" for p, v in zip(params, values))])
        points.append(Point(point_folder(params, values), values, cfg))
    folders = [p.folder for p in points]
    if len(set(folders)) != len(folders):
        raise MtkdError(f"two sweep points share the folder name '{next(f for f in folders if folders.count(f) > 1)}'; "
                        f"write the values differently")
    return Sweep(run_dir, base, run_dir / SWEEP_DIR / name, params, points,
                 baseline_from_base=distill_only and baseline and base.distill.baseline)


def default_name(params: list[Param]) -> str:
    return "_x_".join(re.sub(r"[^A-Za-z0-9_-]", "_", p.short) for p in params)
