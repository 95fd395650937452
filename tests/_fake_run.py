"""Build a small fake run directory in the documented format (docs/run_dir.md), without torch.

Each model's predictions have an exact accuracy on eval and on validation (the same unless
`val_acc` says otherwise): a chosen number of examples is predicted right, the others get a wrong
class; logits are a one-hot margin plus noise. Every model gets validation logits and metrics; with
several `seeds` every student gets eval/validation logits per seed (teachers: the run seed only);
teachers also get train logits and labels_train unless `train=False`.
"""
from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import yaml

TEACHERS = {"t_a": 0.90, "t_b": 0.80, "t_c": 0.70}
# task -> (label names, official metric, eval accuracy of each student)
TASKS = {
    "bin": (["neg", "pos"], "accuracy",
            {"no_kd": 0.60, "kd_t_a": 0.75, "kd_t_b": 0.70, "kd_t_c": 0.65, "multi_average": 0.85, "multi_weighted": 0.80}),
    "tri": (["entail", "neutral", "contra"], "accuracy",
            {"no_kd": 0.50, "kd_t_a": 0.70, "kd_t_b": 0.65, "kd_t_c": 0.60, "multi_average": 0.65, "multi_weighted": 0.55}),
}
N_EVAL, N_VAL, N_TRAIN = 400, 200, 100


def _logits(rng, labels, n_classes, acc):
    n = len(labels)
    right = np.zeros(n, bool)
    right[rng.permutation(n)[: round(acc * n)]] = True
    pred = np.where(right, labels, (labels + rng.integers(1, n_classes, n)) % n_classes)
    logits = rng.normal(0, 0.3, (n, n_classes))
    logits[np.arange(n), pred] += rng.uniform(0.5, 4.0, n)
    return logits.astype(np.float32)


def _model_entry(method, teachers):
    if method in TEACHERS:
        return {"method": method, "type": "teacher"}
    if method == "no_kd":
        return {"method": method, "type": "baseline"}
    if method.startswith("kd_"):
        return {"method": method, "type": "single", "teachers": [method[3:]]}
    return {"method": method, "type": "multi", "strategy": method[len("multi_"):], "teachers": teachers}


def build_fake_run(root: Path, drop: dict[str, set[str]] | None = None, seed: int = 0,
                   teachers: list[str] | None = None, seeds: tuple[int, ...] = (0,),
                   val_acc: dict[str, dict[str, float]] | None = None, train: bool = True) -> Path:
    """Write RUN = root/"run" with tasks bin (2 classes) and tri (3 classes), 3 teachers, a
    baseline, 3 single and 2 multi students; `drop` = {task: methods to leave out};
    `teachers` = keep only these teachers (and their single-teacher students); `seeds` = the run's
    seeds (run seed first); `val_acc` = {task: {method: validation accuracy}} where it differs from eval."""
    drop, val_acc = drop or {}, val_acc or {}
    keep = teachers or list(TEACHERS)
    teacher_acc = {t: a for t, a in TEACHERS.items() if t in keep}
    rng = np.random.default_rng(seed)
    run = Path(root) / "run"
    master: dict[str, dict[str, float]] = {}
    types: dict[str, str] = {}
    for task, (names, metric, students) in TASKS.items():
        c = len(names)
        folder = run / task / "eval"
        folder.mkdir(parents=True)
        y = {"eval": rng.integers(0, c, N_EVAL), "validation": rng.integers(0, c, N_VAL),
             "train": rng.integers(0, c, N_TRAIN)}
        for split, labels in y.items():
            if split != "train" or train:
                np.save(folder / f"labels_{split}.npy", labels.astype(np.int64))
        models = []
        for method, acc in {**teacher_acc, **students}.items():
            if method in drop.get(task, set()) or (method.startswith("kd_") and method[3:] not in keep):
                continue
            entry = _model_entry(method, keep)
            accs = {"eval": acc, "validation": val_acc.get(task, {}).get(method, acc)}
            my_seeds = list(seeds) if entry["type"] != "teacher" else [seeds[0]]
            files, val_files, seed_metrics = {}, {}, {}
            for s in my_seeds:
                stem = method if s == seeds[0] else f"{method}@seed{s}"
                files[str(s)], val_files[str(s)] = f"{stem}.eval.npy", f"{stem}.validation.npy"
                seed_metrics[str(s)] = {}
                for split, name in (("eval", files[str(s)]), ("validation", val_files[str(s)])):
                    logits = _logits(rng, y[split], c, accs[split])
                    np.save(folder / name, logits)
                    seed_metrics[str(s)][split] = {"accuracy": 100.0 * float((logits.argmax(1) == y[split]).mean())}
            mean = {split: {"accuracy": round(float(np.mean([m[split]["accuracy"] for m in seed_metrics.values()])), 4)}
                    for split in ("eval", "validation")}
            models.append({**entry, "file": files[str(seeds[0])], "validation_file": val_files[str(seeds[0])],
                           "metrics": mean["eval"], "validation_metrics": mean["validation"], "seeds": my_seeds,
                           "seed_files": files, "seed_validation_files": val_files, "seed_metrics": seed_metrics})
            master.setdefault(method, {})[task] = mean["eval"]["accuracy"]
            types[method] = entry["type"]
            if entry["type"] == "teacher" and train:
                np.save(folder / f"{method}.train.npy", _logits(rng, y["train"], c, min(1.0, acc + 0.08)))
        manifest = {"task": task, "label_names": names, "metric": metric, "metric_columns": [f"{task}_acc"],
                    "temperature": 4.0, "alpha": 0.7, "seeds": list(seeds), "models": models, "teachers": keep,
                    "validation_files": {t: f"{t}.validation.npy" for t in keep},
                    "labels_eval": "labels_eval.npy", "labels_validation": "labels_validation.npy"}
        if train:
            manifest.update(train_files={t: f"{t}.train.npy" for t in keep}, labels_train="labels_train.npy")
        (folder / "manifest.json").write_text(json.dumps(manifest, indent=2))
    config = {"name": "fake-run", "seed": seeds[0], "seeds": list(seeds), "tasks": [{"name": t} for t in TASKS],
              "teachers": [{"name": t, "kind": "tfidf"} for t in keep],
              "distill": {"temperature": 4.0, "alpha": 0.7, "strategies": ["average", "weighted"],
                          "baseline": True, "single_teacher": True}}
    (run / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    (run / "results").mkdir()
    with open(run / "results" / "master_results.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["method", "type"] + [f"{t}_acc" for t in TASKS] + ["AVG"])
        for method, vals in master.items():
            row = [vals.get(t) for t in TASKS]
            have = [v for v in row if v is not None]
            w.writerow([method, types[method]] + ["" if v is None else f"{v:.2f}" for v in row]
                       + [f"{np.mean(have):.2f}"])
    return run
