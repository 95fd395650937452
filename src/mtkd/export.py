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

`--quantize int8`: dynamic int8 quantization of every `nn.Linear` of the student (the encoder's
projections and the classifier; embeddings and LayerNorms stay float32) with PyTorch's own
`torch.ao.quantization.quantize_dynamic` (int8 weights with one scale per output channel —
`per_channel_dynamic_qconfig`; activations quantized on the fly per batch; CPU only). Per channel, not per
tensor: on the demo's student per-tensor scales kept 97.8% of the run's predictions, per-channel ones 99.3%
(a row of large weights no longer sets the step of every row). The folder holds `config.json`, the tokenizer and
`model_int8.pt` instead of float safetensors, and loads with ONE call, `mtkd.export.load_quantized(folder)`:
it rebuilds the float model from `config.json` (random weights), applies the same `quantize_dynamic`
call, then loads `model_int8.pt`, the quantized model's state dict (int8 weights with their scales and
zero points, and the float tensors), saved by `torch.save` and read back with `torch.load(weights_only=True)`,
which runs no pickled code. Not the whole module through `torch.save`: unpickling a module needs
`weights_only=False` (arbitrary code) and the exact class paths of the version that saved it; the
state dict is the format PyTorch documents for quantized models. Not safetensors: it has no quantized
tensor type.

The int8 check: the float folder first passes the check above (it is the student); then the int8 model
predicts every eval example (in float32 activations on CPU, whatever the run's precision), in batches of
32 texts as a server would send them (bench/serve.py's batch), and is compared with the run's stored eval
predictions. Dynamic int8 quantizes activations with one scale per batch, so an int8 model's prediction can
depend on what it is batched with: on the demo's student 99.3% of the run's predictions at batch 32, 98.2%
at batch 128 (a long outlier text sets the scale of the whole batch); serve small batches. int8 legitimately moves logits, so no logit
tolerance: the check reports the argmax agreement with the run's predictions, the official metric of
both and its change, and the largest logit difference, and fails only when the agreement is below
INT8_MIN_AGREEMENT (95%): dynamic int8 keeps a BERT-style classifier's predictions on all but
close calls (its own argmax flips need a top-2 margin within the quantization noise), so below 95% the
int8 model is not the student any more (a broken engine, an outlier-dominated layer), and above it the
figures say what the user gets. With `--onnx`, ONNX Runtime's dynamic quantization
(`onnxruntime.quantization.quantize_dynamic`, QInt8 weights) turns `onnx/model.onnx` into
`onnx/model_int8.onnx` (the float ONNX model is not kept), checked the same way on every eval example.
"""
from __future__ import annotations

import json
import shutil
import warnings
from pathlib import Path

import numpy as np

from .errors import MtkdError
from .io import atomic_write_json, load_npy, read_json
from .predict import Student, at_precision

TOLERANCE = {"no": 1e-3, "fp16": 4e-3, "bf16": 3e-2}   # x max(1, max |stored logit|): see the module docstring
ONNX_TOLERANCE = 1e-4   # max |logit difference| between the ONNX model and torch, both float32
QUANTIZATIONS = ("int8",)
INT8_MIN_AGREEMENT = 0.95   # int8 vs the run's eval predictions: argmax agreement floor (module docstring)
INT8_CHECK_BATCH = 32   # the int8 check's batch size: dynamic int8 scales activations per batch (see docstring)
INT8_WEIGHTS = "model_int8.pt"
ONNX_INT8 = "model_int8.onnx"   # under onnx/
ENCODER_DROP = ("architectures", "id2label", "label2id", "mtkd_pooling", "problem_type", "_name_or_path",
                "transformers_version", "auto_map", "num_labels", "finetuning_task", "dtype", "torch_dtype")


def export(student: Student, out, onnx: bool = False, log=print, quantize: str | None = None) -> Path:
    out = Path(out)
    if quantize is not None and quantize not in QUANTIZATIONS:
        raise MtkdError(f"--quantize {quantize}: mtkd exports {', '.join(QUANTIZATIONS)} only (dynamic int8 "
                        f"quantization of the student's Linear layers)")
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise MtkdError(f"{out} exists and is not an empty folder; choose another --out")
    if onnx:
        _need_onnx(quantize)
    if quantize:
        _quantize_dynamic()   # this torch can quantize (else one line, before any work)
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
        if quantize:
            info["quantization"] = quantize
            info["int8"] = _int8(tmp, texts, stored, student)
            if onnx:
                info["onnx_int8"] = _onnx_int8(tmp, texts, stored, student)
        atomic_write_json(tmp / "mtkd_export.json", info)
        if out.exists():
            out.rmdir()
        tmp.rename(out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    log(f"exported {student.shipped()}; checked on all {check['checked_examples']} eval examples against the run's "
        f"stored predictions: argmax agreement {check['argmax_agreement']:.2%} ({check['close_calls']} close calls), "
        f"max |logit difference| {check['max_abs_logit_difference']:.1e} <= {check['tolerance']:.1e}")
    for key in ("int8", "onnx_int8") if quantize else ():
        if key in info:
            log(_int8_line(info[key]))
    return out


# ---------------------------------------------------------------------------------------------- int8
def load_quantized(folder):
    """The int8 model of an `mtkd export --quantize int8` folder, on CPU, in eval mode: a
    `transformers` sequence classifier whose Linear layers are dynamic int8 ones. Rebuilt from the
    folder's config.json, quantized by the same `quantize_dynamic` call as at export, then given the
    saved state dict (`model_int8.pt`, read with weights_only=True). Its tokenizer:
    `AutoTokenizer.from_pretrained(folder)`; `transformers.pipeline("text-classification",
    model=load_quantized(folder), tokenizer=folder)` serves it."""
    import torch
    from transformers import AutoConfig, AutoModelForSequenceClassification

    from . import pooled_model  # noqa: F401  (registers the mean-pooled model)
    from .models import _quiet_transformers
    folder = Path(folder)
    weights = folder / INT8_WEIGHTS
    if not weights.is_file():
        raise MtkdError(f"{folder}: no {INT8_WEIGHTS}; not a folder written by `mtkd export --quantize int8`")
    _quiet_transformers()
    try:
        model = AutoModelForSequenceClassification.from_config(AutoConfig.from_pretrained(str(folder))).eval()
    except Exception as e:
        raise MtkdError(f"{folder}: cannot rebuild the model from config.json ({type(e).__name__}: "
                        f"{str(e).splitlines()[0][:200] if str(e) else ''})") from None
    scheme = (read_json(folder / "mtkd_export.json").get("int8") or {}).get("scheme", "") \
        if (folder / "mtkd_export.json").is_file() else ""
    model, _ = _quantized(model, per_channel="per-tensor" not in scheme)   # folders of earlier versions: per tensor
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")   # torch's TypedStorage deprecation notice on load
            state = torch.load(weights, map_location="cpu", weights_only=True)
        model.load_state_dict(state)
    except Exception as e:
        raise MtkdError(f"{weights}: cannot load the int8 weights ({type(e).__name__}: "
                        f"{str(e).splitlines()[0][:200] if str(e) else ''}); export it again") from None
    return model


def _quantize_dynamic():
    """torch.ao.quantization.quantize_dynamic, or one line saying why this torch cannot quantize."""
    import torch
    try:
        from torch.ao.quantization import quantize_dynamic
    except ImportError:
        raise MtkdError(f"--quantize int8 needs torch.ao.quantization.quantize_dynamic, which torch "
                        f"{torch.__version__} does not have; export without --quantize") from None
    if not [e for e in torch.backends.quantized.supported_engines if e != "none"]:
        raise MtkdError(f"--quantize int8: this torch build ({torch.__version__}) has no quantized engine "
                        f"(torch.backends.quantized.supported_engines: none); export without --quantize")
    return quantize_dynamic


def _quantized(model, per_channel: bool = True):
    """(`model` with every nn.Linear replaced by a dynamic int8 one, in place, on CPU; how many were);
    int8 weights with a scale per output channel (`per_channel`) or one per tensor (folders of mtkd before it)."""
    import torch
    quantize_dynamic = _quantize_dynamic()
    from torch.ao.quantization import default_dynamic_qconfig, per_channel_dynamic_qconfig
    qconfig = per_channel_dynamic_qconfig if per_channel else default_dynamic_qconfig
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")   # torch.ao.quantization's deprecation notices (it still works)
        model = quantize_dynamic(model.to("cpu").eval(), {torch.nn.Linear: qconfig}, inplace=True)
    n = sum(isinstance(m, torch.ao.nn.quantized.dynamic.Linear) for m in model.modules())
    if n == 0:
        raise MtkdError(f"--quantize int8: the student ({type(model).__name__}) has no nn.Linear layer to quantize; "
                        f"export it without --quantize")
    return model, n


def _int8(folder: Path, texts, stored: np.ndarray, student: Student) -> dict:
    """Replaces the float weights of the (checked) folder by model_int8.pt; the int8 model, loaded back by
    load_quantized, predicts every eval example (int8 check: module docstring)."""
    import torch
    from transformers import AutoModelForSequenceClassification

    from . import pooled_model  # noqa: F401  (registers the mean-pooled model)
    from .models import encode, load_tokenizer
    from .train import predict
    float_model = AutoModelForSequenceClassification.from_pretrained(str(folder))
    model, n = _quantized(float_model)
    torch.save(model.state_dict(), folder / INT8_WEIGHTS)
    del model, float_model
    for f in folder.glob("model*.safetensors*"):   # model.safetensors (and a sharded index): the float weights
        f.unlink()
    model = load_quantized(folder)   # the check runs what a user loads
    tok = load_tokenizer(str(folder))
    with at_precision("no"):   # batches of INT8_CHECK_BATCH, as a server would send them (module docstring)
        got = predict(model, encode(tok, texts, student.max_length), INT8_CHECK_BATCH)
    return {"scheme": "torch.ao.quantization.quantize_dynamic: nn.Linear, qint8 weights (per-channel), "
                      "float32 activations",
            "engine": torch.backends.quantized.engine, "torch": torch.__version__, "quantized_linear_layers": n,
            "weights": INT8_WEIGHTS, "weights_bytes": (folder / INT8_WEIGHTS).stat().st_size,
            "load": "mtkd.export.load_quantized(folder)", **_int8_check(got, stored, student, "int8")}


def _int8_check(got: np.ndarray, stored: np.ndarray, student: Student, what: str) -> dict:
    """Argmax agreement with the run's stored eval predictions (floor INT8_MIN_AGREEMENT) and the official
    metric of both; one line when below the floor or not finite."""
    from .tasks import compute_metrics
    labels, metric, pos_label = _eval_labels(student)
    stored = stored.astype(np.float32)
    agree = got.argmax(1) == stored.argmax(1)
    n, names = len(agree), student.label_names
    run_metric = compute_metrics(labels, stored.argmax(1), len(names), pos_label)[metric]
    q_metric = compute_metrics(labels, got.argmax(1), len(names), pos_label)[metric]
    agreement = float(agree.mean()) if n else 1.0
    shown = what.replace("_", " ")
    if not np.isfinite(got).all():
        raise MtkdError(f"{shown} check failed: the {shown} {student.method} gives non-finite logits on "
                        f"{int((~np.isfinite(got)).any(1).sum())} of {n} eval examples; export it without --quantize")
    if agreement < INT8_MIN_AGREEMENT:
        raise MtkdError(f"{shown} check failed: the {shown} {student.method} agrees with the run's eval predictions on "
                        f"{agreement:.2%} of {n} examples, below the floor of {INT8_MIN_AGREEMENT:.0%} ({metric} "
                        f"{run_metric:.2f} -> {q_metric:.2f}); export it without --quantize")
    return {"checked_examples": n, "argmax_agreement": round(agreement, 6), "disagreements": int((~agree).sum()),
            "min_agreement": INT8_MIN_AGREEMENT, "metric": metric, "metric_run": round(run_metric, 4),
            f"metric_{what}": round(q_metric, 4), "metric_change_pp": round(q_metric - run_metric, 4),
            "max_abs_logit_difference": float(np.abs(got - stored).max(initial=0.0)),
            "checked_against": str(Path(student.task) / "students" / student.method / "logits_eval.npy")}


def _int8_line(r: dict) -> str:
    what = "onnx int8 (ONNX Runtime dynamic quantization)" if "metric_onnx_int8" in r else \
        f"int8 ({r['quantized_linear_layers']} Linear layers, torch dynamic quantization, engine {r['engine']})"
    q = r.get("metric_int8", r.get("metric_onnx_int8"))
    return (f"{what}: argmax agreement {r['argmax_agreement']:.2%} with the run's predictions on all "
            f"{r['checked_examples']} eval examples (floor {r['min_agreement']:.0%}); {r['metric']} "
            f"{r['metric_run']:.2f} -> {q:.2f} ({r['metric_change_pp']:+.2f} pp); "
            f"{r['weights']} {r['weights_bytes'] / 1e6:.1f} MB")


def _eval_labels(student: Student) -> tuple[np.ndarray, str, int]:
    """(the eval labels from the run's data stage, the task's official metric, its pos_label)."""
    data = student.run / student.task / "data"
    try:
        labels = np.array([int(json.loads(line)["label"]) for line in
                           (data / "eval.jsonl").read_text(encoding="utf-8").splitlines() if line.strip()])
        meta = read_json(data / "manifest.json")
        return labels, meta["metric"], int(meta.get("pos_label", 1))
    except (OSError, ValueError, KeyError, TypeError, UnicodeDecodeError) as e:
        raise MtkdError(f"cannot read the run's eval labels and metric ({type(e).__name__}: {e}); "
                        f"rerun the pipeline") from None


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


def _need_onnx(quantize: str | None = None) -> None:
    """One line naming what to install when --onnx (with --quantize: ONNX Runtime's quantizer) cannot run."""
    import importlib.util
    if importlib.util.find_spec("optimum") is None or importlib.util.find_spec("onnxruntime") is None:
        raise MtkdError("--onnx needs optimum and onnxruntime (pip install 'optimum[onnxruntime]'); "
                        "the export itself works without them")
    if quantize and importlib.util.find_spec("onnx") is None:
        raise MtkdError("--onnx --quantize int8 needs onnx for ONNX Runtime's quantizer (pip install onnx); "
                        "--quantize int8 without --onnx works without it")


def _onnx_logits(path: Path, folder: Path, texts, max_length: int) -> np.ndarray:
    """float32 [N, C]: the ONNX model at `path` on `texts`, one at a time, tokenized by the folder's tokenizer."""
    import onnxruntime as ort
    from transformers import AutoTokenizer
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    tok = AutoTokenizer.from_pretrained(str(folder))
    wanted = {i.name for i in session.get_inputs()}
    got = []
    for text in texts:
        enc = tok(*text, truncation=True, max_length=max_length, return_tensors="np")
        got.append(session.run(["logits"], {k: v.astype(np.int64) for k, v in enc.items() if k in wanted})[0][0])
    return np.stack(got).astype(np.float32)


def _onnx_int8(folder: Path, texts, stored: np.ndarray, student: Student) -> dict:
    """onnx/model.onnx -> onnx/model_int8.onnx by ONNX Runtime's dynamic quantization (the float one removed),
    checked on every eval example like the torch int8 model."""
    from onnxruntime.quantization import QuantType, quantize_dynamic
    src, dst = folder / "onnx" / "model.onnx", folder / "onnx" / ONNX_INT8
    try:
        quantize_dynamic(str(src), str(dst), weight_type=QuantType.QInt8)
    except Exception as e:
        raise MtkdError(f"ONNX Runtime could not quantize {src.name} ({type(e).__name__}: "
                        f"{str(e).splitlines()[0][:200] if str(e) else ''}); export without --onnx") from None
    src.unlink()
    for extra in folder.glob("onnx/model.onnx_data"):   # external weights of the float model, if any
        extra.unlink()
    got = _onnx_logits(dst, folder, texts, student.max_length)
    return {"scheme": "onnxruntime.quantization.quantize_dynamic: QInt8 weights", "weights": f"onnx/{ONNX_INT8}",
            "weights_bytes": dst.stat().st_size, **_int8_check(got, stored, student, "onnx_int8")}


def _onnx(folder: Path, texts, expected: np.ndarray, student: Student) -> float:
    """onnx/model.onnx through optimum (only when installed), its logits checked against torch's."""
    _need_onnx()
    from optimum.exporters.onnx import main_export
    from optimum.exporters.tasks import TasksManager
    from transformers import AutoConfig

    config = json.loads((folder / "config.json").read_text())
    encoder = dict(config.get("encoder") or config)   # the mean-pooled wrapper describes its encoder
    model_type = encoder.pop("model_type")
    make = TasksManager.get_exporter_config_constructor("onnx", model_type=model_type, task="text-classification",
                                                         library_name="transformers")
    custom = {"model": make(AutoConfig.for_model(model_type, **{k: v for k, v in encoder.items()
                                                                if k not in ENCODER_DROP}))}
    main_export(str(folder), output=folder / "onnx", task="text-classification", trust_remote_code=True,
                custom_onnx_configs=custom, no_post_process=True, do_validation=False, library_name="transformers")
    got = _onnx_logits(folder / "onnx" / "model.onnx", folder, texts, student.max_length)
    diff = float(np.abs(got - expected).max())
    if not diff <= ONNX_TOLERANCE:
        raise MtkdError(f"ONNX check failed: the ONNX model's logits differ from the student's by {diff:.2e}")
    return diff
