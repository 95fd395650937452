"""What a config asks to be built: the stage names (`mtkd run` goes up to one of them; the stage commands
stop earlier) and the students, each with its method name, type and teachers."""
from __future__ import annotations

import dataclasses

from ..config import RunConfig

# the stages in order: `until` of Run.execute. A student of type baseline / single / multi is trained when the
# run goes at least up to the stage of that name.
STAGES = ("teachers", "logits", "baseline", "single", "multi", "evaluate", "report")


@dataclasses.dataclass(frozen=True)
class Student:
    method: str             # no_kd | kd_<teacher> | multi_<strategy>
    type: str               # baseline | single | multi
    teachers: tuple[str, ...] = ()
    strategy: str | None = None


def planned_students(cfg: RunConfig) -> list[Student]:
    names = tuple(t.name for t in cfg.teachers)
    out = [Student("no_kd", "baseline")] if cfg.distill.baseline else []
    single = cfg.distill.single_teacher
    out += [Student(f"kd_{n}", "single", (n,), "average") for n in names
            if single is True or isinstance(single, list) and n in single]
    out += [Student(f"multi_{s}", "multi", names, s) for s in cfg.distill.strategies]
    return out


def reaches(until: str, stage: str) -> bool:
    """A run that goes up to stage `until` builds stage `stage` (a stage name, or a student type)."""
    return STAGES.index(until) >= STAGES.index(stage)
