"""A published folder carries its evidence (docs/run_dir.md, "A published folder and its evidence"): `mtkd analyze`
and `mtkd report` on it, without the run folder, recompute exactly the published tables and report. Fake run of
tests/_fake_run.py."""
from __future__ import annotations

import csv
import json
import shutil
import sys
from pathlib import Path

import numpy as np

from _fake_run import build_fake_run
from mtkd.analysis.load import load_run
from mtkd.cli import main
from mtkd.tasks import compute_metrics

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
import study_cpu  # noqa: E402

GATE = {"teachers": ["t_a", "t_b", "t_c"], "joint": False, "train": {"t_a": 0.5, "t_b": 0.3, "t_c": 0.2},
        "per_epoch": [{"t_a": 0.5, "t_b": 0.3, "t_c": 0.2}], "eval": {"t_a": 0.6, "t_b": 0.3, "t_c": 0.1},
        "eval_regions": {"all_agree": {"n": 400, "t_a": 0.6, "t_b": 0.3, "t_c": 0.1}, "partial": {"n": 0},
                         "full_disagree": {"n": 0}}}


def _add_gate_and_extra_set(run: Path) -> None:
    """Task bin gets what a real run may have besides: a learned gate's record, an extra eval set `adv` (every
    model's logits on it), and a data manifest with the splits' fingerprints."""
    folder = run / "bin" / "eval"
    man = json.loads((folder / "manifest.json").read_text())
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, 60)
    np.save(folder / "labels_adv.npy", y.astype(np.int64))
    man["extra_eval"] = {"adv": {"labels": "labels_adv.npy", "size": 60}}
    for m in man["models"]:
        logits = rng.normal(0, 1, (60, 2)).astype(np.float32)
        np.save(folder / f"{m['method']}.adv.npy", logits)
        m["extra_files"] = {"adv": f"{m['method']}.adv.npy"}
        m["extra_metrics"] = {"adv": {"accuracy": 100.0 * float((logits.argmax(1) == y).mean())}}
        if m["method"] == "multi_average":
            (folder / "multi_average.gate.json").write_text(json.dumps(GATE))
            m["gate_file"] = "multi_average.gate.json"
    (folder / "manifest.json").write_text(json.dumps(man, indent=2))
    (run / "bin" / "data").mkdir()
    fps = {"train": "1" * 64, "validation": "2" * 64, "eval": "3" * 64, "adv": "4" * 64}
    (run / "bin" / "data" / "manifest.json").write_text(json.dumps({"key": {"fingerprints": fps}}))


def _publish(tmp_path: Path) -> tuple[Path, Path]:
    run = build_fake_run(tmp_path, seeds=(0, 1, 2))
    _add_gate_and_extra_set(run)
    dest = tmp_path / "published"
    with open(tmp_path / "log.txt", "w") as log:
        study_cpu.publish(run, dest, log)   # runs `mtkd report RUN` (the analysis first), then copies
    return run, dest


def _evidence_only(tmp_path: Path) -> tuple[Path, Path]:
    """A run and a folder with its config and evidence alone (what analyze needs), without the report."""
    from mtkd.analysis.evidence import write_evidence
    run = build_fake_run(tmp_path)
    dest = tmp_path / "published"
    write_evidence(run, dest)
    shutil.copy2(run / "config.yaml", dest / "config.yaml")
    return run, dest


def _cells(path: Path) -> list[list[str]]:
    with open(path, newline="") as f:
        return list(csv.reader(f))


def test_published_evidence_reproduces_every_table_without_the_run(tmp_path, capsys):
    run, dest = _publish(tmp_path)
    # what was published from the run; then the run folder moved away and the published analysis and report removed
    expected = {p.name: p.read_bytes() for p in (dest / "analysis").iterdir()}
    report = (dest / "report.md").read_text()
    master = _cells(dest / "results" / "master_results.csv")
    assert {"significance.csv", "gap_closed.csv", "steadiness.csv", "gate_weights.csv", "worst_slices.csv",
            "success_metrics.json", "manifest.json"} <= set(expected)
    moved = run.rename(tmp_path / "moved")
    shutil.rmtree(dest / "analysis")
    (dest / "report.md").unlink()
    assert main(["analyze", str(dest)]) == 0
    assert main(["report", str(dest)]) == 0
    capsys.readouterr()
    assert {p.name for p in (dest / "analysis").iterdir()} == set(expected)
    for name, data in sorted(expected.items()):   # every table cell for cell, every plot and JSON byte for byte
        if name.endswith(".csv"):
            assert _cells(dest / "analysis" / name) == list(csv.reader(data.decode().splitlines())), name
        assert (dest / "analysis" / name).read_bytes() == data, name
    assert (dest / "report.md").read_text() == report   # verdict, master results, every table, sweeps, config

    # the master table's metrics (means over seeds) are recomputed from the evidence alone
    rows = {r[0]: dict(zip(master[0], r)) for r in master[1:]}
    for t in load_run(dest):
        for m in t.models:
            per_seed = [compute_metrics(t.labels, lg.argmax(1), len(t.label_names), t.pos_label)[t.metric]
                        for lg in m.seed_logits.values()]
            assert rows[m.method][f"{t.name}_acc"] == f"{np.mean(per_seed):.2f}", (t.name, m.method)

    # the evidence holds every array of the eval folders, bit for bit (float32 logits, int64 labels), the eval
    # manifest, the gates' records and the splits' fingerprints
    for task in ("bin", "tri"):
        doc = json.loads((dest / "evidence" / f"{task}.json").read_text())
        assert doc["evidence"] == 1
        assert doc["manifest"] == json.loads((moved / task / "eval" / "manifest.json").read_text())
        with np.load(dest / "evidence" / f"{task}.npz") as z:
            files = sorted(p.name for p in (moved / task / "eval").glob("*.npy"))
            assert sorted(f"{n}.npy" for n in z.files) == files
            for f in files:
                a, b = np.load(moved / task / "eval" / f), z[f.removesuffix(".npy")]
                assert a.dtype == b.dtype and a.tobytes() == b.tobytes(), f
    bin_doc = json.loads((dest / "evidence" / "bin.json").read_text())
    assert bin_doc["gates"] == {"multi_average": GATE} and bin_doc["fingerprints"]["adv"] == "4" * 64


def test_evidence_problems_are_one_line(tmp_path, capsys):
    run, dest = _evidence_only(tmp_path)
    shutil.rmtree(run)
    npz = dest / "evidence" / "tri.npz"
    good = npz.read_bytes()
    npz.write_bytes(good + b"x")   # not the arrays the JSON was written with
    assert main(["analyze", str(dest)]) != 0
    err = capsys.readouterr().err
    assert "tri.npz" in err and "sha256" in err and err.count("\n") == 1
    npz.unlink()
    assert main(["analyze", str(dest)]) != 0
    err = capsys.readouterr().err
    assert "cannot read" in err and "tri.npz" in err and err.count("\n") == 1
    shutil.rmtree(dest / "evidence")
    assert main(["analyze", str(dest)]) != 0
    err = capsys.readouterr().err
    assert "no evaluated task" in err and "evidence/<task>.json" in err and err.count("\n") == 1
    assert not (dest / "analysis" / "manifest.json").exists()   # nothing half-written


def test_republishing_removes_evidence_of_tasks_the_run_no_longer_has(tmp_path):
    run, dest = _evidence_only(tmp_path)
    from mtkd.analysis.evidence import write_evidence
    shutil.rmtree(run / "bin" / "eval")
    written = write_evidence(run, dest)
    assert sorted(p.name for p in (dest / "evidence").iterdir()) == sorted(p.name for p in written) \
        == ["tri.json", "tri.npz"]
