"""Serving cost of a finished run: every teacher, the teacher ensemble and the exported student (float32
and int8), each through the path a user would serve it, on the run's eval texts.

- teachers: mtkd's own teacher classes (`mtkd.teachers.load_teacher` on `RUN/<task>/teachers/<name>/model`):
  HF and CNN teachers through mtkd's batched inference, TF-IDF through scikit-learn; a `kind: logits`
  teacher has no model (its scores come from files) and is left out, with a line saying so;
  with `--teachers-run DIR` the teachers are served from DIR, the run that fine-tuned them (a run whose
  teachers are `kind: logits` files made there, e.g. runs/voices_cpu from runs/voices_cpu_teachers); its eval
  split must have the same fingerprint as RUN's;
- the ensemble: every teacher on every request, its prediction the argmax of their mean logits (the
  `average` strategy's target);
- the student: `mtkd export` of the run's student (default: the analysis's selected one; `--model`),
  served as a user would from the exported folder: `AutoTokenizer` + `AutoModelForSequenceClassification`
  (float32), and `mtkd.export.load_quantized` + `AutoTokenizer` for `--quantize int8`; tokenization counts.

Per model: throughput at batch 32 (consecutive requests of 32 eval texts, in the file's order; examples/s
= texts / summed request time), latency at batch 1 (p50 and p99 over `--requests` single-text requests),
both on the default threads and on one thread (`torch.set_num_threads(1)` and threadpoolctl's limit on
the BLAS/OpenMP pools scikit-learn uses); all models are loaded in one process, warmed up, and measured
alternately (chunks of requests, the order of models rotated every chunk). Accuracy: the task's official
metric of the batch-32 predictions on every eval text, and the argmax agreement with the run's stored eval
logits (teachers: `logits/<teacher>/eval.npy`; students: `students/<method>/logits_eval.npy`): 100% says
the served model is the evaluated one (a bf16/fp16 run may differ on close calls; int8 moves some).
Peak memory: for each model a process forked from a clean server process (multiprocessing's forkserver,
torch/transformers/scikit-learn imported, no model loaded) loads it and serves one batch-32 and a few
batch-1 requests; the figure is that process's peak resident set (VmHWM, reset through /proc/self/clear_refs
at the start) minus its resident set before loading: weights, activations, tokenizer, scikit-learn and numpy
buffers included, and what the model's first use costs the runtime (torch's thread pools, kernel workspaces);
tracemalloc sees none of torch's memory, torch's profiler none of scikit-learn's; one model per process, so
models do not share freed memory. Linux only ("n/a" elsewhere). Size on disk: every
file of the teacher's model folder, of the exported folder (tokenizer included), the ensemble the sum of its
teachers.

    python bench/serve.py [RUN] [--model METHOD] [--task TASK] [--rounds 3] [--requests 300] [--teachers-run DIR]
    python bench/serve.py --quick        # smoke test: a tiny run built on the fly, 24 eval texts

On the CPU (a GPU is hidden). RUN defaults to runs/sst2_cpu (`mtkd run configs/sst2_cpu.yaml --out runs/sst2_cpu`).
Last line: ratio=<ensemble time / float32 student time at batch 32, default threads>."""
from __future__ import annotations

import argparse
import contextlib
import json
import multiprocessing
import os
import re
import sys
import tempfile
import time
from pathlib import Path
from queue import Empty

import numpy as np

from _common import ROOT, machine_info, rotated

DEFAULT_RUN = ROOT / "runs" / "sst2_cpu"
BATCH = 32
QUICK_CONFIG = {
    "name": "serve_quick", "seed": 42,
    "tasks": [{"name": "demo", "demo_size": 120, "max_eval_examples": 24}],
    "teachers": [{"name": "tiny_hf", "model": "tiny", "layers": 1, "epochs": 1, "max_length": 32},
                 {"name": "cnn", "kind": "cnn", "epochs": 1, "embedding_dim": 16, "filters": 8, "min_count": 1},
                 {"name": "tfidf", "kind": "tfidf"}],
    "student": {"model": "tiny", "layers": 1, "epochs": 1, "max_length": 32},
    "distill": {"strategies": ["average"], "single_teacher": False, "baseline": False},
}
QUICK_METHOD = "multi_average"


# ------------------------------------------------------------------------------------------ models
def make(spec: dict):
    """A serving function texts -> float32 logits [N, C] for `spec` (a plain dict: also sent to the memory
    processes). kinds: teacher (run, task, name), ensemble (run, task, names), student (folder, int8)."""
    kind = spec["kind"]
    if kind == "teacher":
        from mtkd.config import load_config
        from mtkd.experiments import Run
        from mtkd.io import read_json
        from mtkd.teachers import load_teacher
        run = Path(spec["run"])
        cfg = load_config(run / "config.yaml")
        t = next(t for t in cfg.teachers if t.name == spec["name"])
        names = read_json(run / spec["task"] / "data" / "manifest.json")["label_names"]
        r = Run(cfg, run)
        folder = run / spec["task"] / "teachers" / r.teacher_folder(t) / "model"
        teacher = load_teacher(t, names, r.teacher_seed(t), folder, eval_batch_size=BATCH)
        return teacher.logits
    if kind == "ensemble":
        fns = [make({"kind": "teacher", "run": spec["run"], "task": spec["task"], "name": n}) for n in spec["names"]]
        return ensemble(fns)
    if kind == "student":
        import torch
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        import mtkd.pooled_model  # noqa: F401  (registers the mean-pooled head, as the README says)
        folder = spec["folder"]
        if spec["int8"]:
            from mtkd.export import load_quantized
            model = load_quantized(folder)
        else:
            model = AutoModelForSequenceClassification.from_pretrained(folder).eval()
        tok = AutoTokenizer.from_pretrained(folder)

        @torch.inference_mode()
        def serve(texts):
            second = [t[1] for t in texts] if len(texts[0]) > 1 else None
            enc = tok([t[0] for t in texts], second, padding=True, truncation=True, return_tensors="pt")
            return model(**enc).logits.float().numpy()
        return serve
    raise ValueError(kind)


def ensemble(fns):
    def serve(texts):
        return np.mean([f(texts) for f in fns], axis=0)
    return serve


def folder_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in Path(path).rglob("*") if f.is_file())


# ------------------------------------------------------------------------------------------ memory
def _status(key: str) -> int:
    with open("/proc/self/status") as f:
        return int(re.search(rf"^{key}:\s+(\d+) kB", f.read(), re.M).group(1)) * 1024


def _memory_child(spec, batch, singles, queue):
    try:
        with open("/proc/self/clear_refs", "w") as f:   # VmHWM := VmRSS
            f.write("5")
        before = _status("VmRSS")
        serve = make(spec)
        serve(batch)
        for text in singles:
            serve([text])
        queue.put(_status("VmHWM") - before)
    except Exception as e:   # reported by the parent as n/a, with the reason
        queue.put(f"{type(e).__name__}: {e}")


PRELOAD = ["__main__", "torch", "transformers", "transformers.modeling_utils", "transformers.models.bert.modeling_bert",
           "sklearn.linear_model", "threadpoolctl", "mtkd.models", "mtkd.experiments", "mtkd.teachers.hf",
           "mtkd.teachers.cnn", "mtkd.teachers.classic", "mtkd.export", "mtkd.pooled_model"]


def memory_context(start: bool = False):
    """multiprocessing's forkserver, its server importing PRELOAD (code, not counted as a model's memory:
    the BERT modeling code alone is ~90 MB resident); `start`: start it now, to import while the caller works."""
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(PRELOAD)
    if start and Path("/proc/self/clear_refs").exists():
        from multiprocessing import forkserver
        forkserver.ensure_running()
    return ctx


def peak_memory(specs: dict, batch, singles) -> tuple[dict, str]:
    """{row: bytes or None}, and a note when memory could not be measured."""
    if not Path("/proc/self/clear_refs").exists():
        return {k: None for k in specs}, "peak memory: n/a (needs Linux /proc/self/clear_refs)"
    ctx = memory_context()
    out, notes = {}, []
    for row, spec in specs.items():
        queue = ctx.Queue()
        p = ctx.Process(target=_memory_child, args=(spec, batch, singles, queue))
        p.start()
        while True:
            try:
                got = queue.get(timeout=1)
                break
            except Empty:
                if not p.is_alive():
                    got = f"its process ended with code {p.exitcode}"
                    break
        p.join()
        out[row] = got if isinstance(got, int) else None
        if not isinstance(got, int):
            notes.append(f"{row}: {got}")
    return out, "; ".join(notes)


# ------------------------------------------------------------------------------------------ timing
@contextlib.contextmanager
def threads(n: int):
    import torch
    from threadpoolctl import threadpool_limits
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        with threadpool_limits(limits=n):
            yield
    finally:
        torch.set_num_threads(before)


def measure(serves: dict, texts, singles, rounds: int, chunk: int = 4, chunk1: int = 10, warm: int = 2):
    """{row: (batch-32 request seconds, batch-1 request seconds, logits of every text from the first round)}:
    all rows warmed up, then alternated by chunks of requests, the order rotated every chunk."""
    rows = list(serves)
    batches = [texts[i:i + BATCH] for i in range(0, len(texts), BATCH)]
    for row in rows:   # warm-up: allocations, lazy initialisation, caches
        for b in batches[:warm]:
            serves[row](b)
        for t in singles[:warm + 3]:
            serves[row]([t])
    t32 = {r: [] for r in rows}
    t1 = {r: [] for r in rows}
    logits = {r: [] for r in rows}
    k = 0
    for rnd in range(rounds):
        for start in range(0, len(batches), chunk):
            for row in rotated(rows, k):
                for b in batches[start:start + chunk]:
                    t0 = time.perf_counter()
                    out = serves[row](b)
                    t32[row].append(time.perf_counter() - t0)
                    if rnd == 0:
                        logits[row].append(np.asarray(out, np.float32))
            k += 1
        for start in range(0, len(singles), chunk1):
            for row in rotated(rows, k):
                for t in singles[start:start + chunk1]:
                    t0 = time.perf_counter()
                    serves[row]([t])
                    t1[row].append(time.perf_counter() - t0)
            k += 1
    return {r: (t32[r], t1[r], np.concatenate(logits[r])) for r in rows}


# ------------------------------------------------------------------------------------------ the run
def quick_run(root: Path) -> Path:
    """A tiny run (tiny HF, CNN and TF-IDF teachers, a tiny student) built in-process, its output in a log."""
    import yaml

    from mtkd.cli import main as mtkd
    cfg = root / "quick.yaml"
    cfg.write_text(yaml.safe_dump(QUICK_CONFIG, sort_keys=False))
    run = root / "run"
    with open(root / "log.txt", "w") as log, contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
        rc = mtkd(["distill-multi", str(cfg), "--out", str(run)])
    if rc:
        sys.exit(f"error: building the quick run failed; its output is in {root / 'log.txt'}")
    return run


def teachers_config(run: Path, teacher_run: Path, task: str):
    """The config of the run that fine-tuned RUN's teachers, after checking it is one (config.yaml, the task, the
    same eval split: its fingerprint in both data manifests)."""
    from mtkd.config import load_config
    from mtkd.errors import MtkdError
    from mtkd.io import read_json
    if not (teacher_run / "config.yaml").is_file():
        raise MtkdError(f"--teachers-run {teacher_run}: not a run directory (no config.yaml)")
    try:
        fingerprints = [read_json(d / task / "data" / "manifest.json")["splits"]["eval"]["fingerprint"]
                        for d in (run, teacher_run)]
    except (OSError, ValueError, KeyError) as e:
        raise MtkdError(f"--teachers-run {teacher_run}: no finished data stage of task {task!r} ({e})") from None
    if fingerprints[0] != fingerprints[1]:
        raise MtkdError(f"--teachers-run {teacher_run}: its eval split of {task!r} is not {run}'s (fingerprints "
                        f"{fingerprints[1][:12]} vs {fingerprints[0][:12]})")
    return load_config(teacher_run / "config.yaml")


def eval_set(run: Path, task: str):
    from mtkd.io import read_json
    lines = (run / task / "data" / "eval.jsonl").read_text(encoding="utf-8").splitlines()
    rows = [json.loads(line) for line in lines if line.strip()]
    meta = read_json(run / task / "data" / "manifest.json")
    return ([tuple(r["text"]) for r in rows], np.array([int(r["label"]) for r in rows]), meta["metric"],
            int(meta.get("pos_label", 1)), len(meta["label_names"]))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("run", nargs="?", default=str(DEFAULT_RUN), help="a finished run directory (default runs/sst2_cpu)")
    ap.add_argument("--model", help="student method (default: the analysis's selected student)")
    ap.add_argument("--task", help="task (default: the run's only task)")
    ap.add_argument("--rounds", type=int, default=3, help="passes over the eval texts at batch 32, per thread setting")
    ap.add_argument("--requests", type=int, default=300, help="batch-1 requests per model and round (eval texts)")
    ap.add_argument("--teachers-run", metavar="DIR", help="serve the teachers from DIR, the run that fine-tuned them "
                    "(when RUN's teachers are kind: logits files made there); same eval split required")
    ap.add_argument("--quick", action="store_true", help="smoke test: a tiny run built on the fly, a handful of texts")
    args = ap.parse_args()
    if args.rounds < 1 or args.requests < 1:
        ap.error("--rounds and --requests must be >= 1")
    os.environ.setdefault("TQDM_DISABLE", "1")   # mtkd's inference shows a progress bar per call on a terminal
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")   # CPU serving: mtkd's teachers would otherwise take a GPU

    from mtkd.errors import MtkdError
    with tempfile.TemporaryDirectory(prefix="mtkd_serve_") as scratch:
        try:
            ratio = bench(args, Path(scratch))
        except MtkdError as e:
            sys.exit(f"error: {e}")
    print(f"ratio={ratio:.3f}")


def bench(args, scratch: Path) -> float:
    import torch

    from mtkd.config import load_config
    from mtkd.errors import MtkdError
    from mtkd.experiments import Run
    from mtkd.export import export
    from mtkd.predict import find_student
    from mtkd.tasks import compute_metrics
    wall = {"start": time.perf_counter()}
    if not args.quick and not (Path(args.run) / "config.yaml").is_file():
        raise MtkdError(f"{args.run} is not a finished run (no config.yaml); make it first, e.g. "
                        f"mtkd run configs/sst2_cpu.yaml --out runs/sst2_cpu")
    memory_context(start=True)   # the memory processes' server imports its modules meanwhile
    if args.quick:
        args.rounds, args.requests = 1, 4
        run, method = quick_run(scratch), args.model or QUICK_METHOD
        wall["quick run"] = time.perf_counter()
    else:
        run, method = Path(args.run), args.model
    student = find_student(run, method, args.task)
    task = student.task
    texts, labels, metric, pos_label, n_labels = eval_set(run, task)
    singles = (texts * (args.requests // max(1, len(texts)) + 1))[:args.requests]
    cfg = load_config(run / "config.yaml")
    teacher_run = Path(args.teachers_run) if args.teachers_run else run
    tcfg = teachers_config(run, teacher_run, task) if args.teachers_run else cfg
    r = Run(tcfg, teacher_run)

    print(machine_info())
    print(f"run: {run} (task {task}, {len(texts)} eval texts); student {student.method}, seed {student.seed}")
    exported = {}
    for name, quantize in (("float32", None), ("int8", "int8")):
        exported[name] = export(student, scratch / f"student_{name}", quantize=quantize, log=print)
    wall["exports"] = time.perf_counter()

    specs, disk, stored, kinds = {}, {}, {}, {}
    servable = [t for t in tcfg.teachers if t.kind != "logits"]
    for t in tcfg.teachers:
        if t.kind == "logits":
            print(f"teacher {t.name}: kind logits (scores read from files, no model to serve): left out")
    for t in servable:
        row = f"teacher:{t.name}"
        specs[row] = {"kind": "teacher", "run": str(teacher_run), "task": task, "name": t.name}
        disk[row] = folder_bytes(teacher_run / task / "teachers" / r.teacher_folder(t) / "model")
        stored[row] = np.load(teacher_run / task / "logits" / r.teacher_folder(t) / "eval.npy")
        kinds[row] = t.kind if t.kind != "hf" else f"hf {t.model}"
    if servable:
        rows = [f"teacher:{t.name}" for t in servable]
        specs["ensemble"] = {"kind": "ensemble", "run": str(teacher_run), "task": task, "names": [t.name for t in servable]}
        disk["ensemble"] = sum(disk[x] for x in rows)
        stored["ensemble"] = np.mean([stored[x] for x in rows], axis=0)
        kinds["ensemble"] = f"{len(rows)} teachers, mean logits"
    for name in exported:
        row = f"student:{name}"
        specs[row] = {"kind": "student", "folder": str(exported[name]), "int8": name == "int8"}
        disk[row] = folder_bytes(exported[name])
        stored[row] = np.load(student.folder / "logits_eval.npy")
        kinds[row] = f"{student.method}, transformers" + (" + load_quantized" if name == "int8" else "")

    memory, note = peak_memory(specs, texts[:BATCH], singles[:3])
    wall["memory"] = time.perf_counter()
    serves = {row: make(spec) for row, spec in specs.items() if spec["kind"] != "ensemble"}
    if "ensemble" in specs:   # the teachers already loaded, each called on every request
        serves["ensemble"] = ensemble([serves[f"teacher:{t.name}"] for t in servable])
    serves = {row: serves[row] for row in specs}   # the table's order
    default = torch.get_num_threads()
    settings = [default, 1] if default > 1 else [1]
    results = {}
    for n in settings:
        with threads(n):
            results[n] = measure(serves, texts, singles, args.rounds)
    wall["timing"] = time.perf_counter()

    print(f"{args.rounds} round(s) of {len(texts)} texts at batch {BATCH} and {len(singles)} batch-1 requests per "
          f"model and thread setting, after warm-up, alternated; threads: {', '.join(map(str, settings))}")
    print("peak RSS: forked process per model, peak resident set over loading + serving minus before loading"
          + (f" ({note})" if note else ""))
    head = ["model", "kind", f"{metric} %", "agrees with run %"]
    for n in settings:
        head += [f"ex/s b32 ({n} thr)", f"p50 ms b1 ({n} thr)", f"p99 ms b1 ({n} thr)"]
    head += ["peak RSS MB", "disk MB"]
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for row in specs:
        t32, _, logits = results[default][row]
        pred = logits.argmax(1)
        score = compute_metrics(labels, pred, n_labels, pos_label)[metric]
        agree = 100 * float((pred == stored[row].argmax(1)).mean())
        cells = [row, kinds[row], f"{score:.2f}", f"{agree:.2f}"]
        for n in settings:
            t32, t1, _ = results[n][row]
            p50, p99 = np.percentile(np.array(t1) * 1e3, [50, 99])
            cells += [f"{len(texts) * args.rounds / sum(t32):.1f}", f"{p50:.2f}", f"{p99:.2f}"]
        cells += ["n/a" if memory[row] is None else f"{memory[row] / 2**20:.1f}", f"{disk[row] / 2**20:.2f}"]
        print("| " + " | ".join(cells) + " |")
    if "ensemble" not in specs:
        raise MtkdError("the run has no teacher with a model to serve (kind logits only): no ensemble to compare")
    for n in settings:
        parts = [f"{name} {sum(results[n]['ensemble'][0]) / sum(results[n][f'student:{name}'][0]):.3f}"
                 for name in exported]
        print(f"ensemble time / student time at batch {BATCH}, {n} thread(s): {', '.join(parts)}")
    marks = list(wall.items())
    print("wall: " + ", ".join(f"{k} {t - marks[i][1]:.1f} s" for i, (k, t) in enumerate(marks[1:])))
    return sum(results[default]["ensemble"][0]) / sum(results[default]["student:float32"][0])


if __name__ == "__main__":
    main()
