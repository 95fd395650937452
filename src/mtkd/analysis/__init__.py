"""Analyses of an evaluated run: selection on validation, per-example significance (paired bootstrap,
paired permutation test, Holm), advantage and gap closed, agreement regions, worst slices (and the students at each
teacher's worst), failure categories, teacher confidence and diversity, calibration. `analyze(RUN)` writes them all as tables and plots under RUN/analysis/."""
from mtkd.analysis.run import analyze

__all__ = ["analyze"]
