"""A student to ship (issue 9.3): students are saved with their tokenizer and the task's label names;
`mtkd predict` labels new text with the analysis's selected student (or a named one); `mtkd
export` writes a folder that `transformers.pipeline` loads and that predicts exactly what `mtkd
predict` does — mean-pooled students included, sentence pairs included."""
import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from mtkd.cli import main
from mtkd.demo_data import generate

ROOT = Path(__file__).resolve().parents[1]


def run_cli(capsys, *argv):
    rc = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    assert rc == 0, err
    return out


def one_file_task(tmp_path, n=400, pairs=False):
    """The demo's sentences in one user file (no eval file): eval is carved with eval_fraction."""
    texts, labels = generate(n, seed=0, split="train")
    names = ["negative", "positive"]
    path = tmp_path / "data" / "all.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8", newline="") as f:
        w = csv.writer(f)
        w.writerow(["premise", "text", "sentiment"] if pairs else ["text", "sentiment"])
        for i, (t, y) in enumerate(zip(texts, labels)):
            w.writerow([f"review {i // 2}", t, names[y]] if pairs else [t, names[y]])
    task = {"name": "reviews", "train_file": "data/all.csv", "eval_fraction": 0.2, "label_column": "sentiment",
            "label_names": names}
    if pairs:
        task["text_columns"] = ["premise", "text"]
    return task


def tiny_config(tmp_path, task, pooling="auto") -> Path:
    cfg = {"name": "ship", "tasks": [task],
           "teachers": [{"name": "tf", "kind": "tfidf"}],
           "student": {"model": "tiny", "layers": 1, "epochs": 1, "max_length": 32, "pooling": pooling},
           "distill": {"strategies": ["average"]}}
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def read_preds(path: Path) -> list[dict]:
    with open(path, encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f))


def pipeline_labels(folder, inputs, pairs=False):
    import transformers

    import mtkd.pooled_model  # noqa: F401  (registers the mean-pooled model: no remote code needed)
    clf = transformers.pipeline("text-classification", model=str(folder), truncation=True)
    batch = [{"text": a, "text_pair": b} for a, b in inputs] if pairs else [a for (a,) in inputs]
    return [r["label"] for r in clf(batch, batch_size=8)]


def new_inputs(tmp_path, pairs=False):
    texts, _ = generate(60, seed=7, split="eval")
    path = tmp_path / "new.jsonl"
    rows = [{"premise": f"p {i}", "text": t} if pairs else {"text": t} for i, t in enumerate(texts)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path, [(r["premise"], r["text"]) if pairs else (r["text"],) for r in rows]


@pytest.mark.parametrize("pairs,pooling", [(False, "auto"), (True, "auto"), (False, "cls")])
def test_predict_and_export_agree(capsys, tmp_path, pairs, pooling):
    """Guards: students saved by default with id2label; the default student is the analysis's selection
    (the single/multi student best on validation, from the eval manifest);
    predict and the exported folder (through transformers.pipeline) give identical labels, for
    mean-pooled (custom head) and CLS (plain BERT) students, single texts and pairs."""
    cfg = tiny_config(tmp_path, one_file_task(tmp_path, pairs=pairs), pooling)
    run = tmp_path / "run"
    run_cli(capsys, "run", cfg, "--out", run)
    students = run / "reviews" / "students"
    saved = json.loads((students / "no_kd" / "model" / "config.json").read_text())
    assert saved["id2label"] == {"0": "negative", "1": "positive"}
    evaluated = json.loads((run / "reviews" / "eval" / "manifest.json").read_text())["models"]
    val = {m["method"]: m["validation_metrics"]["accuracy"] for m in evaluated if m["type"] in ("single", "multi")}
    assert list(val) == ["kd_tf", "multi_average"]
    best = max(val, key=lambda m: (val[m], -list(val).index(m)))

    inp, inputs = new_inputs(tmp_path, pairs)
    out = run_cli(capsys, "predict", run, "--input", inp, "--output", tmp_path / "preds.csv")
    assert f"reviews/{best}" in out
    preds = read_preds(tmp_path / "preds.csv")
    cols = ["premise", "text"] if pairs else ["text"]
    assert [tuple(r[c] for c in cols) for r in preds] == inputs
    probs = np.array([[float(r["prob_negative"]), float(r["prob_positive"])] for r in preds])
    assert np.allclose(probs.sum(1), 1, atol=1e-5)
    assert [r["pred"] for r in preds] == [["negative", "positive"][k] for k in probs.argmax(1)]

    run_cli(capsys, "predict", run, "--model", "no_kd", "--input", inp, "--output", tmp_path / "no_kd.csv")
    run_cli(capsys, "export", run, "--model", "no_kd", "--out", tmp_path / "exported")
    info = json.loads((tmp_path / "exported" / "mtkd_export.json").read_text())
    assert info["max_abs_logit_difference"] <= 1e-4 and info["pooling"] == ("cls" if pooling == "cls" else "mean")
    assert (info["method"], info["seed"], info["precision"], info["argmax_agreement"]) == ("no_kd", 42, "no", 1.0)
    assert (tmp_path / "exported" / "modeling_mtkd.py").is_file() == (pooling != "cls")
    labels = pipeline_labels(tmp_path / "exported", inputs, pairs)
    assert labels == [r["pred"] for r in read_preds(tmp_path / "no_kd.csv")]


def test_exported_folder_loads_without_mtkd(capsys, tmp_path):
    """The mean-pooled export is self-contained: a fresh interpreter that never imports mtkd loads it
    with trust_remote_code=True and gets the same labels as mtkd predict."""
    cfg = tiny_config(tmp_path, one_file_task(tmp_path, n=200))
    run = tmp_path / "run"
    run_cli(capsys, "run", cfg, "--out", run, "distill.single_teacher=false", "distill.strategies=[]")
    inp, inputs = new_inputs(tmp_path)
    run_cli(capsys, "predict", run, "--model", "no_kd", "--input", inp, "--output", tmp_path / "p.csv")
    run_cli(capsys, "export", run, "--model", "no_kd", "--out", tmp_path / "exp")
    code = ("import json, sys, transformers\n"
            f"clf = transformers.pipeline('text-classification', model={str(tmp_path / 'exp')!r}, trust_remote_code=True,"
            " truncation=True)\n"
            f"texts = {[t for (t,) in inputs]!r}\n"
            "print(json.dumps([r['label'] for r in clf(texts)]))\n"
            "assert not any(m == 'mtkd' or m.startswith('mtkd.') for m in sys.modules)\n")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(done.stdout.strip().splitlines()[-1]) == [r["pred"] for r in read_preds(tmp_path / "p.csv")]


def test_predict_refusals(capsys, tmp_path):
    cfg = tiny_config(tmp_path, one_file_task(tmp_path, n=200))
    run = tmp_path / "run"
    run_cli(capsys, "run", cfg, "--out", run, "distill.single_teacher=false", "distill.strategies=[]",
            "student.save_model=false")
    inp, _ = new_inputs(tmp_path)

    def refused(argv, phrase):
        assert main([str(a) for a in argv]) != 0
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and phrase in err, err
    refused(["predict", run, "--model", "no_kd", "--input", inp], "has no saved weights")
    refused(["predict", run, "--model", "multi_x", "--input", inp], "no student 'multi_x'")
    refused(["predict", run, "--input", inp], "no single- or multi-teacher student with a validation metric")
    (tmp_path / "wrong.csv").write_text("body\nhello\n")
    run_cli(capsys, "run", cfg, "--out", run, "distill.single_teacher=false", "distill.strategies=[]", "--recompute")
    refused(["predict", run, "--model", "no_kd", "--input", tmp_path / "wrong.csv"], "missing column 'text'; found body")
    (tmp_path / "exp").mkdir()
    (tmp_path / "exp" / "x").write_text("keep me")
    refused(["export", run, "--model", "no_kd", "--out", tmp_path / "exp"], "exists and is not an empty folder")
    assert (tmp_path / "exp" / "x").read_text() == "keep me"


@pytest.mark.slow
def test_demo_from_one_file_predict_and_export_agree(capsys, tmp_path):
    """Issue 9's done-when: `mtkd demo` (small sizes) on a task read from one file with eval_fraction;
    `mtkd predict` and the exported folder through transformers.pipeline give identical labels, for the
    packaged mean-pooled MiniLM student."""
    task = one_file_task(tmp_path, n=600)
    task["train_file"] = str(tmp_path / "data" / "all.csv")
    overrides = [f"tasks=[{json.dumps(task)}]", "teachers.0.epochs=1", "teachers.1.epochs=1", "student.epochs=1",
                 "distill.strategies=[average]", "distill.single_teacher=false"]
    run = tmp_path / "demo"
    run_cli(capsys, "demo", "--out", run, *overrides)
    inp, inputs = new_inputs(tmp_path)
    run_cli(capsys, "predict", run, "--input", inp, "--output", tmp_path / "preds.csv")
    data = json.loads((run / "reviews" / "data" / "manifest.json").read_text())   # the data stage ran from the file
    assert data["carve"]["eval"]["n"] == 120
    out = run_cli(capsys, "export", run, "--out", tmp_path / "exported")
    method = out.split("(reviews/")[1].split(")")[0]
    assert method == "multi_average"   # the only single/multi student: no_kd is never the default
    labels = pipeline_labels(tmp_path / "exported", inputs)
    assert labels == [r["pred"] for r in read_preds(tmp_path / "preds.csv")]


def test_onnx_export_when_optimum_is_installed(capsys, tmp_path):
    """--onnx goes through optimum's exporter (not a dependency: skipped without it); the ONNX model's
    logits are checked against the student's before the folder appears."""
    pytest.importorskip("optimum.exporters.onnx")
    pytest.importorskip("onnxruntime")
    cfg = tiny_config(tmp_path, one_file_task(tmp_path, n=200, pairs=True))
    run = tmp_path / "run"
    run_cli(capsys, "run", cfg, "--out", run, "distill.single_teacher=false", "distill.strategies=[]")
    run_cli(capsys, "export", run, "--model", "no_kd", "--out", tmp_path / "exp", "--onnx")
    info = json.loads((tmp_path / "exp" / "mtkd_export.json").read_text())
    assert (tmp_path / "exp" / "onnx" / "model.onnx").is_file() and info["onnx_max_abs_logit_difference"] <= 1e-4


def test_onnx_without_optimum_is_one_line(capsys, tmp_path, monkeypatch):
    import importlib.util
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "optimum" else real(name, *a))
    cfg = tiny_config(tmp_path, one_file_task(tmp_path, n=200))
    run = tmp_path / "run"
    run_cli(capsys, "run", cfg, "--out", run, "distill.single_teacher=false", "distill.strategies=[]")
    assert main(["export", str(run), "--model", "no_kd", "--out", str(tmp_path / "exp"), "--onnx"]) != 0
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--onnx needs optimum and onnxruntime" in err
    assert not (tmp_path / "exp").exists() and not list(tmp_path.glob(".exp.tmp*"))
