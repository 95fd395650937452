"""Stages: a stage is a function of (its inputs, its config) that fills one artifact folder and
ends it with `manifest.json` (the key it was built from, every output file and its sha256,
library versions). The folder is built under a temporary name and renamed into place after the
manifest is written, so a folder without a valid manifest is unfinished and is redone, never read.

A finished folder whose key, file hashes or `recorded` manifest fields (run()) no longer match is stale: it is refused with one line
naming what differs, unless the caller asked to recompute. Checkpoints of a long stage live in
a work folder named after the key, so a killed stage resumes where it stopped.

Two processes on one run directory (a second `mtkd run` started by mistake, two sweeps sharing a base) never
build the same stage at once: run() holds an exclusive lock on the stage (`.<name>.lock` beside it, flock:
released when the process ends, however it ends) from its cache check to its rename, so the second waits and
then finds the stage cached instead of clearing the first one's temporary folder under it.
"""
from __future__ import annotations

import contextlib
import os
import platform
import shutil
import time
from pathlib import Path
from typing import Callable, Sequence

from . import runtime
from .errors import MtkdError
from .faults import failpoint
from .io import atomic_write_json, read_json, sha256_file, sha256_json

try:
    import fcntl
except ImportError:   # Windows: no flock; one process per run directory is then the user's to keep
    fcntl = None

MANIFEST = "manifest.json"


ALGORITHM = "algorithm"   # the key field naming the versions of the code whose semantics a stage's output has


def algorithm(*modules) -> dict[str, int]:
    """{module: its VERSION} for the key field ALGORITHM. Each module that decides what a stage computes
    (fusion, losses, recipe, train, carve, teachers) has a VERSION that is bumped when its semantics change;
    a finished stage built by other versions is outdated and rebuilt by run() without --recompute (whatever else
    changed: its output is of old code either way), never reused or linked."""
    return {m.__name__.rsplit(".", 1)[-1]: int(m.VERSION) for m in modules}


def _algorithms(key, path="") -> dict:
    """{path: versions} of every ALGORITHM field in a key, at any depth (a logit stage's key holds its
    teacher's)."""
    if not isinstance(key, dict):
        return {}
    out = {path: key[ALGORITHM]} if ALGORITHM in key else {}
    for k, v in key.items():
        if k != ALGORITHM:
            out.update(_algorithms(v, f"{path}.{k}" if path else str(k)))
    return out


def _outdated(folder: Path, key: dict) -> str | None:
    """What differs when `folder` was built by code of other algorithm versions than `key` asks for (its
    output is then outdated whatever else changed: rebuilt, never refused as stale); else None."""
    try:
        old = read_json(folder / MANIFEST)["key"]
    except (ValueError, KeyError, TypeError, OSError):
        return None
    was, now = _algorithms(old), _algorithms(_canonical(key))
    if not now or was == now:
        return None
    return _first_difference(was, now) or "algorithm versions"


def versions() -> dict[str, str]:
    import importlib.metadata as md
    out = {"python": platform.python_version()}
    for pkg in ("mtkd", "torch", "transformers", "accelerate", "scikit-learn", "numpy", "safetensors"):
        try:
            out[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            pass
    return out


def _first_difference(a, b, path="") -> str | None:
    if isinstance(a, dict) and isinstance(b, dict):
        for k in sorted(set(a) | set(b), key=str):
            d = _first_difference(a.get(k), b.get(k), f"{path}.{k}" if path else str(k))
            if d:
                return d
        return None
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        for i, (x, y) in enumerate(zip(a, b)):
            d = _first_difference(x, y, f"{path}.{i}")
            if d:
                return d
        return None
    if a != b:
        return f"{path}: recorded {_short(a)}, now {_short(b)}"
    return None


def _short(v) -> str:
    s = repr(v)
    return s if len(s) <= 40 else s[:37] + "..."


def check(folder: Path, key: dict, recorded: dict | None = None) -> tuple[dict | None, str | None]:
    """(manifest, None) if `folder` is finished and matches `key` (and the manifest fields `recorded`);
    (None, None) if unfinished; (None, reason) if finished but stale or tampered."""
    mpath = folder / MANIFEST
    if not mpath.is_file():
        return None, None
    try:
        manifest = read_json(mpath)
        recorded_key, outputs = manifest["key"], manifest["outputs"]
    except (ValueError, KeyError, TypeError, OSError):
        return None, f"{mpath}: unreadable manifest"
    canon = _canonical(key)
    if sha256_json(recorded_key) != sha256_json(canon):
        return None, f"{folder}: cached stage was built from other inputs ({_first_difference(recorded_key, canon)})"
    for field, want in (recorded or {}).items():
        if _canonical({field: manifest.get(field)}) != _canonical({field: want}):
            return None, (f"{folder}: cached stage was built from other inputs ({field}: recorded "
                          f"{_short(manifest.get(field))}, now {_short(want)})")
    for rel, digest in outputs.items():
        path = folder / rel
        if not path.is_file():
            return None, f"{path}: file listed in its manifest is missing"
        if sha256_file(path) != digest:
            return None, f"{path}: file does not match the sha256 in its manifest (tampered or corrupt)"
    return manifest, None


def _canonical(key: dict) -> dict:
    import json
    return json.loads(json.dumps(key, sort_keys=True, default=str))


@contextlib.contextmanager
def locked(folder: Path, log: Callable[[str], None] = print):
    """Hold the exclusive lock of stage `folder` (rank 0 only: the other ranks follow its decisions). A lock
    held by another process is waited for, saying so once. The lock file is removed on release while still
    held; a waiter that then locks a removed file tries again on the path's current file."""
    if fcntl is None or not runtime.is_main():
        yield
        return
    path = folder.with_name(f".{folder.name}.lock")
    path.parent.mkdir(parents=True, exist_ok=True)
    said = False
    while True:
        fh = open(path, "a")
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if not said:
                log(f"  waiting {folder}: another mtkd process is building it")
                said = True
            fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            if os.stat(path).st_ino == os.fstat(fh.fileno()).st_ino:
                break
        except FileNotFoundError:
            pass
        fh.close()   # the holder removed the file on release: lock the one now at the path
    try:
        yield
    finally:
        with contextlib.suppress(OSError):
            os.unlink(path)
        fh.close()


def run(folder: Path, key: dict, build: Callable[[Path, Path], dict | None], recompute: bool = False,
        log: Callable[[str], None] = print, collective: bool = True, donors: Sequence[Path] = (),
        recorded: dict | None = None) -> dict:
    """Return the manifest of `folder`, building it with `build(tmp_dir, work_dir) -> extra manifest
    fields` unless it is already finished with the same key.

    Under several processes rank 0 decides (cached, stale or to build) and owns the folder: it writes the
    manifest and renames the folder into place while the others wait at a barrier, then read it. A
    `collective` build (one that trains or extracts: every rank must take part) runs on every rank, the
    others writing into a scratch folder of their own that is dropped; otherwise rank 0 alone builds.

    `donors`: the same stage's folders in other runs (e.g. the other points of a sweep). When `folder` is
    unfinished (or stale, with `recompute`) and a donor is finished with exactly this key, the donor's
    folder is hard-linked into place instead of being rebuilt: same key, same stage.

    `recorded`: manifest fields that must match as well as the key — inputs whose meaning the key's
    canonical form loses (it sorts dict keys, so the order of a stage's teachers is not in it) and that
    every manifest already records, so adding them here leaves existing caches valid.

    The whole call holds the stage's lock (locked()): a second process waits, then reads the stage as cached."""
    folder = Path(folder)
    with locked(folder, log):
        return _run(folder, key, build, recompute, log, collective, donors, recorded)


def _run(folder: Path, key: dict, build, recompute, log, collective, donors, recorded) -> dict:
    main = runtime.is_main()
    manifest, stale = runtime.broadcast(check(folder, key, recorded) if main else None)
    if manifest is not None:
        log(f"  cached  {folder}")
        return manifest
    if donors and (not stale or recompute):
        donor = runtime.broadcast(_link_donor(folder, key, donors, recorded) if main else None)
        if donor is not None:
            log(f"  cached  {folder} (linked: {donor} has the same key)")
            runtime.barrier()
            return read_json(folder / MANIFEST)
    if stale and not recompute:
        outdated = runtime.broadcast(_outdated(folder, key) if main else None)
        if not outdated:
            raise MtkdError(f"{stale}; pass --recompute to rebuild it")
        log(f"  outdated {folder} (built by other code: {outdated}): rebuilding")
    key = _canonical(key)
    tmp = folder.with_name(f".{folder.name}.tmp")
    work = folder.with_name(f".{folder.name}.work-{sha256_json(key)[:12]}")
    problem = _start(folder, tmp, work) if main else None
    problem = runtime.broadcast(problem)
    if problem:
        raise MtkdError(problem)
    if not main:
        if not collective:   # rank 0 builds alone; the others read what it wrote
            runtime.barrier()
            return read_json(folder / MANIFEST)
        tmp = folder.with_name(f".{folder.name}.tmp-rank{runtime.rank()}")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
    t0 = time.time()
    log(f"  build   {folder}")
    try:
        extra = build(tmp, work) or {}
        if not main:
            shutil.rmtree(tmp, ignore_errors=True)
            runtime.barrier()
            return read_json(folder / MANIFEST)
        outputs = {str(p.relative_to(tmp)): sha256_file(p) for p in sorted(tmp.rglob("*")) if p.is_file()}
        manifest = {"stage": folder.name, "key": key, "outputs": outputs, "versions": versions(),
                    "seconds": round(time.time() - t0, 2), "created": time.strftime("%Y-%m-%dT%H:%M:%S"), **extra,
                    **(recorded or {})}
        failpoint("stage:before_manifest")
        atomic_write_json(tmp / MANIFEST, manifest)           # the manifest is written last
    except BaseException:
        # a failed build leaves no half-written folder behind; the work folder keeps its
        # checkpoints (a rerun resumes from them) and goes too if the build never wrote any
        shutil.rmtree(tmp, ignore_errors=True)
        if main and work.is_dir() and not any(work.iterdir()):
            work.rmdir()
        raise
    failpoint("stage:before_rename")
    if folder.exists():
        shutil.rmtree(folder)
    os.replace(tmp, folder)
    shutil.rmtree(work, ignore_errors=True)
    runtime.barrier()
    return manifest


def _link_donor(folder: Path, key: dict, donors: Sequence[Path], recorded: dict | None = None) -> str | None:
    """Link the first donor finished with `key` into `folder` (whole or not at all); its path, or None.
    A donor that cannot be read or linked, or that changed while it was linked, is passed over (the
    stage is then built as usual)."""
    want = sha256_json(_canonical(key))
    for donor in map(Path, donors):
        mpath = donor / MANIFEST
        try:
            if donor.resolve() == folder.resolve() or not mpath.is_file() or \
                    sha256_json(read_json(mpath)["key"]) != want:   # cheap test first: no file hashed
                continue
            if check(donor, key, recorded)[0] is None:
                continue
            link_folder(donor, folder)
            if check(folder, key, recorded)[0] is None:   # the donor was rebuilt meanwhile (another process)
                shutil.rmtree(folder, ignore_errors=True)
                continue
        except (ValueError, KeyError, TypeError, OSError, shutil.Error):
            shutil.rmtree(folder.with_name(f".{folder.name}.link-tmp"), ignore_errors=True)
            continue
        for old in folder.parent.glob(f".{folder.name}.work-*"):   # checkpoints of a build it replaces
            shutil.rmtree(old, ignore_errors=True)
        return str(donor)
    return None


def link_folder(src: Path, dst: Path) -> None:
    """`dst` becomes a copy of finished stage folder `src` made of hard links (copies across file
    systems); it appears whole, manifest included, or not at all."""
    tmp = dst.with_name(f".{dst.name}.link-tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.parent.mkdir(parents=True, exist_ok=True)
    shutil.copytree(src, tmp, copy_function=_link_or_copy)
    if dst.exists():
        shutil.rmtree(dst)
    os.replace(tmp, dst)


def _link_or_copy(src, dst):
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)
    return dst


def _start(folder: Path, tmp: Path, work: Path) -> str | None:
    """Fresh temporary folder, the work folder kept (its checkpoints resume the build); None or the problem."""
    shutil.rmtree(tmp, ignore_errors=True)
    for old in folder.parent.glob(f".{folder.name}.work-*"):   # checkpoints of another key are useless
        if old != work:
            shutil.rmtree(old, ignore_errors=True)
    try:
        tmp.mkdir(parents=True)
        work.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        return f"cannot create {tmp}: {e.strerror or e}"
    return None
