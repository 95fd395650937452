"""LogitStore: each teacher's logits, one float32 [N, C] .npy per split, in a stage folder whose
manifest records the teacher, the dataset fingerprint of every split, the label names in order,
the shapes and the sha256 of every file. Every read checks all of it and refuses a mismatch with
one line naming what differs: soft labels can never be paired with the wrong examples."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .errors import MtkdError
from .io import load_npy, read_json, sha256_file
from .registry import SPLITS  # noqa: F401  (re-exported: the splits every teacher labels)


def store_fields(teacher_name: str, label_names, arrays: dict[str, np.ndarray], fingerprints: dict[str, str]) -> dict:
    """The manifest fields of a logit folder (besides the generic stage ones)."""
    return {"teacher": teacher_name, "label_names": list(label_names),
            "splits": {s: {"fingerprint": fingerprints[s], "shape": list(a.shape), "file": f"{s}.npy"}
                       for s, a in arrays.items()}}


def check_array(arr: np.ndarray, where: str, n: int | None = None, c: int | None = None) -> np.ndarray:
    if arr.ndim != 2 or arr.dtype.kind != "f":
        raise MtkdError(f"{where}: logits must be a float array [N, C], got {arr.dtype} {list(arr.shape)}")
    if (n is not None and arr.shape[0] != n) or (c is not None and arr.shape[1] != c):
        raise MtkdError(f"{where}: logits shape {list(arr.shape)} does not match the dataset ({n} examples, {c} classes)")
    bad = ~np.isfinite(arr)
    if bad.any():
        row = int(np.argwhere(bad)[0][0])
        raise MtkdError(f"{where}: logits contain NaN or inf ({int(bad.sum())} values, first in example {row})")
    return arr.astype(np.float32, copy=False)


def read_logits(folder: Path, split: str, label_names, fingerprint: str, n: int) -> np.ndarray:
    """The verified logits of one split, or a one-line MtkdError naming what differs."""
    mpath = folder / "manifest.json"
    if not mpath.is_file():
        raise MtkdError(f"{folder}: no finished logit store (manifest.json missing); run extraction first")
    try:
        m = read_json(mpath)
    except (ValueError, OSError):
        raise MtkdError(f"{mpath}: unreadable manifest (not valid JSON)") from None
    try:
        entry = m["splits"][split]
        entry["fingerprint"], entry["file"], entry["shape"], m["outputs"]
    except (KeyError, TypeError):
        raise MtkdError(f"{mpath}: manifest has no complete entry for split '{split}'") from None
    if entry["file"] != f"{split}.npy":   # never follow a manifest to a file outside its folder
        raise MtkdError(f"{mpath}: split '{split}' names file {entry['file']!r}, expected '{split}.npy'")
    recorded = list(m.get("label_names", []))
    if len(recorded) != len(label_names):
        raise MtkdError(f"{folder}: logits have {len(recorded)} classes {recorded}, the task has {len(label_names)} "
                        f"{list(label_names)}")
    if recorded != list(label_names):
        raise MtkdError(f"{folder}: label order {recorded} differs from the task's {list(label_names)}")
    if entry["fingerprint"] != fingerprint:
        raise MtkdError(f"{folder}: split '{split}' was extracted from a different dataset "
                        f"(fingerprint {entry['fingerprint'][:12]}, now {fingerprint[:12]})")
    path = folder / entry["file"]
    if not path.is_file():
        raise MtkdError(f"{path}: logit file missing")
    if sha256_file(path) != m["outputs"].get(entry["file"]):
        raise MtkdError(f"{path}: file does not match the sha256 in its manifest (tampered or corrupt)")
    try:
        arr = load_npy(path)
    except (ValueError, EOFError, OSError) as e:
        raise MtkdError(f"{path}: not a valid .npy array ({e})") from None
    if list(arr.shape) != list(entry["shape"]):
        raise MtkdError(f"{path}: shape {list(arr.shape)} differs from the manifest's {entry['shape']}")
    return check_array(arr, str(path), n, len(label_names))
