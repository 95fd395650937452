"""`mtkd export`: a student of a run as a folder that `transformers` loads on its own.

- A student with its model's own head (`pooling: cls`) is saved as it is: any `AutoModelForSequenceClassification`.
- A mean-pooled student (the packaged MiniLM's default) becomes `MtkdMeanPooledForSequenceClassification`
  (pooled_model.py, copied into the folder as `modeling_mtkd.py`): the same encoder and classifier
  weights, with the masked mean pooling in its forward. It loads with `trust_remote_code=True`
  anywhere, or without remote code after `import mtkd.pooled_model` (which registers it).

Either way the folder holds the tokenizer (`model_max_length` = the student's max_length, so
`pipeline(..., truncation=True)` cuts texts where mtkd did), `id2label` / `label2id` of the task, and
`mtkd_export.json` (run, task, method, text columns). Before the folder appears, the exported model's
logits are checked against the student's on eval texts of the run. `--onnx` adds `onnx/model.onnx`
through optimum's exporter when optimum is installed, its logits checked against torch's.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np

from .errors import MtkdError
from .io import atomic_write_json
from .predict import Student

TOLERANCE = 1e-4   # max |logit difference| between the exported model and the student
ENCODER_DROP = ("architectures", "id2label", "label2id", "mtkd_pooling", "problem_type", "_name_or_path",
                "transformers_version", "auto_map", "num_labels", "finetuning_task", "dtype", "torch_dtype")


def export(student: Student, out, onnx: bool = False) -> Path:
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise MtkdError(f"{out} exists and is not an empty folder; choose another --out")
    model, tok = student.load()
    names = list(student.label_names)
    tmp = out.parent / f".{out.name}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        _save(model, names, tmp)
        tok.model_max_length = student.max_length
        tok.save_pretrained(tmp)
        texts = _sample_texts(student)
        expected = student.logits(texts, model, tok)
        diff = _check(tmp, texts, expected, student)
        info = {"run": str(student.run.resolve()), "task": student.task, "method": student.method,
                "text_columns": student.text_columns, "label_names": names, "max_length": student.max_length,
                "pooling": getattr(model.config, "mtkd_pooling", "cls"), "checked_examples": len(texts),
                "max_abs_logit_difference": diff}
        if onnx:
            info["onnx_max_abs_logit_difference"] = _onnx(tmp, texts, expected, student)
        atomic_write_json(tmp / "mtkd_export.json", info)
        if out.exists():
            out.rmdir()
        tmp.rename(out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def _save(model, names: list[str], folder: Path) -> None:
    from .models import MeanPooled
    id2label = dict(enumerate(names))
    label2id = {n: i for i, n in id2label.items()}
    if not isinstance(model, MeanPooled):
        model.config.id2label, model.config.label2id = id2label, label2id
        model.save_pretrained(folder, safe_serialization=True)
        return
    from . import pooled_model
    hf = model.hf
    encoder = {k: v for k, v in hf.config.to_dict().items() if k not in ENCODER_DROP}
    cfg = pooled_model.MtkdMeanPooledConfig(
        encoder=encoder, classifier_dropout=float(hf.dropout.p), id2label=id2label, label2id=label2id,
        architectures=["MtkdMeanPooledForSequenceClassification"],
        auto_map={"AutoConfig": "modeling_mtkd.MtkdMeanPooledConfig",
                  "AutoModelForSequenceClassification": "modeling_mtkd.MtkdMeanPooledForSequenceClassification"})
    new = pooled_model.MtkdMeanPooledForSequenceClassification(cfg)
    new.encoder.load_state_dict(hf.base_model.state_dict())
    new.classifier.load_state_dict(hf.classifier.state_dict())
    new.save_pretrained(folder, safe_serialization=True)
    shutil.copyfile(pooled_model.__file__, folder / "modeling_mtkd.py")


def _sample_texts(student: Student, n: int = 64) -> list[tuple[str, ...]]:
    """Up to n eval texts of the run (its data stage), the longest included."""
    path = student.run / student.task / "data" / "eval.jsonl"
    texts = [tuple(json.loads(line)["text"]) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    longest = max(range(len(texts)), key=lambda i: sum(map(len, texts[i])))
    return texts[:n - 1] + [texts[longest]]


def _check(folder: Path, texts, expected: np.ndarray, student: Student) -> float:
    """Max |logit difference| of the exported folder (loaded by the Auto classes) against the student."""
    from . import pooled_model  # noqa: F401  (registers the mean-pooled model)
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from .models import encode
    from .train import predict
    model = AutoModelForSequenceClassification.from_pretrained(str(folder)).to(_device())
    tok = AutoTokenizer.from_pretrained(str(folder))
    got = predict(model, encode(tok, texts, student.max_length), student.batch_size)
    diff = float(np.abs(got - expected).max())
    if not diff <= TOLERANCE or not (got.argmax(1) == expected.argmax(1)).all():
        raise MtkdError(f"export check failed: the exported model's logits differ from the student's by {diff:.2e}")
    return diff


def _device():
    from accelerate import PartialState
    return PartialState().device


def _onnx(folder: Path, texts, expected: np.ndarray, student: Student) -> float:
    """onnx/model.onnx through optimum (only when installed), its logits checked against torch's."""
    import importlib.util
    if importlib.util.find_spec("optimum") is None or importlib.util.find_spec("onnxruntime") is None:
        raise MtkdError("--onnx needs optimum and onnxruntime (pip install 'optimum[onnxruntime]'); "
                        "the export itself works without them")
    from optimum.exporters.onnx import main_export
    from optimum.exporters.tasks import TasksManager
    from transformers import AutoConfig, AutoTokenizer

    config = json.loads((folder / "config.json").read_text())
    encoder = dict(config.get("encoder") or config)   # the mean-pooled wrapper describes its encoder
    model_type = encoder.pop("model_type")
    make = TasksManager.get_exporter_config_constructor("onnx", model_type=model_type, task="text-classification",
                                                         library_name="transformers")
    custom = {"model": make(AutoConfig.for_model(model_type, **{k: v for k, v in encoder.items()
                                                                if k not in ENCODER_DROP}))}
    main_export(str(folder), output=folder / "onnx", task="text-classification", trust_remote_code=True,
                custom_onnx_configs=custom, no_post_process=True, do_validation=False, library_name="transformers")
    import onnxruntime as ort
    session = ort.InferenceSession(str(folder / "onnx" / "model.onnx"))
    tok = AutoTokenizer.from_pretrained(str(folder))
    wanted = {i.name for i in session.get_inputs()}
    got = []
    for text in texts:
        enc = tok(*text, truncation=True, max_length=student.max_length, return_tensors="np")
        got.append(session.run(["logits"], {k: v.astype(np.int64) for k, v in enc.items() if k in wanted})[0][0])
    diff = float(np.abs(np.stack(got) - expected).max())
    if not diff <= TOLERANCE:
        raise MtkdError(f"ONNX check failed: the ONNX model's logits differ from the student's by {diff:.2e}")
    return diff
