"""The shipped student is the reported student (issue 29, items 5 and 7): `mtkd export` checks the
exported model against the run's stored eval predictions of that student on every eval example, at
the run's precision, and says which seed it ships; the default student of `predict` / `export` is the
analysis's selection (seed-mean validation, single/multi only); `mtkd export-data` gives an outside
scorer no gold label beyond train's."""
import csv
import json
import shutil
from pathlib import Path

import numpy as np
import yaml

from mtkd import runtime
from mtkd.cli import main
from mtkd.predict import find_student
from test_ship import new_inputs, one_file_task, run_cli, tiny_config

ONLY_NO_KD = ("distill.single_teacher=false", "distill.strategies=[]")


def refused(capsys, argv, phrase):
    assert main([str(a) for a in argv]) != 0
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and phrase in err, err


def eval_texts(run: Path) -> list[str]:
    lines = (run / "reviews" / "data" / "eval.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line)["text"][0] for line in lines if line.strip()]


def test_export_checks_every_eval_example_against_the_stored_logits(capsys, tmp_path):
    """Untampered: the check runs on every eval example and the folder names the shipped seed. One
    stored eval logit row flipped (the run's reported predictions no longer those of the weights):
    refused in one line, nothing written."""
    cfg = tiny_config(tmp_path, one_file_task(tmp_path, n=200))
    run = tmp_path / "run"
    run_cli(capsys, "run", cfg, "--out", run, *ONLY_NO_KD)
    out = run_cli(capsys, "export", run, "--model", "no_kd", "--out", tmp_path / "ok")
    info = json.loads((tmp_path / "ok" / "mtkd_export.json").read_text())
    n_eval = len(eval_texts(run))
    assert info["checked_examples"] == n_eval == 40 and info["argmax_agreement"] == 1.0
    assert info["seed"] == 42 and info["seeds"] == [42] and info["precision"] == "no"
    assert info["max_abs_logit_difference"] <= info["tolerance"] == 1e-3
    assert "the weights of seed 42" in out and f"all {n_eval} eval examples" in out

    stored_path = run / "reviews" / "students" / "no_kd" / "logits_eval.npy"
    stored = np.load(stored_path)
    margin = np.abs(stored[:, 1] - stored[:, 0])
    i = int(margin.argmax())
    assert margin[i] > 2 * info["tolerance"]   # a flip there is no close call
    tampered = stored.copy()
    tampered[i] = tampered[i, ::-1]
    np.save(stored_path, tampered)
    refused(capsys, ["export", run, "--model", "no_kd", "--out", tmp_path / "bad"],
            "export check failed: the exported no_kd is not the evaluated one")
    assert not (tmp_path / "bad").exists() and not list(tmp_path.glob(".bad.tmp*"))


def _set_validation(run: Path, scores: dict[str, dict[int, float]]) -> None:
    """Give each student these validation accuracies per seed: in its metrics.json (every seed's
    folder) and in the eval manifest (seed_metrics and the seed mean the analysis selects on)."""
    students = run / "reviews" / "students"
    manifest_path = run / "reviews" / "eval" / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    for entry in manifest["models"]:
        if entry["method"] not in scores:
            continue
        per_seed = scores[entry["method"]]
        for seed, value in per_seed.items():
            path = students / (entry["method"] + ("" if seed == 42 else f"@seed{seed}")) / "metrics.json"
            metrics = json.loads(path.read_text())
            metrics["validation"]["accuracy"] = value
            path.write_text(json.dumps(metrics))
            entry["seed_metrics"][str(seed)]["validation"]["accuracy"] = value
        entry["validation_metrics"]["accuracy"] = float(np.mean(list(per_seed.values())))
    manifest_path.write_text(json.dumps(manifest, indent=2))


def test_default_student_is_the_analysis_selection(capsys, tmp_path):
    """no_kd has the best validation score at every seed, multi_average the best run-seed score of the
    distilled students, kd_tf the best seed mean: predict and export default to kd_tf, the student
    the analysis selects (its success_metrics.json), and say it ships seed 42's weights of a 2-seed mean."""
    cfg = tiny_config(tmp_path, one_file_task(tmp_path, n=200))
    run = tmp_path / "run"
    run_cli(capsys, "run", cfg, "--out", run, "seeds=[42,1]")
    _set_validation(run, {"no_kd": {42: 95.0, 1: 95.0}, "kd_tf": {42: 60.0, 1: 90.0},
                          "multi_average": {42: 80.0, 1: 60.0}})
    run_cli(capsys, "analyze", run)
    success = json.loads((run / "analysis" / "success_metrics.json").read_text())
    assert success["tasks"]["reviews"]["best_student"]["method"] == "kd_tf"

    inp, _ = new_inputs(tmp_path)
    out = run_cli(capsys, "predict", run, "--input", inp, "--output", tmp_path / "p.csv")
    assert "reviews/kd_tf (the analysis's selected student): the weights of seed 42" in out
    assert "mean over seeds 42, 1" in out
    run_cli(capsys, "export", run, "--out", tmp_path / "exp")
    info = json.loads((tmp_path / "exp" / "mtkd_export.json").read_text())
    assert (info["method"], info["seed"], info["seeds"]) == ("kd_tf", 42, [42, 1])
    assert info["selected"].startswith("analysis")

    evaluated = run / "reviews" / "eval" / "manifest.json"   # without the evaluate stage: no default, one line
    evaluated.rename(evaluated.with_suffix(".away"))
    refused(capsys, ["predict", run, "--input", inp], "is not evaluated yet")
    assert find_student(run, "no_kd").method == "no_kd"   # a named student needs no selection


def test_predict_and_export_run_at_the_runs_precision(capsys, tmp_path):
    """A bf16 run: from a process in float32 (as a fresh `mtkd predict` is), predict reproduces the
    run's stored eval probabilities exactly and export's check passes at bf16 and records it; the
    process's own precision is left as it was."""
    cfg = tiny_config(tmp_path, one_file_task(tmp_path, n=200))
    run = tmp_path / "run"
    run_cli(capsys, "run", cfg, "--out", run, *ONLY_NO_KD, "mixed_precision=bf16")
    runtime.set_precision("no")
    student = find_student(run, "no_kd")
    assert student.precision == "bf16"
    texts = eval_texts(run)
    stored = np.load(run / "reviews" / "students" / "no_kd" / "logits_eval.npy")
    assert np.abs(student.logits([(t,) for t in texts], precision="no") - stored).max() > 1e-5   # it matters here

    inp = tmp_path / "eval_texts.jsonl"
    inp.write_text("".join(json.dumps({"text": t}) + "\n" for t in texts), encoding="utf-8")
    run_cli(capsys, "predict", run, "--model", "no_kd", "--input", inp, "--output", tmp_path / "p.jsonl")
    probs = np.array([[r["prob_negative"], r["prob_positive"]]
                      for r in map(json.loads, (tmp_path / "p.jsonl").read_text().splitlines())])
    expected = np.exp(stored - stored.max(1, keepdims=True))
    assert np.abs(probs - expected / expected.sum(1, keepdims=True)).max() < 1e-6
    assert runtime.precision() == "no"

    run_cli(capsys, "export", run, "--model", "no_kd", "--out", tmp_path / "exp")
    info = json.loads((tmp_path / "exp" / "mtkd_export.json").read_text())
    assert info["precision"] == "bf16" and info["max_abs_logit_difference"] == 0.0
    assert runtime.precision() == "no"


def test_export_data_gives_no_gold_label_but_train(capsys, tmp_path):
    """validation, eval, the transfer set and an extra eval set: text columns only; train keeps its labels
    (a teacher trains on them). CSV and JSONL alike."""
    task = one_file_task(tmp_path, n=400)
    task.update(max_train_examples=200, transfer_from_train=40,
                extra_eval=[{"name": "ood", "file": "data/ood.csv", "label_column": "sentiment"}])
    # an out-of-domain set of other sentences (a copy of the task's own would leave no transfer text: the
    # transfer set never holds an extra eval set's content)
    from mtkd.demo_data import generate
    ood_texts, ood_labels = generate(30, seed=99, split="eval")
    (tmp_path / "data" / "ood.csv").write_text("text,sentiment\n" + "".join(
        f"{t},{['negative', 'positive'][y]}\n" for t, y in zip(ood_texts, ood_labels)), encoding="utf-8")
    cfg = tiny_config(tmp_path, task)
    for fmt in ("csv", "jsonl"):
        run_cli(capsys, "export-data", cfg, "--out", tmp_path / fmt, "--format", fmt)
        folder = tmp_path / fmt / "reviews"
        assert sorted(p.stem for p in folder.glob(f"*.{fmt}")) == ["eval", "ood", "train", "transfer", "validation"]
        for split in ("train", "validation", "eval", "transfer", "ood"):
            text = (folder / f"{split}.{fmt}").read_text(encoding="utf-8")
            rows = list(csv.DictReader(text.splitlines())) if fmt == "csv" else list(map(json.loads, text.splitlines()))
            assert rows and all(list(r) == (["text", "label"] if split == "train" else ["text"]) for r in rows), split
            if split == "train":
                assert {r["label"] for r in rows} == {"negative", "positive"}
