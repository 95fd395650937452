"""Two processes on one run directory: a stage is built once, by whoever locks it first; the other waits and
reads it as cached (before the lock, the second cleared the first's temporary folder and a stage could be
renamed into place without its logits — seen on a real run)."""
import multiprocessing
import threading
import time

from mtkd import stages


def _slow_build(calls, started):
    def build(tmp, work):
        calls.append(1)
        started.set()
        (tmp / "a.txt").write_text("first half")
        time.sleep(0.6)                      # the other caller arrives while this build is half-way
        (tmp / "b.txt").write_text("second half")
        return {"built_by": threading.current_thread().name}
    return build


def test_a_stage_is_built_once_while_another_caller_waits(tmp_path):
    folder, key, calls, started = tmp_path / "stage", {"k": 1}, [], threading.Event()
    out, logs = {}, []
    first = threading.Thread(target=lambda: out.__setitem__("first", stages.run(folder, key, _slow_build(calls, started),
                                                                                 log=logs.append)), name="first")
    first.start()
    started.wait(5)
    out["second"] = stages.run(folder, key, _slow_build(calls, threading.Event()), log=logs.append)
    first.join()
    assert len(calls) == 1, "the stage was built twice at once"
    assert out["second"] == out["first"] and out["first"]["built_by"] == "first"
    assert sorted(out["first"]["outputs"]) == ["a.txt", "b.txt"]
    assert (folder / "a.txt").read_text() == "first half" and (folder / "b.txt").read_text() == "second half"
    assert any(line.startswith("  waiting ") for line in logs) and any(line.startswith("  cached ") for line in logs)
    assert not list(tmp_path.glob(".stage.*")), "no lock, tmp or work folder is left behind"


def _hold(path, ready, release):
    with stages.locked(path, log=lambda _: None):
        ready.set()
        release.wait(10)


def test_the_lock_holds_across_processes_and_dies_with_its_holder(tmp_path):
    ctx = multiprocessing.get_context("fork")
    ready, release = ctx.Event(), ctx.Event()
    holder = ctx.Process(target=_hold, args=(tmp_path / "stage", ready, release))
    holder.start()
    assert ready.wait(10)
    waited = []
    t = threading.Thread(target=lambda: stages.run(tmp_path / "stage", {"k": 2}, lambda tmp, work: None,
                                                   log=waited.append))
    t.start()
    time.sleep(0.5)
    assert t.is_alive() and waited and waited[0].startswith("  waiting "), "the other process's lock was not seen"
    holder.kill()                             # killed while holding it: the kernel releases the lock
    holder.join()
    t.join(10)
    assert not t.is_alive() and (tmp_path / "stage" / "manifest.json").is_file()
