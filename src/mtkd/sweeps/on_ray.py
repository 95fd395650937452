"""A sweep's points as Ray tasks (`mtkd sweep/seeds --ray [ADDRESS]`): on a local Ray started here or an
existing cluster, each point reserving `ray.cpus_per_task` CPUs and `ray.gpus_per_task` of a GPU, over the
same linked stages as a sweep run point after point."""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from .. import runtime
from ..config import RunConfig
from ..errors import MtkdError
from ..pipeline.run import Run
from .plan import Sweep


@dataclass(frozen=True)
class OnRay:
    """Run the points as Ray tasks: on a local Ray started here (address None) or an existing cluster
    ("auto", "ray://host:10001", "host:6379"; every node must see the run directory and have mtkd)."""
    address: str | None = None
    cpus_per_task: float = 1.0
    gpus_per_task: float = 0.0
    local_cpus: int | None = None     # CPUs of a local Ray (default: all of this machine's)


def _run_point(cfg: RunConfig, out: str, recompute: bool, threads: int, driver: tuple[str, int],
               donors: list[Path]) -> list[str]:
    """One sweep point inside a Ray worker; returns what it logged (its RUN/log.txt has it too)."""
    import torch
    _die_with(driver)
    torch.set_num_threads(threads)   # the task's CPUs, not the machine's: points share the cores fairly
    lines: list[str] = []
    Run(cfg, Path(out), recompute, lines.append, donors=donors).execute("evaluate")
    return lines


def _die_with(driver: tuple[str, int]) -> None:
    """A worker on the driver's machine ends when the driver does: a killed driver takes its local Ray
    down, but a worker busy training would only notice later and might still write its point, under the
    feet of the rerun. (On a cluster, Ray ends a dead driver's tasks itself.)"""
    import socket
    import threading
    host, pid = driver
    if host != socket.gethostname():
        return

    def watch():
        while True:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                os._exit(1)
            except PermissionError:
                pass
            threading.Event().wait(0.5)
    threading.Thread(target=watch, daemon=True, name="mtkd-driver-watch").start()


def execute_on_ray(sweep: Sweep, spec: OnRay, recompute: bool, log, donors: list[Path]) -> None:
    try:
        import ray
    except ImportError:
        raise MtkdError("--ray needs Ray: pip install 'mtkd[ray]' (or pip install ray)") from None
    if runtime.world() > 1:
        raise MtkdError("--ray runs the sweep's points as Ray tasks: start the driver as one process, not under accelerate launch")
    started = not ray.is_initialized()
    if started:
        try:
            ray.init(address=spec.address, num_cpus=spec.local_cpus if spec.address is None else None,
                     include_dashboard=False, configure_logging=False, log_to_driver=False)
        except (ConnectionError, ValueError, RuntimeError) as e:
            raise MtkdError(f"cannot start or reach Ray at {spec.address or 'a local instance'}: "
                            f"{str(e).splitlines()[0] if str(e) else type(e).__name__}") from None
    where = spec.address or f"a local Ray ({int(ray.cluster_resources().get('CPU', 0))} CPUs)"
    log(f"[sweep] {len(sweep.points)} points as Ray tasks on {where}, {spec.cpus_per_task:g} CPU and "
        f"{spec.gpus_per_task:g} GPU each")
    task = ray.remote(num_cpus=spec.cpus_per_task, num_gpus=spec.gpus_per_task, max_retries=0)(_run_point)
    threads = max(1, int(spec.cpus_per_task))
    import socket
    driver = (socket.gethostname(), os.getpid())
    pending = {task.remote(p.cfg, str(sweep.folder / p.folder), recompute, threads, driver, donors): p
               for p in sweep.points}
    try:
        for done in range(1, len(sweep.points) + 1):
            (ref,), _ = ray.wait(list(pending), num_returns=1)
            point = pending.pop(ref)
            try:
                lines = ray.get(ref)
            except ray.exceptions.RayTaskError as e:
                cause = e.cause if isinstance(e.cause, Exception) else e
                raise MtkdError(f"sweep point {point.folder} failed on Ray: "
                                f"{cause if isinstance(cause, MtkdError) else type(cause).__name__ + ': ' + str(cause)}") from None
            log(f"[sweep {done}/{len(sweep.points)}] {point.folder} done")
            for line in lines:
                log(line)
    finally:
        for ref in pending:
            ray.cancel(ref, force=True)
        if started:
            ray.shutdown()
