"""mtkd against a peer: TextBrewer 0.2.1's MultiTeacherDistiller, on the same data, the same
fine-tuned teachers and the same student initialisation, several seeds, side by side.

    pip install textbrewer==0.2.1 --no-deps      # its own deps (torch, tqdm, numpy, tensorboard) are already here
    mtkd run configs/sst2_cpu.yaml --out runs/sst2_cpu    # the teachers (cached)
    python bench/peer_textbrewer.py --run runs/sst2_cpu --teachers minilm_l6,minilm_l3 --seeds 1,2,3
    python bench/peer_textbrewer.py --run runs/sst2_cpu --set student.lr=2e-4    # both sides at another budget

Both sides distil the student of RUN's config (e.g. MiniLM's first 2 layers, 2 epochs, lr, batch
size, warm-up; `--set student.lr=4e-4` etc. changes them for both) from the `average` of the named HF
teachers at RUN's temperature, on RUN's labelled train split only (mtkd: `use_transfer: false`):
- mtkd: `multi_average` from cached teacher logits (the teachers ran once, in RUN's logits stage),
  with mtkd's loss (alpha * T^2 * KL + (1 - alpha) * CE);
- TextBrewer: teachers run online at every step (its MultiTeacherDistiller averages their logits),
  with its loss (soft cross-entropy at T, no T^2; `--peer-hard-label-weight` adds the gold CE, 0 by
  TextBrewer's default), AdamW with the same learning rate, weight decay and linear warm-up.
Accuracy is the task's official metric on RUN's eval split (the same examples on both sides).
Wall time: mtkd = training the student (teachers' train logits are cached: their one-off extraction
time is printed too); TextBrewer = its `train` call. Last line: ratio = mtkd / TextBrewer wall time.
"""
from __future__ import annotations

import argparse
import json
import re
import shutil
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch
import yaml

ROOT = Path(__file__).resolve().parents[1]
BOTH_SIDES = ("student.lr", "student.epochs", "student.batch_size", "student.max_length", "student.weight_decay",
              "student.warmup_ratio", "student.layers", "distill.temperature")   # what the TextBrewer side reads too
sys.path.insert(0, str(ROOT / "bench"))
from _common import machine_info  # noqa: E402


def read_split(run: Path, task: str, split: str):
    rows = [json.loads(l) for l in (run / task / "data" / f"{split}.jsonl").read_text(encoding="utf-8").splitlines() if l]
    return [tuple(r["text"]) for r in rows], np.asarray([r["label"] for r in rows], dtype=np.int64)


def mtkd_side(run: Path, base: dict, teachers: list[str], seed: int, out: Path) -> tuple[float, float]:
    """(official eval metric, seconds) of mtkd's multi_average student at `seed`."""
    from mtkd.config import load_config
    from mtkd.experiments import Run
    from mtkd.io import read_json
    from mtkd.sweeps import link_cached_stages
    cfg = json.loads(json.dumps(base))
    cfg["teachers"] = [dict(t, seed=t.get("seed") if t.get("seed") is not None else base["seed"])
                       for t in base["teachers"] if t["name"] in teachers]
    cfg["seed"] = seed
    cfg.pop("seeds", None)
    cfg["distill"].update(strategies=["average"], single_teacher=False, baseline=False,
                          use_transfer=False)   # the peer sees the labelled train split only
    point = out / f"mtkd_seed{seed}"
    point.mkdir(parents=True, exist_ok=True)
    (point / "bench_config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    link_cached_stages(run, point, load_config(run / "config.yaml"))
    shutil.rmtree(point / base["tasks"][0]["name"] / "students", ignore_errors=True)   # timed: trained afresh every time
    t0 = time.perf_counter()
    Run(load_config(point / "bench_config.yaml"), point, log=lambda m: None).execute("multi")
    seconds = time.perf_counter() - t0
    task = base["tasks"][0]["name"]
    metric = read_json(run / task / "data" / "manifest.json")["metric"]
    return read_json(point / task / "students" / "multi_average" / "metrics.json")["eval"][metric], seconds


def peer_side(run: Path, base: dict, teachers: list[str], seed: int, out: Path, hard_label_weight: float):
    """(official eval metric, seconds) of TextBrewer's MultiTeacherDistiller at `seed`."""
    import textbrewer
    from textbrewer import DistillationConfig, MultiTeacherDistiller, TrainingConfig
    from transformers import get_linear_schedule_with_warmup

    from mtkd.io import read_json
    from mtkd.models import encode, load_classifier, load_saved_classifier, load_tokenizer
    from mtkd.tasks import compute_metrics
    from mtkd.train import predict
    task = base["tasks"][0]["name"]
    st, d = base["student"], base["distill"]
    meta = read_json(run / task / "data" / "manifest.json")
    n_labels = len(meta["label_names"])
    tok = load_tokenizer(st["model"], st.get("trust_remote_code", False))
    by_name = {t["name"]: t for t in base["teachers"]}
    for name in teachers:   # TextBrewer feeds one batch to every model: the tokenizers must agree
        t = by_name[name]
        if t.get("kind", "hf") != "hf" or load_tokenizer(t["model"], t.get("trust_remote_code", False)).get_vocab() != tok.get_vocab():
            raise SystemExit(f"teacher {name} uses another tokenizer than the student; TextBrewer cannot run it online")
    texts, labels = read_split(run, task, "train")
    enc = encode(tok, texts, st["max_length"])
    models_t = [load_saved_classifier(run / task / "teachers" / n / "model").eval() for n in teachers]
    student = load_classifier(st["model"], n_labels, st["layers"], seed, st.get("trust_remote_code", False),
                              st.get("pooling", "auto"))

    gen = torch.Generator().manual_seed(seed)

    def batches():
        order = torch.randperm(len(labels), generator=gen).numpy()
        for i in range(0, len(order), st["batch_size"]):
            idx = order[i:i + st["batch_size"]]
            b = enc.batch(idx)
            b["labels"] = torch.from_numpy(labels[idx])
            yield b

    class Loader:   # a re-iterable loader with a length, as TextBrewer expects
        def __len__(self):
            return -(-len(labels) // st["batch_size"])

        def __iter__(self):
            return batches()

    def adaptor(batch, out_):
        return {"logits": out_.logits, "losses": [torch.nn.functional.cross_entropy(out_.logits, batch["labels"])]}

    def forward_only(model):   # teachers and student get the batch without the labels
        orig = model.forward
        model.forward = lambda **kw: orig(**{k: v for k, v in kw.items() if k != "labels"})
        return model
    for m in (*models_t, student):
        forward_only(m)
    epochs = int(round(st["epochs"]))
    steps = len(Loader()) * epochs
    no_decay = ("bias", "LayerNorm.weight")
    groups = [{"params": [p for n, p in student.named_parameters() if not n.endswith(no_decay)],
               "weight_decay": st["weight_decay"]},
              {"params": [p for n, p in student.named_parameters() if n.endswith(no_decay)], "weight_decay": 0.0}]
    optimizer = torch.optim.AdamW(groups, lr=st["lr"])
    torch.manual_seed(seed)
    distiller = MultiTeacherDistiller(
        TrainingConfig(device="cpu", output_dir=str(out / f"textbrewer_seed{seed}"), log_dir=None, ckpt_frequency=1),
        DistillationConfig(temperature=d["temperature"], hard_label_weight=hard_label_weight, kd_loss_type="ce"),
        models_t, student, adaptor, adaptor)
    t0 = time.perf_counter()
    with distiller:
        distiller.train(optimizer, Loader(), num_epochs=epochs, scheduler_class=get_linear_schedule_with_warmup,
                        scheduler_args={"num_warmup_steps": int(st["warmup_ratio"] * steps), "num_training_steps": steps})
    seconds = time.perf_counter() - t0
    ev_texts, ev_labels = read_split(run, task, "eval")
    logits = predict(student, encode(tok, ev_texts, st["max_length"]))
    print(f"  textbrewer {textbrewer.__version__} seed {seed}: {seconds:.0f} s", flush=True)
    return compute_metrics(ev_labels, logits.argmax(1), n_labels, meta.get("pos_label", 1))[meta["metric"]], seconds


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--run", required=True, help="a finished mtkd run whose teachers are cached")
    ap.add_argument("--teachers", default="minilm_l6,minilm_l3", help="HF teachers of RUN to fuse")
    ap.add_argument("--seeds", default="1,2,3")
    ap.add_argument("--peer-hard-label-weight", type=float, default=0.0)
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="a student-side setting for both sides, e.g. student.lr=2e-4 (repeatable; default: RUN's)")
    ap.add_argument("--out", help="bench folder (default RUN/bench_peer)")
    args = ap.parse_args()
    run = Path(args.run)
    from mtkd.config import load_config, to_dict
    from mtkd.errors import MtkdError
    for item in args.set:
        if item.partition("=")[0] not in BOTH_SIDES:
            raise SystemExit(f"error: --set {item}: only {', '.join(BOTH_SIDES)} apply to both sides")
    try:   # local paths resolved (RUN/config.yaml's are relative to RUN)
        base = to_dict(load_config(run / "config.yaml", args.set))
    except MtkdError as e:
        raise SystemExit(f"error: {e}")
    if not isinstance(base["distill"]["temperature"], (int, float)) or base["student"]["epochs"] != int(base["student"]["epochs"]):
        raise SystemExit("error: the peer needs a fixed temperature (not auto) and a whole number of student epochs")
    teachers = [t for t in args.teachers.split(",") if t]
    seeds = [int(s) for s in args.seeds.split(",") if s]
    out = Path(args.out) if args.out else run / ("bench_peer" + "".join(
        "_" + re.sub(r"[^A-Za-z0-9.=+-]", "_", item.rpartition(".")[2]) for item in args.set))
    task = base["tasks"][0]["name"]
    extraction = sum(json.loads((run / task / "logits" / t / "manifest.json").read_text()).get("seconds", 0.0)
                     for t in teachers)
    print(machine_info())
    print(f"run {run}, task {task}, teachers {teachers}, student {base['student']['model']} "
          f"layers {base['student']['layers']}, {base['student']['epochs']} epochs, T {base['distill']['temperature']}")
    rows = []
    for seed in seeds:
        m_acc, m_s = mtkd_side(run, base, teachers, seed, out)
        p_acc, p_s = peer_side(run, base, teachers, seed, out, args.peer_hard_label_weight)
        rows.append((seed, m_acc, m_s, p_acc, p_s))
        print(f"seed {seed}: mtkd {m_acc:.2f} ({m_s:.0f} s)   textbrewer {p_acc:.2f} ({p_s:.0f} s)", flush=True)
    mean = lambda i: statistics.mean(r[i] for r in rows)
    sd = lambda i: statistics.stdev(r[i] for r in rows) if len(rows) > 1 else 0.0
    print("| side | mean | sd | per-seed | seconds/student |\n|---|---|---|---|---|")
    print(f"| mtkd multi_average (cached) | {mean(1):.2f} | {sd(1):.2f} | {' / '.join(f'{r[1]:.2f}' for r in rows)} | {mean(2):.0f} |")
    print(f"| TextBrewer MultiTeacherDistiller (online) | {mean(3):.2f} | {sd(3):.2f} | "
          f"{' / '.join(f'{r[3]:.2f}' for r in rows)} | {mean(4):.0f} |")
    print(f"teachers' one-off logit extraction (all splits, cached in RUN): {extraction:.0f} s")
    print(f"ratio={mean(2) / mean(4):.3f}")


if __name__ == "__main__":
    main()
