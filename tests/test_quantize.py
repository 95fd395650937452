"""A student worth shipping (issue 34): `mtkd export --quantize int8` writes dynamic int8 Linear layers
(model_int8.pt, no float copy) that load with one call, `mtkd.export.load_quantized`; the export checks
the int8 model on every eval example against the run's stored predictions and reports the argmax
agreement and the official metric's change, failing in one line only below the agreement floor."""
import json

import numpy as np
import pytest
import torch

from mtkd import export as export_mod
from mtkd.cli import main
from mtkd.errors import MtkdError
from test_ship import new_inputs, one_file_task, run_cli, tiny_config

ONLY_NO_KD = ("distill.single_teacher=false", "distill.strategies=[]")


def refused(capsys, argv, phrase):
    assert main([str(a) for a in argv]) != 0
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and phrase in err, err


def eval_rows(run, task="reviews"):
    lines = (run / task / "data" / "eval.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines if line.strip()]


@pytest.mark.parametrize("pairs,pooling", [(False, "auto"), (True, "cls")])
def test_int8_export_is_checked_and_loads_with_one_call(capsys, tmp_path, pairs, pooling):
    """Mean-pooled (custom head) and CLS students, single texts and pairs: the folder holds model_int8.pt and
    no float weights; mtkd_export.json and the printed line report agreement and metric change over every eval
    example; load_quantized gives quantized Linear layers whose predictions are the ones the check counted,
    and transformers.pipeline serves it (model object + the folder's tokenizer)."""
    cfg = tiny_config(tmp_path, one_file_task(tmp_path, n=200, pairs=pairs), pooling)
    run = tmp_path / "run"
    run_cli(capsys, "run", cfg, "--out", run, *ONLY_NO_KD)
    out = run_cli(capsys, "export", run, "--model", "no_kd", "--out", tmp_path / "q", "--quantize", "int8")
    folder = tmp_path / "q"
    assert (folder / "model_int8.pt").is_file() and not list(folder.glob("*.safetensors"))
    assert (folder / "modeling_mtkd.py").is_file() == (pooling != "cls")
    info = json.loads((folder / "mtkd_export.json").read_text())
    rows = eval_rows(run)
    q = info["int8"]
    assert info["quantization"] == "int8" and info["argmax_agreement"] == 1.0   # the float weights passed its check
    assert q["checked_examples"] == len(rows) and q["min_agreement"] == export_mod.INT8_MIN_AGREEMENT == 0.95
    assert q["argmax_agreement"] >= 0.95 and q["quantized_linear_layers"] >= 7 and q["metric"] == "accuracy"
    assert q["metric_change_pp"] == pytest.approx(q["metric_int8"] - q["metric_run"], abs=1e-3)
    assert f"int8 ({q['quantized_linear_layers']} Linear layers" in out and "floor 95%" in out
    assert f"on all {len(rows)} eval examples" in out and "accuracy " in out

    model = export_mod.load_quantized(folder)
    quantized = [m for m in model.modules() if isinstance(m, torch.ao.nn.quantized.dynamic.Linear)]
    assert len(quantized) == q["quantized_linear_layers"]
    assert not any(type(m) is torch.nn.Linear for m in model.modules())
    assert "per-channel" in q["scheme"] and all(m.weight().qscheme() == torch.per_channel_affine for m in quantized)
    from mtkd.models import encode, load_tokenizer
    from mtkd.train import predict
    texts = [tuple(r["text"]) for r in rows]
    got = predict(model, encode(load_tokenizer(str(folder)), texts, info["max_length"]))
    stored = np.load(run / "reviews" / "students" / "no_kd" / "logits_eval.npy")
    assert float((got.argmax(1) == stored.argmax(1)).mean()) == pytest.approx(q["argmax_agreement"], abs=1e-6)
    labels = np.array([r["label"] for r in rows])
    assert 100 * float((got.argmax(1) == labels).mean()) == pytest.approx(q["metric_int8"], abs=1e-3)

    import transformers
    clf = transformers.pipeline("text-classification", model=model, tokenizer=str(folder), truncation=True)
    _, inputs = new_inputs(tmp_path, pairs)
    batch = [{"text": a, "text_pair": b} for a, b in inputs] if pairs else [a for (a,) in inputs]
    assert {r["label"] for r in clf(batch, batch_size=8)} <= {"negative", "positive"}


def test_int8_refusals_are_one_line_and_write_nothing(capsys, tmp_path, monkeypatch):
    """--quantize other than int8; agreement below the floor (floor raised past 100%); --onnx --quantize without
    ONNX Runtime's quantizer; load_quantized on a float export; a model without Linear layers."""
    cfg = tiny_config(tmp_path, one_file_task(tmp_path, n=200))
    run = tmp_path / "run"
    run_cli(capsys, "run", cfg, "--out", run, *ONLY_NO_KD)
    exp = tmp_path / "exp"

    def nothing_written():
        assert not exp.exists() and not list(tmp_path.glob(".exp.tmp*"))
    refused(capsys, ["export", run, "--model", "no_kd", "--out", exp, "--quantize", "fp8"],
            "--quantize fp8: mtkd exports int8 only")
    nothing_written()
    monkeypatch.setattr(export_mod, "INT8_MIN_AGREEMENT", 1.01)
    refused(capsys, ["export", run, "--model", "no_kd", "--out", exp, "--quantize", "int8"], "below the floor of 101%")
    nothing_written()
    monkeypatch.undo()

    import importlib.util
    real = importlib.util.find_spec
    present = {"optimum", "onnxruntime"}
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: object() if name in present else None if name == "onnx" else real(name, *a))
    refused(capsys, ["export", run, "--model", "no_kd", "--out", exp, "--onnx", "--quantize", "int8"],
            "--onnx --quantize int8 needs onnx")
    nothing_written()
    monkeypatch.undo()

    run_cli(capsys, "export", run, "--model", "no_kd", "--out", tmp_path / "float")
    with pytest.raises(MtkdError, match="not a folder written by `mtkd export --quantize int8`"):
        export_mod.load_quantized(tmp_path / "float")
    with pytest.raises(MtkdError, match="no nn.Linear layer to quantize"):
        export_mod._quantized(torch.nn.Sequential(torch.nn.Embedding(10, 4), torch.nn.ReLU()))


def test_onnx_int8_when_onnxruntime_is_installed(capsys, tmp_path):
    """--onnx --quantize int8: ONNX Runtime's dynamic quantization of onnx/model.onnx, checked on every eval
    example like the torch int8 model (optional dependencies: skipped without them)."""
    pytest.importorskip("optimum.exporters.onnx")
    pytest.importorskip("onnxruntime.quantization")
    cfg = tiny_config(tmp_path, one_file_task(tmp_path, n=200, pairs=True))
    run = tmp_path / "run"
    run_cli(capsys, "run", cfg, "--out", run, *ONLY_NO_KD)
    run_cli(capsys, "export", run, "--model", "no_kd", "--out", tmp_path / "exp", "--onnx", "--quantize", "int8")
    info = json.loads((tmp_path / "exp" / "mtkd_export.json").read_text())
    onnx_dir = tmp_path / "exp" / "onnx"
    assert (onnx_dir / "model_int8.onnx").is_file() and not (onnx_dir / "model.onnx").exists()
    q = info["onnx_int8"]
    assert q["argmax_agreement"] >= 0.95 and q["checked_examples"] == len(eval_rows(run))
