"""Whose rows a teacher's train logits were computed on (recorded in the eval manifest, warned about by the
run, written into exported logits): read from the teacher's config and, for an exported train file, the
sidecar `mtkd export-logits` wrote next to it."""
from __future__ import annotations

from pathlib import Path

from ..config import TeacherConfig
from ..io import read_json


def train_logits_provenance(t: TeacherConfig) -> str:
    """'out-of-fold' (cross-fitted), 'in-sample' (fitted here on the train split it labels), 'unknown'
    (`kind: logits` files, or an HF checkpoint used as it is with epochs 0: trained elsewhere, possibly on this
    train split and the validation carved from it). A logits teacher whose train file is an mtkd export
    (`mtkd export-logits`: its sidecar says `train_logits`) has the provenance of the run it came from."""
    if t.crossfit:
        return "out-of-fold"
    if t.kind == "logits":
        return exported_provenance(t) or "unknown"
    if t.kind == "hf" and t.epochs == 0:
        return "unknown"
    return "in-sample"


def exported_provenance(cfg: TeacherConfig) -> str | None:
    """'in-sample' or 'out-of-fold' when the teacher's train file is a `.npy` that `mtkd export-logits` wrote
    (its sidecar records the source run's provenance); None otherwise (scores made elsewhere)."""
    path = Path((cfg.files or {}).get("train", ""))
    if path.suffix != ".npy" or not sidecar(path).is_file():
        return None
    try:
        found = read_json(sidecar(path)).get("train_logits")
    except (ValueError, OSError, AttributeError):
        return None
    return found if found in ("in-sample", "out-of-fold") else None


def sidecar(path: Path) -> Path:
    """The JSON next to a `.npy` score file (label names, kind, fingerprint; export-logits' provenance)."""
    return path.with_suffix(".json")
