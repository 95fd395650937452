"""Sweeps on Ray: the points of `mtkd sweep --ray` run as Ray tasks on a local Ray (2 CPUs) and give what
the sequential sweep gives; a driver killed midway leaves finished points cached for the rerun."""
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from mtkd.cli import main
from mtkd.sweeps import OnRay, run_sweep

pytestmark = pytest.mark.slow   # slow tier: Ray (python -m pytest -m 'not slow' skips it)

pytest.importorskip("ray")

BASE = """
name: base
seed: 7
tasks: [{name: demo, demo_size: 300}]
teachers: [{name: tf, kind: tfidf}]
student: {model: tiny, layers: 1, epochs: 1, lr: 2.0e-3, max_length: 24}
distill: {strategies: [average], single_teacher: false, baseline: false}
"""
POINTS = "student.epochs=1,12"          # the second point is 12 times longer than the first


@pytest.fixture(scope="module")
def base_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("ray")
    (folder / "base.yaml").write_text(BASE)
    out = folder / "run"
    assert main(["extract-logits", str(folder / "base.yaml"), "--out", str(out)]) == 0
    return out


def fresh(base_run: Path, name: str) -> Path:
    """A copy of the base run without sweeps: a sweep's points link students that another sweep of the same
    base run trained with the same key, so each sweep compared here runs on its own copy and trains."""
    out = base_run.parent / name
    shutil.copytree(base_run, out, ignore=shutil.ignore_patterns("sweeps"))
    return out


@pytest.fixture(scope="module")
def sequential(base_run):
    """One point after the other on one torch thread, as each 1-CPU Ray task runs: bytes equal only at equal
    thread counts (a float sum split over 2 threads rounds differently)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return run_sweep(fresh(base_run, "seq_base"), [POINTS], name="seq", log=lambda line: None)
    finally:
        torch.set_num_threads(threads)


def student_logits(sweep: Path) -> dict[str, bytes]:
    return {p.relative_to(sweep).as_posix(): p.read_bytes() for p in sorted(sweep.glob("*/demo/students/*/logits_eval.npy"))}


def test_ray_sweep_equals_the_sequential_sweep(base_run, sequential):
    """Each point a Ray task (1 CPU each on a local Ray of 2): the same table and the same student logits,
    byte for byte, as one point after the other."""
    ray_sweep = run_sweep(fresh(base_run, "ray_base"), [POINTS], name="on_ray", log=lambda line: None,
                          ray=OnRay(local_cpus=2))
    assert (ray_sweep / "sweep_results.csv").read_text() == (sequential / "sweep_results.csv").read_text()
    assert student_logits(ray_sweep) == student_logits(sequential) and len(student_logits(sequential)) == 2
    log = (ray_sweep / "epochs=1" / "log.txt").read_text()   # written by the point's Ray task
    assert f"cached  {ray_sweep / 'epochs=1' / 'demo' / 'teachers' / 'tf'}" in log   # linked, not rebuilt


def test_killed_ray_driver_rerun_finishes_only_the_missing_point(base_run, sequential):
    """The driver (and with it its local Ray) is killed once the short point is finished and the long one is
    training; the rerun finds the short point's stages cached, trains only the long one, and the sweep
    ends as the sequential one."""
    base_run = fresh(base_run, "killed_base")
    cmd = [sys.executable, "-m", "mtkd", "sweep", str(base_run), "--param", POINTS, "--name", "killed", "--ray"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    short = base_run / "sweeps" / "killed" / "epochs=1" / "demo" / "eval" / "manifest.json"
    long_student = base_run / "sweeps" / "killed" / "epochs=12" / "demo" / "students" / "multi_average"
    driver = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 240
    while not short.is_file() and driver.poll() is None and time.time() < deadline:
        time.sleep(0.1)
    os.killpg(driver.pid, signal.SIGKILL)
    driver.wait()
    time.sleep(2)   # the driver's Ray workers end within 0.5 s (sweeps/on_ray.py: _die_with)
    assert short.is_file() and not (long_student / "manifest.json").is_file(), "not killed between the two points"
    rerun = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    folder = base_run / "sweeps" / "killed"
    assert f"cached  {folder / 'epochs=1' / 'demo' / 'students' / 'multi_average'}" in rerun.stdout, rerun.stdout
    assert f"build   {long_student}" in rerun.stdout, rerun.stdout
    assert (folder / "sweep_results.csv").read_text() == (sequential / "sweep_results.csv").read_text()
    assert student_logits(folder) == student_logits(sequential)
