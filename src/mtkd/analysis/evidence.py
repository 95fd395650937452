"""`write_evidence(RUN, DEST)`: what a published result's tables are computed from, so that `mtkd analyze DEST` and
`mtkd report DEST` work on the published folder without the run folder (docs/run_dir.md, "A published folder and
its evidence").

Per evaluated task of RUN, DEST/evidence/<task>.npz (numpy.savez_compressed) holds every array the analysis reads
(analysis/load.py records them as it reads RUN/<task>/eval/): the labels of each split and the logits of every
model (teachers, no-KD, single- and multi-teacher students) on eval and validation at every seed, the teachers'
train logits and each extra eval set's, unchanged (float32 logits, int64 labels; float16 would change some argmaxes
and calibration cells), each under its eval-folder file name without `.npy`. DEST/evidence/<task>.json, written
after it, holds the eval manifest itself (label names, metric, pos_label, every model's method, type, teachers,
seeds, metrics and file names), the learned gates' records, the fingerprints of the task's splits, and the sha256
of the npz and of the eval manifest (what the analysis records as its input)."""
from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path

import numpy as np

from mtkd.analysis.load import (EVIDENCE_DIR, RunArrays, eval_manifests, input_digest, is_evidence, read_eval_manifest,
                                read_task)
from mtkd.errors import MtkdError
from mtkd.io import atomic_write_bytes, atomic_write_text

EVIDENCE_FORMAT = 1


def write_evidence(run_dir: Path, dest: Path) -> list[Path]:
    """DEST/evidence/<task>.npz and <task>.json for every evaluated task of RUN (evidence of tasks RUN no longer
    has is removed); return the files written."""
    run_dir, out = Path(run_dir), Path(dest) / EVIDENCE_DIR
    written: list[Path] = []
    for path in eval_manifests(run_dir):
        if is_evidence(path):
            raise MtkdError(f"{run_dir} has no evaluation of task '{path.stem}', only published evidence: "
                            f"publish from the run folder")
        name = path.parent.parent.name
        man = read_eval_manifest(path)
        arrays = RunArrays(path.parent, keep=True)
        task = read_task(path, man, arrays)   # reads (and checks) every array the analysis uses
        buf = io.BytesIO()
        np.savez_compressed(buf, **{f.removesuffix(".npy"): a for f, a in arrays.kept.items()})
        data = buf.getvalue()
        atomic_write_bytes(out / f"{name}.npz", data)
        doc = {"evidence": EVIDENCE_FORMAT, "task": task.name, "arrays": f"{name}.npz",
               "arrays_sha256": hashlib.sha256(data).hexdigest(), "eval_manifest_sha256": input_digest(path),
               "fingerprints": _fingerprints(run_dir / name, man), "gates": task.gates, "manifest": man}
        atomic_write_text(out / f"{name}.json", json.dumps(doc, indent=2) + "\n")   # last: the npz is complete
        written += [out / f"{name}.npz", out / f"{name}.json"]
    for f in sorted(out.glob("*")) if out.is_dir() else []:
        if f.suffix in (".json", ".npz") and f not in written:
            f.unlink()
    return written


def _fingerprints(task_dir: Path, man: dict) -> dict[str, str]:
    """split -> sha256 of its texts, labels and label names (tasks.Split.fingerprint): the data stage's (every
    split, transfer and extra eval sets included), else the eval stage's key (train, validation, eval, extra sets)."""
    try:
        data = json.loads((task_dir / "data" / "manifest.json").read_text(encoding="utf-8"))
        return dict(data["key"]["fingerprints"])
    except (OSError, ValueError, KeyError, TypeError):
        key = man.get("key") or {}
        return {**(key.get("fingerprints") or {}), **(key.get("extra_eval") or {})}
