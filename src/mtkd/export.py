"""`mtkd export`: a student of a run as a folder that `transformers` loads on its own.

- A student with its model's own head (`pooling: cls`) is saved as it is: any `AutoModelForSequenceClassification`.
- A mean-pooled student (the packaged MiniLM's default) becomes `MtkdMeanPooledForSequenceClassification`
  (pooled_model.py, copied into the folder as `modeling_mtkd.py`): the same encoder and classifier
  weights, with the masked mean pooling in its forward. It loads with `trust_remote_code=True`
  anywhere, or without remote code after `import mtkd.pooled_model` (which registers it).

The student is the one `mtkd predict` uses (predict.py: by default the analysis's selected student), and
the weights shipped are its run seed's (`students/<method>/`; the master table reports the mean over the
run's seeds): the seed is printed and written into the folder. Either way the folder holds the tokenizer
(`model_max_length` = the student's max_length, so `pipeline(..., truncation=True)` cuts texts where mtkd
did), `id2label` / `label2id` of the task, and `mtkd_export.json` (run, task, method, seed, seeds,
precision, text columns, and the check below).

The check, before the folder appears: the exported folder, loaded by the Auto classes, predicts EVERY
eval example of the run at the run's mixed precision, and its logits are compared with the ones the
run stored for that student (`students/<method>/logits_eval.npy`, from which its reported eval metrics
were computed). It passes when

    max |exported - stored| <= tolerance = TOLERANCE[precision] * max(1, max |stored|)

with TOLERANCE = 1e-3 (float32), 4e-3 (fp16), 3e-2 (bf16), relative to the largest stored logit: four
units in the last place of a 16-bit logit (fp16 2^-10, bf16 2^-7 relative steps), and for float32 a
bound far above its rounding yet far below any real change. Recomputing at the same precision on the
same machine is bit-identical (measured: 0.0 in float32 and in bf16); other hardware, kernels or thread
counts move float32 logits by ~1e-6 of their scale and an autocast logit by a few of its last units
(a bf16 logit near 8 is stored in steps of 0.06), while other weights (another seed, another student, a
changed tokenizer or pooling) move some of the eval logits by 0.1 or more. Its meaning in predictions: the
exported argmax equals the stored one on every eval example whose stored top-2 margin exceeds
2 x tolerance (a flip there needs a logit to move by more than the tolerance); examples within that
margin are close calls, counted (`close_calls`) but allowed to differ. The folder itself holds float32
weights, which `transformers` runs in float32: after a bf16/fp16 run its predictions can differ from
the run's on close calls (`precision` in mtkd_export.json says which run it was).

`--onnx` adds `onnx/model.onnx` through optimum's exporter when optimum is installed, its logits checked
against torch's in float32 (ONNX Runtime has no autocast) on up to 64 eval texts, within 1e-4.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np

from .errors import MtkdError
from .io import atomic_write_json, load_npy
from .predict import Student, at_precision

TOLERANCE = {"no": 1e-3, "fp16": 4e-3, "bf16": 3e-2}   # x max(1, max |stored logit|): see the module docstring
ONNX_TOLERANCE = 1e-4   # max |logit difference| between the ONNX model and torch, both float32
ENCODER_DROP = ("architectures", "id2label", "label2id", "mtkd_pooling", "problem_type", "_name_or_path",
                "transformers_version", "auto_map", "num_labels", "finetuning_task", "dtype", "torch_dtype")


def export(student: Student, out, onnx: bool = False, log=print) -> Path:
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise MtkdError(f"{out} exists and is not an empty folder; choose another --out")
    texts, stored = _eval_set(student)
    model, tok = student.load()
    names = list(student.label_names)
    tmp = out.parent / f".{out.name}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        _save(model, names, tmp)
        tok.model_max_length = student.max_length
        tok.save_pretrained(tmp)
        check = _check(tmp, texts, stored, student)
        info = {"run": str(student.run.resolve()), "task": student.task, "method": student.method,
                "selected": "analysis (validation, mean over seeds, single/multi)" if student.selected else "--model",
                "seed": student.seed, "seeds": list(student.seeds), "precision": student.precision,
                "text_columns": student.text_columns, "label_names": names, "max_length": student.max_length,
                "pooling": getattr(model.config, "mtkd_pooling", "cls"), **check}
        if onnx:
            sample = _sample(texts)
            expected = student.logits(sample, model, tok, precision="no")
            info["onnx_max_abs_logit_difference"] = _onnx(tmp, sample, expected, student)
        atomic_write_json(tmp / "mtkd_export.json", info)
        if out.exists():
            out.rmdir()
        tmp.rename(out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    log(f"exported {student.shipped()}; checked on all {check['checked_examples']} eval examples against the run's "
        f"stored predictions: argmax agreement {check['argmax_agreement']:.2%} ({check['close_calls']} close calls), "
        f"max |logit difference| {check['max_abs_logit_difference']:.1e} <= {check['tolerance']:.1e}")
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


def _eval_set(student: Student) -> tuple[list[tuple[str, ...]], np.ndarray]:
    """(every eval text of the run, in order, from its data stage; the student's stored eval logits)."""
    path = student.run / student.task / "data" / "eval.jsonl"
    stored_path = student.folder / "logits_eval.npy"
    try:
        texts = [tuple(json.loads(line)["text"]) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
        stored = load_npy(stored_path)
    except (OSError, ValueError, KeyError, TypeError, UnicodeDecodeError) as e:
        raise MtkdError(f"cannot read the run's eval texts and {student.method}'s stored eval logits "
                        f"({type(e).__name__}: {e}); rerun the pipeline") from None
    if stored.shape != (len(texts), len(student.label_names)):
        raise MtkdError(f"{stored_path}: shape {stored.shape}, but the run has {len(texts)} eval examples of "
                        f"{len(student.label_names)} classes; rerun the pipeline")
    return texts, stored


def _sample(texts, n: int = 64) -> list[tuple[str, ...]]:
    """Up to n texts, the longest included."""
    longest = max(range(len(texts)), key=lambda i: sum(map(len, texts[i])))
    return texts[:n - 1] + [texts[longest]]


def _check(folder: Path, texts, stored: np.ndarray, student: Student) -> dict:
    """The exported folder (loaded by the Auto classes) against the run's stored eval logits of the
    student, at the run's precision (the rule: module docstring). Returns the numbers for mtkd_export.json."""
    from . import pooled_model  # noqa: F401  (registers the mean-pooled model)
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from .models import encode
    from .train import predict
    model = AutoModelForSequenceClassification.from_pretrained(str(folder)).to(_device())
    tok = AutoTokenizer.from_pretrained(str(folder))
    with at_precision(student.precision):
        got = predict(model, encode(tok, texts, student.max_length), student.batch_size)
    stored = stored.astype(np.float32)
    tol = TOLERANCE[student.precision] * max(1.0, float(np.abs(stored).max(initial=0.0)))
    diff = float(np.abs(got - stored).max(initial=0.0))
    top2 = np.sort(stored, axis=1)[:, -2:]
    close = top2[:, 1] - top2[:, 0] <= 2 * tol   # close calls: a flip there needs no logit to move beyond tol
    agree = got.argmax(1) == stored.argmax(1)
    if not diff <= tol or not agree[~close].all():   # `not <=`: a NaN fails too
        raise MtkdError(f"export check failed: the exported {student.method} is not the evaluated one: against the "
                        f"run's stored eval predictions its class differs on {int((~agree).sum())} of {len(texts)} "
                        f"examples and its logits by up to {diff:.2e} (tolerance {tol:.1e} at precision "
                        f"{student.precision})")
    return {"checked_examples": len(texts), "argmax_agreement": round(float(agree.mean()), 6),
            "close_calls": int(close.sum()), "max_abs_logit_difference": diff, "tolerance": tol,
            "checked_against": str(Path(student.task) / "students" / student.method / "logits_eval.npy")}


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
    if not diff <= ONNX_TOLERANCE:
        raise MtkdError(f"ONNX check failed: the ONNX model's logits differ from the student's by {diff:.2e}")
    return diff
