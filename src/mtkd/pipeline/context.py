"""What every stage reads: the config, the run folder, the seed the run is seen at (the folder names follow
from it), and how to log, warn and run a stage (stages.run with the run's --recompute, --reuse donors and
tracking). The stage modules take a RunContext as their first argument; run.Run is one that also drives.

Several seeds (`cfg.seeds`): `run.at_seed(S)` is the same run seen at seed S. Its students (and, with
`reseed_teachers`, its teachers and their logits) are trained at S in `<name>@seed<S>` folders; the run
seed's keep their plain names."""
from __future__ import annotations

import dataclasses
import sys
from pathlib import Path
from typing import Sequence

from tqdm.auto import tqdm

from .. import runtime, stages
from ..config import RunConfig, seeds_of


class RunContext:
    def __init__(self, cfg: RunConfig, out: Path, recompute: bool = False, log=print, run_seed: int | None = None,
                 donors: Sequence[Path] = ()):
        self.cfg, self.out, self.recompute, self._print = cfg, Path(out), recompute, log
        self.run_seed = cfg.seed if run_seed is None else run_seed
        self.donors = [Path(d) for d in donors]   # other runs whose stages with the same key are linked, not rebuilt
        self.precision: str | None = None          # set once by Run.execute (runtime.set_precision)

    # ------------------------------------------------------------------ seeds
    def at_seed(self, seed: int) -> "RunContext":
        if seed == self.cfg.seed:
            return self
        view = type(self)(dataclasses.replace(self.cfg, seed=seed), self.out, self.recompute, self._print,
                          self.run_seed, self.donors)
        view.precision = self.precision
        return view

    def views(self) -> tuple[list["RunContext"], list["RunContext"]]:
        """(the run at every seed, the run at every seed its teachers are trained at), run seed first."""
        views = [self.at_seed(s) for s in seeds_of(self.cfg)]
        return views, views if self.cfg.reseed_teachers else views[:1]

    def teacher_seed(self, t) -> int:
        """The seed teacher `t` is trained at: its own, else this view's with reseed_teachers, else the run seed."""
        if t.seed is not None:
            return t.seed
        return self.cfg.seed if self.cfg.reseed_teachers else self.run_seed

    # ------------------------------------------------------------------ folders (docs/run_dir.md)
    def suffix(self, seed: int) -> str:
        return "" if seed == self.run_seed else f"@seed{seed}"

    def teacher_folder(self, t) -> str:
        """`<name>`, or `<name>@seed<S>` for an unpinned teacher re-trained at seed S (reseed_teachers)."""
        return t.name + ("" if t.seed is not None else self.suffix(self.teacher_seed(t)))

    def teacher_folders(self) -> list[str]:
        """Every teacher (and logits) folder name of the run, over the seeds its teachers are trained at."""
        return list(dict.fromkeys(v.teacher_folder(t) for v in self.views()[1] for t in self.cfg.teachers))

    def teacher_dir(self, task_name: str, t) -> Path:
        return self.out / task_name / "teachers" / self.teacher_folder(t)

    def logits_dir(self, task_name: str, name: str) -> Path:
        by_name = {t.name: t for t in self.cfg.teachers}
        return self.out / task_name / "logits" / self.teacher_folder(by_name[name])

    def student_dir(self, task_name: str, method: str) -> Path:
        return self.out / task_name / "students" / f"{method}{self.suffix(self.cfg.seed)}"

    # ------------------------------------------------------------------ running a stage
    def runtime_key(self) -> dict:
        """What changes a training's outcome besides its config: several processes (each update sees N
        batches) and mixed precision. Empty for one process in full precision, so such caches stay valid."""
        key = {"processes": runtime.world()} if runtime.world() > 1 else {}
        precision = self.precision or runtime.precision()
        return {**key, "mixed_precision": precision} if precision != "no" else key

    def stage(self, folder: Path, key: dict, build, collective: bool = True, recorded: dict | None = None):
        """stages.run for one of this run's folders: its donors' same folder may be linked, its training tracked
        under the folder's name."""
        with runtime.tracking_as(str(Path(folder).relative_to(self.out))):
            return stages.run(folder, key, build, recompute=self.recompute, log=self.log, collective=collective,
                              donors=[d / Path(folder).relative_to(self.out) for d in self.donors], recorded=recorded)

    # ------------------------------------------------------------------ what it says
    def log(self, line: str) -> None:
        """Rank 0 prints `line` (around the progress bars) and appends it to RUN/log.txt."""
        if not runtime.is_main():
            return
        with tqdm.external_write_mode():
            self._print(line)
        self.append(line)

    def warn(self, line: str) -> None:
        """One line on stderr and in RUN/log.txt."""
        if runtime.is_main():
            with tqdm.external_write_mode():
                print(f"mtkd: warning: {line}", file=sys.stderr)
            self.append(f"warning: {line}")

    def append(self, line: str) -> None:
        if runtime.is_main() and self.out.is_dir():
            with open(self.out / "log.txt", "a", encoding="utf-8") as f:
                f.write(line + "\n")
