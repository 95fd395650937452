"""Transfer sets (issue 11.2) and extra eval sets (issue 11.4, data side), on the demo task with TF-IDF
teachers and a tiny student built in code.

One chain of runs, each a copy of the one before: a run without transfer set (A); the same with a transfer
set but `distill.use_transfer: false` (B: every student is the old one, found cached); with the transfer
set used and an extra eval set (C)."""
import csv
import json
import shutil

import numpy as np
import pytest
import torch
import yaml

from mtkd import experiments
from mtkd.cli import main
from mtkd.config import load_config
from mtkd.experiments import Run, Student
from mtkd.fusion import STRATEGIES, make_strategy
from mtkd.recipe import Recipe, cached_teachers
from mtkd.tasks import load_task

BASE = {"name": "tr", "seed": 7,
        "tasks": [{"name": "demo", "demo_size": 500, "max_train_examples": 250}],
        "teachers": [{"name": "ta", "kind": "tfidf"}, {"name": "tb", "kind": "tfidf", "C": 1.0, "crossfit": 3}],
        "student": {"model": "tiny", "layers": 1, "epochs": 1, "lr": 2.0e-3, "max_length": 24},
        "distill": {"strategies": ["average", "learned_gating"]}}
OOD = "sentence\tlabel\nthe food was not good\tnegative\na lovely little phone\tpositive\n" \
      "awful service, but a wonderful dessert\tpositive\nit never felt boring\t1\nthe lamp broke\tnegative\n"


def cfg_file(folder, *, transfer=None, use=True, extra=False):
    data = yaml.safe_load(yaml.safe_dump(BASE))
    if transfer:
        data["tasks"][0]["transfer_from_train"] = transfer
        data["distill"]["use_transfer"] = use
    if extra:
        (folder / "ood.tsv").write_text(OOD)
        data["tasks"][0]["extra_eval"] = [{"name": "ood", "file": "ood.tsv", "text_columns": ["sentence"]}]
    path = folder / f"cfg_{transfer}_{use}_{extra}.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    d = tmp_path_factory.mktemp("transfer")
    a, b, c = d / "A", d / "B", d / "C"
    logs = {}
    for out, cfg, prev in ((a, cfg_file(d), None), (b, cfg_file(d, transfer=150, use=False), a),
                           (c, cfg_file(d, transfer=150, extra=True), b)):
        if prev is not None:
            shutil.copytree(prev, out)
        logs[out.name] = []
        experiments.run_config(cfg, out, until="evaluate", recompute=prev is not None, log=logs[out.name].append)
    return d, logs


def built(log):
    """The stage folders a run built, as <parent>/<name>."""
    return {"/".join(line.split("/")[-2:]) for line in log if line.startswith("  build")}


def test_use_transfer_false_gives_the_old_student(runs):
    """With a transfer set but use_transfer false, every student keeps the key (and folder) of the run
    without one: found cached, logits identical. Data and logits stages are rebuilt (they gained a split)."""
    d, logs = runs
    assert built(logs["B"]) == {"demo/data", "logits/ta", "logits/tb", "demo/eval"}   # no teacher, no student
    for m in ("no_kd", "kd_ta", "multi_average", "multi_learned_gating"):
        assert (d / "A/demo/students" / m / "logits_eval.npy").read_bytes() == \
            (d / "B/demo/students" / m / "logits_eval.npy").read_bytes()
    assert "exists, but no student used it (distill.use_transfer: false, or alpha 0)" in (d / "B/results/master_results.md").read_text()
    # master_results.csv: a transfer column (the task has a transfer set), empty everywhere in B, and only
    # the KD students' in C; a run without a transfer set (A) has no such column
    assert "transfer" not in (d / "A/results/master_results.csv").read_text().splitlines()[0].split(",")
    for run, used in (("B", set()), ("C", {"kd_ta", "kd_tb", "multi_average", "multi_learned_gating"})):
        with open(d / run / "results/master_results.csv", newline="") as f:
            rows = list(csv.DictReader(f))
        assert {r["method"] for r in rows if r["transfer"] == "demo"} == used
        assert {r["transfer"] for r in rows} == ({"", "demo"} if used else {""})


def test_teachers_label_the_transfer_set_once(runs):
    """logits/<teacher>/transfer.npy, checked by the logit store; the crossfit teacher's are those of the
    teacher fitted on all of train; a rerun builds nothing."""
    d, _ = runs
    task = load_task(load_config(d / "C/config.yaml").tasks[0])
    for t in ("ta", "tb"):
        m = json.loads((d / "C/demo/logits" / t / "manifest.json").read_text())
        assert m["splits"]["transfer"]["shape"] == [150, 2]
        assert m["splits"]["transfer"]["fingerprint"] == task.all_fingerprints()["transfer"]
    assert np.array_equal(Run(load_config(d / "C/config.yaml"), d / "C").teacher_logits(task, ["tb"], "transfer")[0],
                          _tfidf(task, C=1.0).logits(task.transfer.texts))
    lines = []
    experiments.run_config(d / "C/config.yaml", d / "C", until="evaluate", log=lines.append)
    assert built(lines) == set()


def _tfidf(task, C):
    from mtkd.config import TeacherConfig
    from mtkd.teachers import make_teacher
    return make_teacher(TeacherConfig(name="x", kind="tfidf", C=C), task.label_names, 7).fit(
        task.splits["train"], task.splits["validation"], None)


def test_transfer_examples_get_the_kd_term_alone(runs, monkeypatch):
    """The recipe the pipeline hands to train: transfer rows carry label -1 and, alone in a batch, a loss of
    alpha * KD with CE 0 (fails if their hidden gold labels, or any label, reached CE)."""
    d, _ = runs
    data = yaml.safe_load(yaml.safe_dump(BASE))
    data["tasks"][0]["transfer_from_train"] = 150
    data["distill"].update(strategies=["average"], baseline=False, single_teacher=False)
    recipe, n, task, out = _spy_recipe(monkeypatch, d, "spy", data)
    n_train = len(task.splits["train"])
    assert n == n_train + 150 and (recipe.labels[n_train:] == -1).all()
    assert (recipe.labels[:n_train] == torch.as_tensor(task.splits["train"].labels)).all()
    idx = torch.arange(n_train, n_train + 8)
    student = torch.randn(8, 2, generator=torch.Generator().manual_seed(0))
    loss, parts = recipe(student, None, idx)
    assert parts["ce"].item() == 0.0 and loss.item() == pytest.approx(0.7 * parts["kd"].item())
    z = torch.from_numpy(Run(load_config(out / "config.yaml"), out).teacher_logits(task, ["ta", "tb"], "transfer"))[:, :8]
    target = torch.softmax(z.mean(0) / 6.0, -1)   # average at T = 6, by hand
    kd = (target * (target.log() - torch.log_softmax(student / 6.0, -1))).sum(-1).mean() * 36
    assert parts["kd"].item() == pytest.approx(kd.item(), rel=1e-5)


@pytest.mark.parametrize("name", sorted(STRATEGIES))
def test_every_strategy_on_unlabelled_rows(name):
    """A batch of transfer rows (label -1): no CE, loss = alpha * KD (+ the gate's loss, which is 0: the gate
    learns only from labelled rows); confidence_aware falls back to entropies, agreement to the majority."""
    g = torch.Generator().manual_seed(1)
    z = torch.randn(3, 6, 4, generator=g).numpy()
    fuse = make_strategy(name, 3, 5, hidden=8)
    r = Recipe(torch.full((6,), -1), cached_teachers(z), fuse, temperature=2.0, alpha=0.6, names=("a", "b", "c"),
               fitted=None if name not in ("weighted", "calibrated_average") else _fitted())
    s = torch.randn(6, 4, generator=g, requires_grad=True)
    loss, parts = r(s, torch.randn(6, 5, generator=g), torch.arange(6))
    assert parts["ce"].item() == 0.0
    assert loss.item() == pytest.approx(0.6 * parts["kd"].item(), abs=1e-6)
    if name == "learned_gating":
        assert parts["gate_loss"].item() == 0.0
    labelled = Recipe(torch.tensor([-1, 1, -1, 0, -1, 2]), cached_teachers(z), fuse, temperature=2.0, alpha=0.6,
                      fitted=r.fitted)
    _, mixed = labelled(s, torch.randn(6, 5, generator=g), torch.arange(6))
    ce = torch.nn.functional.cross_entropy(s[[1, 3, 5]], torch.tensor([1, 0, 2]), reduction="sum") / 6
    assert mixed["ce"].item() == pytest.approx(ce.item())   # summed over the labelled rows / batch size


def _fitted():
    from mtkd.recipe import Fitted
    return Fitted(torch.tensor([80.0, 70.0, 60.0]), torch.tensor([1.5, 1.0, 0.5]))


def test_transfer_from_train_takes_only_unused_rows_and_no_held_out_content(tmp_path):
    """Rows max_train_examples did not keep, seeded; never a validation/eval text, nor one containing it, nor
    a phrase only a validation/eval text carries; the drops are counted."""
    rng = np.random.default_rng(0)
    words = [f"w{i}" for i in range(300)]
    ev = [" ".join(rng.choice(words, 4)) for _ in range(30)]
    rows = [" ".join(rng.choice(words, 6)) for _ in range(300)]
    rows += [f"{e} and more" for e in ev[:10]] + ev[10:15] + [ev[20].split(" ", 1)[1]]   # contain / equal / inside
    lines = ["text,label"] + [f"{t},{'ab'[i % 2]}" for i, t in enumerate(rows)]
    (tmp_path / "train.csv").write_text("\n".join(lines) + "\n")
    (tmp_path / "eval.csv").write_text("\n".join(["text,label"] + [f"{t},a" for t in ev]) + "\n")
    task_cfg = {"name": "toy", "train_file": str(tmp_path / "train.csv"), "eval_file": str(tmp_path / "eval.csv"),
                "max_train_examples": 60, "transfer_from_train": 200}
    (tmp_path / "c.yaml").write_text(yaml.safe_dump({"tasks": [task_cfg], "teachers": [{"name": "t", "kind": "tfidf"}]}))
    task = load_task(load_config(tmp_path / "c.yaml").tasks[0])
    tr = [t for (t,) in task.transfer.texts]
    kept = {t for (t,) in task.splits["train"].texts} | {t for (t,) in task.splits["validation"].texts}
    held = [t for (t,) in task.splits["validation"].texts + task.splits["eval"].texts]
    assert len(tr) == 200 and (task.transfer.labels == -1).all() and set(tr) <= set(rows) - kept
    train = [t for (t,) in task.splits["train"].texts]
    for t in tr:
        assert not any(h in t for h in held)                                   # equal to or containing
        assert not any(t in h for h in held) or any(t in x for x in train)     # inside: only if train has it too
    unused = [t for t in rows if t not in kept]
    leaking = [t for t in unused if any(h in t for h in held) or (any(t in h for h in held) and not any(t in x for x in train))]
    assert task.info["transfer"] == {"source": "train", "unused_train_rows": len(unused), "n": 200,
                                     "dropped_overlap": len(leaking)} and len(leaking) >= 10
    assert load_task(load_config(tmp_path / "c.yaml").tasks[0]).transfer.texts == task.transfer.texts   # seeded


def test_transfer_file_reads_text_columns_only_and_drops_held_out_content(tmp_path):
    """transfer_file: every row's text (labels, even unknown ones, ignored), minus the texts that equal or
    contain an eval text; the record names the file and the count."""
    ev = ["a fine day", "the cat sat"]
    (tmp_path / "train.csv").write_text("text,label\n" + "".join(f"t{i} x,{'ab'[i % 2]}\n" for i in range(40)))
    (tmp_path / "eval.csv").write_text("text,label\n" + "".join(f"{t},a\n" for t in ev))
    (tmp_path / "more.tsv").write_text("text\tlabel\nnew one\t???\na fine day\tb\nso the cat sat down\t\nnew two\ta\n")
    task_cfg = {"name": "toy", "train_file": str(tmp_path / "train.csv"), "eval_file": str(tmp_path / "eval.csv"),
                "transfer_file": str(tmp_path / "more.tsv")}
    (tmp_path / "c.yaml").write_text(yaml.safe_dump({"tasks": [task_cfg], "teachers": [{"name": "t", "kind": "tfidf"}]}))
    task = load_task(load_config(tmp_path / "c.yaml").tasks[0])
    assert task.transfer.texts == [("new one",), ("new two",)] and (task.transfer.labels == -1).all()
    assert task.info["transfer"] == {"source": "file", "file": str(tmp_path / "more.tsv"), "dropped_rows": 0, "n": 2,
                                     "dropped_overlap": 2}


def test_transfer_file_drops_what_an_extra_eval_set_holds(tmp_path):
    """A transfer text equal to (or containing) an extra eval set's text is dropped like a validation/eval one:
    otherwise the student would be distilled on teacher labels of exactly the out-of-domain texts it is scored on."""
    (tmp_path / "train.csv").write_text("text,label\n" + "".join(f"t{i} x,{'ab'[i % 2]}\n" for i in range(40)))
    (tmp_path / "eval.csv").write_text("text,label\nthe cat sat,a\n")
    (tmp_path / "ood.csv").write_text("text,label\nrain all week,b\n")
    (tmp_path / "more.tsv").write_text("text\nnew one\nrain all week\nit was rain all week long\nnew two\n")
    task_cfg = {"name": "toy", "train_file": str(tmp_path / "train.csv"), "eval_file": str(tmp_path / "eval.csv"),
                "transfer_file": str(tmp_path / "more.tsv"),
                "extra_eval": [{"name": "ood", "file": str(tmp_path / "ood.csv")}]}
    (tmp_path / "c.yaml").write_text(yaml.safe_dump({"tasks": [task_cfg], "teachers": [{"name": "t", "kind": "tfidf"}]}))
    task = load_task(load_config(tmp_path / "c.yaml").tasks[0])
    assert task.transfer.texts == [("new one",), ("new two",)]
    assert task.info["transfer"]["dropped_overlap"] == 2


def test_extra_eval_in_the_eval_manifest(runs):
    """eval/manifest.json follows COORD.md: extra_eval at the top, extra_files / extra_metrics per model (run
    seed); the files are the teachers' logits/<t>/ood.npy and the students' logits_ood.npy; metrics by hand."""
    d, _ = runs
    ev = d / "C/demo/eval"
    m = json.loads((ev / "manifest.json").read_text())
    assert m["extra_eval"] == {"ood": {"labels": "labels_ood.npy", "size": 5}}
    y = np.load(ev / "labels_ood.npy")
    assert y.tolist() == [0, 1, 1, 1, 0]                    # by name; "1" by index
    assert {e["method"] for e in m["models"]} == {"ta", "tb", "no_kd", "kd_ta", "kd_tb", "multi_average",
                                                  "multi_learned_gating"}
    for e in m["models"]:
        assert e["extra_files"] == {"ood": f"{e['method']}.ood.npy"}
        logits = np.load(ev / e["extra_files"]["ood"])
        source = d / "C/demo" / ("logits" if e["type"] == "teacher" else "students") / e["method"] / \
            ("ood.npy" if e["type"] == "teacher" else "logits_ood.npy")
        assert logits.dtype == np.float32 and logits.shape == (5, 2) and np.array_equal(logits, np.load(source))
        pred = logits.argmax(1)
        tp, fp, fn = ((pred == 1) & (y == 1)).sum(), ((pred == 1) & (y == 0)).sum(), ((pred == 0) & (y == 1)).sum()
        got = e["extra_metrics"]["ood"]
        assert got["accuracy"] == pytest.approx(100 * (pred == y).mean())
        assert got["f1"] == pytest.approx(100 * 2 * tp / (2 * tp + fp + fn) if tp else 0.0)
        assert set(got) == set(e["metrics"])
        assert e.get("transfer") == (150 if e["type"] in ("single", "multi") else None)
    assert m["transfer"]["n"] == 150 and m["transfer"]["source"] == "train"
    assert (d / "C/demo/data/transfer.jsonl").read_text().count('"label": -1') == 150


def test_no_kd_never_sees_the_transfer_set(runs):
    """C's no_kd is retrained (it now scores the extra set) on the labelled split only: A's logits exactly."""
    d, logs = runs
    assert "students/no_kd" in built(logs["C"])
    assert (d / "A/demo/students/no_kd/logits_eval.npy").read_bytes() == \
        (d / "C/demo/students/no_kd/logits_eval.npy").read_bytes()
    assert (d / "A/demo/students/kd_ta/logits_eval.npy").read_bytes() != \
        (d / "C/demo/students/kd_ta/logits_eval.npy").read_bytes()


def test_master_table_and_sweep_say_which_students_used_it(runs):
    d, _ = runs
    experiments.run_config(d / "C/config.yaml", d / "C", log=lambda _: None)   # the table, analysis, report
    note = "kd_ta, kd_tb, multi_average, multi_learned_gating learned from the labelled train split plus a transfer set of 150"
    assert note in (d / "C/results/master_results.md").read_text()
    assert note in (d / "C/report.md").read_text()
    n_train = json.loads((d / "C/demo/eval/manifest.json").read_text())["n_train"]
    steps = f"{(n_train + 150) / n_train:.2f}× the examples and optimizer steps per epoch of the no-KD student"
    assert steps in (d / "C/report.md").read_text()                     # how much more the KD students saw
    assert "extra eval set(s) ood (5 examples)" in (d / "C/report.md").read_text()
    assert main(["sweep", str(d / "C"), "--param", "distill.use_transfer=false,true", "--strategies", "average",
                 "--no-single"]) == 0
    rows = (d / "C/sweeps/use_transfer/sweep_results.csv").read_text().splitlines()
    assert rows[0].split(",")[-2:] == ["demo_gap_closed", "trained_in"]
    assert [r.split(",")[:3] for r in rows[1:]] == [["use_transfer=false", "false", "no_kd"],
                                                    ["use_transfer=false", "false", "multi_average"],
                                                    ["use_transfer=true", "true", "no_kd"],
                                                    ["use_transfer=true", "true", "multi_average"]]
    point = d / "C/sweeps/use_transfer/use_transfer=false/demo/students/multi_average/logits_eval.npy"
    assert point.read_bytes() == (d / "A/demo/students/multi_average/logits_eval.npy").read_bytes()


# ---------------------------------------------------------------- refusals: one line each

def refused(capsys, argv, phrase):
    assert main(argv) != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("mtkd: error:") and phrase in err[0], err


@pytest.mark.parametrize("task, phrase", [
    ({"transfer_from_train": 10, "transfer_file": "x.csv"}, "give transfer_file or transfer_from_train, not both"),
    ({"transfer_from_train": 0}, "transfer_from_train must be >= 1"),
    ({"transfer_from_train": 5000}, "transfer_from_train: 5000 exceeds the"),
    ({"max_train_examples": None, "transfer_from_train": 10}, "it left none"),
    ({"extra_eval": [{"name": "transfer", "file": "ood.tsv"}]}, "must use letters, digits"),
    ({"extra_eval": [{"name": "o", "file": "ood.tsv"}, {"name": "o", "file": "ood.tsv"}]}, "lists 'o' twice"),
    ({"extra_eval": [{"name": "o", "file": "bad.tsv", "text_columns": ["sentence"]}]},
     "unknown label 'great'"),
    ({"extra_eval": [{"name": "o", "file": "ood.tsv", "text_columns": ["a", "b"]}]}, "has 2 text column(s)"),
])
def test_bad_transfer_and_extra_eval(capsys, tmp_path, task, phrase):
    (tmp_path / "ood.tsv").write_text(OOD)
    (tmp_path / "bad.tsv").write_text("sentence\tlabel\nfine\tpositive\nreally fine\tgreat\n")
    data = yaml.safe_load(yaml.safe_dump(BASE))
    data["tasks"][0].update(task)
    data["tasks"][0] = {k: v for k, v in data["tasks"][0].items() if v is not None}
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(data))
    refused(capsys, ["extract-logits", str(tmp_path / "c.yaml"), "--out", str(tmp_path / "r")], phrase)


def test_logits_file_teacher_needs_the_transfer_file(capsys, tmp_path):
    data = yaml.safe_load(yaml.safe_dump(BASE))
    data["tasks"][0]["transfer_from_train"] = 10
    data["teachers"].append({"name": "far", "kind": "logits",
                             "files": {s: f"{s}.npy" for s in ("train", "validation", "eval")}})
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(data))
    refused(capsys, ["run", str(tmp_path / "c.yaml")], "files needs exactly the splits train, validation, eval, "
            "transfer; missing transfer (the tasks' transfer set and extra eval sets")


def test_packaged_transfer_demo_loads():
    from mtkd.cli import demo_config_path
    task = load_task(load_config(demo_config_path(transfer=True)).tasks[0])
    assert len(task.transfer) == 1500 and len(task.extra["reviews"]) == 48 and len(task.splits["train"]) == 540


def _spy_recipe(monkeypatch, d, name, data):
    """Run config `data` up to the multi-teacher students with `train` spied: (its recipe, its train set size,
    the task, the run folder)."""
    seen = {}
    from mtkd.pipeline import students
    real_train = students.train

    def spy(model, train_data, spec, recipe, *a, **k):
        seen["recipe"], seen["n"] = recipe, len(train_data)
        return real_train(model, train_data, spec, recipe, *a, **k)
    monkeypatch.setattr(students, "train", spy)
    cfg, out = d / f"{name}.yaml", d / name
    cfg.write_text(yaml.safe_dump(data))
    experiments.run_config(cfg, out, until="multi", log=lambda _: None)
    return seen["recipe"], seen["n"], load_task(load_config(out / "config.yaml").tasks[0]), out


def test_alpha_zero_students_train_without_the_transfer_set(runs, monkeypatch):
    """At alpha = 0 the loss is CE alone: the transfer rows (no label) would only dilute the batches, so the
    student trains on train only (fails if the transfer set reached it)."""
    d, _ = runs
    data = yaml.safe_load(yaml.safe_dump(BASE))
    data["tasks"][0]["transfer_from_train"] = 150
    data["distill"].update(alpha=0.0, strategies=["average"], baseline=False, single_teacher=False)
    recipe, n, task, _ = _spy_recipe(monkeypatch, d, "alpha0", data)
    assert n == len(task.splits["train"]) and (recipe.labels >= 0).all()


def test_online_teachers_label_the_transfer_rows(runs, monkeypatch):
    """distill.mode: online with a transfer set: the teachers run on the transfer texts during training and
    give exactly the logits the cached store holds for that split."""
    d, _ = runs
    data = yaml.safe_load(yaml.safe_dump(BASE))
    data["tasks"][0]["transfer_from_train"] = 150
    data["teachers"] = [{"name": "ta", "kind": "tfidf"}, {"name": "tc", "kind": "tfidf", "C": 0.5}]
    data["distill"].update(mode="online", strategies=["average"], baseline=False, single_teacher=False)
    recipe, n, task, out = _spy_recipe(monkeypatch, d, "online", data)
    n_train = len(task.splits["train"])
    assert n == n_train + 150 and (recipe.labels[n_train:] == -1).all()
    idx = torch.arange(n_train, n_train + 150)
    online = recipe.teachers(idx).numpy()
    stored = Run(load_config(out / "config.yaml"), out).teacher_logits(task, ["ta", "tc"], "transfer")
    assert online.shape == stored.shape == (2, 150, 2)
    np.testing.assert_allclose(online, stored, rtol=1e-5, atol=1e-6)
    assert not np.allclose(online[0], online[1])
