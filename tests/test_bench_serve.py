"""bench/serve.py --quick (issue 34): on a tiny run built on the fly, every teacher, the ensemble and the
exported student (float32 and int8) get a full row, and the last line is `ratio=<number>`."""
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ROWS = ["teacher:tiny_hf", "teacher:cnn", "teacher:tfidf", "ensemble", "student:float32", "student:int8"]


@pytest.mark.slow   # a benchmark in a subprocess (exports, int8, timings)
def test_serve_quick_prints_every_row_and_a_ratio():
    done = subprocess.run([sys.executable, "bench/serve.py", "--quick"], cwd=ROOT, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stdout.strip().splitlines()
    table = [line for line in lines if line.startswith("| ")]
    head = [c.strip() for c in table[0].strip("|").split("|")]
    assert head[:4] == ["model", "kind", "accuracy %", "agrees with run %"] and head[-2:] == ["peak RSS MB", "disk MB"]
    assert [h for h in head if "thr)" in h] == [f"{what} ({n} thr)" for n in _threads(head)
                                                for what in ("ex/s b32", "p50 ms b1", "p99 ms b1")]
    rows = {cells[0]: cells for cells in ([c.strip() for c in line.strip("|").split("|")] for line in table[1:])}
    assert list(rows) == ROWS
    memory_ok = Path("/proc/self/clear_refs").exists()
    for name, cells in rows.items():
        assert len(cells) == len(head), cells
        numbers = cells[2:] if memory_ok else cells[2:-2] + cells[-1:]
        values = [float(c) for c in numbers]   # every figure parses
        assert all(v >= 0 for v in values) and 0 <= values[0] <= 100
        throughputs = [float(cells[i]) for i, h in enumerate(head) if h.startswith("ex/s")]
        assert all(t > 0 for t in throughputs), (name, throughputs)
        if name != "student:int8":   # served through the user's path, the models are the evaluated ones
            assert float(cells[3]) >= 95.0, (name, cells[3])
    assert any(line.startswith("int8 (") and "floor 95%" in line for line in lines)
    m = re.fullmatch(r"ratio=(\d+\.\d+)", lines[-1])
    assert m and float(m.group(1)) > 0, lines[-1]


def _threads(head):
    return list(dict.fromkeys(int(re.search(r"\((\d+) thr\)", h).group(1)) for h in head if "thr)" in h))


def test_teachers_run_must_hold_the_same_eval_split(tmp_path):
    """--teachers-run serves the teachers of the run that fine-tuned them only when its eval split is the run's
    (the agreement column compares to its stored logits); anything else is a one-line MtkdError."""
    import json
    sys.path.insert(0, str(ROOT / "bench"))
    import serve
    from mtkd.errors import MtkdError

    def make_run(name, fingerprint, config=True):
        d = tmp_path / name
        (d / "demo" / "data").mkdir(parents=True)
        (d / "demo" / "data" / "manifest.json").write_text(json.dumps({"splits": {"eval": {"fingerprint": fingerprint}}}))
        if config:
            (d / "config.yaml").write_text("name: t\ntasks: [{name: demo, demo_size: 60}]\n"
                                           "teachers: [{name: tf, kind: tfidf}]\n")
        return d

    run, same, other = make_run("run", "abc"), make_run("same", "abc"), make_run("other", "xyz")
    assert [t.name for t in serve.teachers_config(run, same, "demo").teachers] == ["tf"]
    with pytest.raises(MtkdError, match="eval split of 'demo' is not"):
        serve.teachers_config(run, other, "demo")
    with pytest.raises(MtkdError, match="not a run directory"):
        serve.teachers_config(run, make_run("bare", "abc", config=False), "demo")
    with pytest.raises(MtkdError, match="no finished data stage of task 'sst2'"):
        serve.teachers_config(run, same, "sst2")
