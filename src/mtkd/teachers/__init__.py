"""Teachers: one protocol for every kind. A teacher is fitted on train (and may look at
validation), gives float32 logits [N, C] for texts in the task's label order, and saves / loads
itself from a folder without pickle."""
from __future__ import annotations

from pathlib import Path
from typing import Protocol

import numpy as np

from ..config import TeacherConfig
from ..errors import MtkdError
from .provenance import train_logits_provenance  # noqa: F401  (re-exported: whose rows the train logits are)

# bumped when what this module computes changes meaning; student/teacher stage keys record it (stages.algorithm)
VERSION = 1


class Teacher(Protocol):
    label_names: tuple[str, ...]

    def fit(self, train, validation, work_dir: Path) -> "Teacher": ...
    def logits(self, texts: list[tuple[str, ...]]) -> np.ndarray: ...
    def save(self, folder: Path) -> None: ...


def make_teacher(cfg: TeacherConfig, label_names, seed: int, eval_batch_size: int = 128,
                 group_by_length: bool = True) -> Teacher:
    if cfg.kind == "hf":
        from .hf import HFTeacher
        return HFTeacher(cfg, label_names, seed, eval_batch_size, group_by_length)
    if cfg.kind == "logits":
        from .files import FileTeacher
        return FileTeacher(cfg, label_names, seed)
    if cfg.kind == "cnn":
        from .cnn import CnnTeacher
        return CnnTeacher(cfg, label_names, seed, eval_batch_size, group_by_length)
    if cfg.kind == "tfidf":
        from .classic import TfidfTeacher
        return TfidfTeacher(cfg, label_names, seed)
    raise MtkdError(f"unknown teacher kind '{cfg.kind}'")


def source_hashes(cfg: TeacherConfig) -> dict:
    """sha256 of the files a teacher reads besides its training data (kind logits: its score files),
    for its stage key; {} for the kinds that are trained."""
    if cfg.kind != "logits":
        return {}
    from .files import source_hashes as file_hashes
    return file_hashes(cfg)


def load_teacher(cfg: TeacherConfig, label_names, seed: int, folder: Path, eval_batch_size: int = 128) -> Teacher:
    teacher = make_teacher(cfg, label_names, seed, eval_batch_size)
    teacher.load(folder)
    return teacher
