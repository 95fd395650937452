"""Teachers that differ: the from-scratch CNN, fine-tuned checkpoints used as they are (epochs: 0,
id2label aligned by name), and teachers from files (kind: logits). Tiny models built in code."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mtkd.config import TaskConfig, load_config
from mtkd.tasks import Split, load_task
from mtkd.teachers import load_teacher, make_teacher
from mtkd.teachers.cnn import tokenize, truncate_pair

from _checkpoints import save_checkpoint


@pytest.fixture(scope="module")
def demo():
    return load_task(TaskConfig(demo_size=2400))


def teacher_cfg(*overrides):
    return load_config(None, ["teachers=[{name: t, kind: cnn}]", *overrides]).teachers[0]


# ---------------------------------------------------------------- cnn

@pytest.fixture(scope="module")
def cnn(demo, tmp_path_factory):
    cfg = teacher_cfg("teachers.0.epochs=8", "teachers.0.embedding_dim=32", "teachers.0.filters=16", "teachers.0.min_count=1")
    t = make_teacher(cfg, demo.label_names, 7).fit(demo.splits["train"], demo.splits["validation"],
                                                  tmp_path_factory.mktemp("cnn_work"))
    return cfg, t


def test_cnn_kind_defaults_fill_only_what_the_config_leaves_out():
    """cnn's own lr/epochs defaults apply when absent; a given value wins; hf keeps its defaults."""
    assert (teacher_cfg().lr, teacher_cfg().epochs) == (3e-3, 5.0)
    assert teacher_cfg("teachers.0.lr=1e-2").lr == 1e-2
    assert load_config(None, ["teachers=[{name: t}]"]).teachers[0].lr == 5e-5


def test_cnn_learns_the_demo_task(demo, cnn):
    """A from-scratch network, not a constant: well above chance on held-out validation sentences (the
    demo's eval split uses adjectives never seen in train, which no from-scratch vocabulary can know)."""
    _, t = cnn
    va = demo.splits["validation"]
    acc = float((t.logits(va.texts).argmax(1) == va.labels).mean())
    assert acc > 0.65, acc   # measured 0.72 (TF-IDF: 0.76); chance 0.5


def test_cnn_is_seeded_deterministic_and_round_trips(demo, cnn, tmp_path):
    """Same seed, same logits (bit for bit); save -> load gives the same logits; another seed differs."""
    cfg, t = cnn
    texts = demo.splits["eval"].texts
    again = make_teacher(cfg, demo.label_names, 7).fit(demo.splits["train"], demo.splits["validation"], tmp_path / "w2")
    np.testing.assert_array_equal(t.logits(texts), again.logits(texts))
    t.save(tmp_path / "model")
    assert {p.name for p in (tmp_path / "model").iterdir()} == {"model.safetensors", "vocab.json"}
    loaded = load_teacher(cfg, demo.label_names, 7, tmp_path / "model")
    np.testing.assert_array_equal(t.logits(texts), loaded.logits(texts))
    other = make_teacher(cfg, demo.label_names, 8).fit(demo.splits["train"], demo.splits["validation"], tmp_path / "w3")
    assert not np.array_equal(t.logits(texts), other.logits(texts))


def test_cnn_logits_do_not_depend_on_batch_padding(demo, cnn):
    """A short text gets the same logits alone as in a batch padded to a long text (masked max-pool)."""
    _, t = cnn
    short, long_ = ("good",), (" ".join(["a fine film"] * 15),)
    alone = t.logits([short])
    np.testing.assert_allclose(t.logits([short, long_])[:1], alone, rtol=1e-5, atol=1e-6)


def test_cnn_vocabulary_comes_from_train_with_min_count(demo):
    cfg = teacher_cfg("teachers.0.min_count=2")
    t = make_teacher(cfg, demo.label_names, 0)
    t.build_vocab([("Good good film",), ("bad film.",)])
    assert list(t.vocab) == ["[PAD]", "[UNK]", "[SEP]", "film", "good"]
    ids = t.encode([("good zebra",)])
    assert ids.ids.tolist() == [t.vocab["good"], t.vocab["[UNK]"]]


def test_cnn_sentence_pairs_are_one_sequence_with_a_separator(demo):
    assert tokenize("It's a dog's life.") == ["it's", "a", "dog's", "life", "."]
    assert truncate_pair(list("abcdef"), list("xy"), 6) == (list("abc"), list("xy"))
    t = make_teacher(teacher_cfg("teachers.0.min_count=1", "teachers.0.max_length=6"), ("no", "yes"), 0)
    t.build_vocab([("a b c d e f", "x y")])
    enc = t.encode([("a b c d e f", "x y")])
    v = t.vocab
    assert enc.ids.tolist() == [v["a"], v["b"], v["c"], v["[SEP]"], v["x"], v["y"]]
    pairs = Split([("a b", "c"), ("d", "e f")] * 20, np.array([0, 1] * 20))
    fitted = make_teacher(teacher_cfg("teachers.0.epochs=1", "teachers.0.min_count=1"), ("no", "yes"), 0)
    fitted.fit(pairs, pairs.subset([0, 1]), Path(__import__("tempfile").mkdtemp()))
    assert fitted.logits(pairs.texts[:2]).shape == (2, 2)


# ---------------------------------------------------------------- fine-tuned checkpoints as they are

def as_is(model: str, *overrides):
    return load_config(None, [f"teachers=[{{name: ft, model: '{model}', epochs: 0}}]", *overrides]).teachers[0]


def extract(cfg, labels, tmp_path, texts):
    t = make_teacher(cfg, labels, 0).fit(None, None, tmp_path)
    return t, t.logits(texts)


def test_checkpoint_as_is_is_aligned_to_the_task_by_name(tmp_path, demo):
    """id2label {0: POSITIVE, 1: NEGATIVE} against the task's (negative, positive): the columns are swapped,
    and an explicit label_order or as_is gives what it says. Without alignment, accuracy would flip."""
    ckpt = save_checkpoint(tmp_path / "ckpt", {0: "POSITIVE", 1: "NEGATIVE"})
    texts = demo.splits["eval"].texts[:16]
    _, raw = extract(as_is(ckpt, "teachers.0.label_order=as_is"), demo.label_names, tmp_path / "a", texts)
    t, by_name = extract(as_is(ckpt), demo.label_names, tmp_path / "b", texts)
    np.testing.assert_array_equal(by_name, raw[:, ::-1])
    _, listed = extract(as_is(ckpt, "teachers.0.label_order=[positive,negative]"), demo.label_names, tmp_path / "c", texts)
    np.testing.assert_array_equal(listed, by_name)
    t.save(tmp_path / "saved")   # the order travels with the saved model
    np.testing.assert_array_equal(load_teacher(as_is(ckpt), demo.label_names, 0, tmp_path / "saved").logits(texts), by_name)


def test_mnli_style_checkpoint_with_contradiction_first(tmp_path):
    from mtkd.teachers.labels import checkpoint_order
    order = checkpoint_order({0: "CONTRADICTION", 1: "entailment", 2: "Neutral"}, ("entailment", "neutral", "contradiction"),
                             None, "t")
    assert order == [1, 2, 0]
    z = np.array([[10.0, 20.0, 30.0]])   # contradiction 10, entailment 20, neutral 30
    assert z[:, order].tolist() == [[20.0, 30.0, 10.0]]
    assert checkpoint_order({0: "not_entailment", 1: "Entailment"}, ("entailment", "not entailment"), None, "t") == [1, 0]


@pytest.mark.parametrize("id2label, label_order, phrase", [
    ({0: "LABEL_0", 1: "LABEL_1"}, None, "the checkpoint's labels are generic (LABEL_0, LABEL_1)"),
    ({0: "toxic", 1: "clean"}, None, "do not match the task's labels ['negative', 'positive'] (no 'negative', 'positive')"),
    ({0: "neg", 1: "pos", 2: "neutral"}, None, "3 classes"),
    ({0: "LABEL_0", 1: "LABEL_1"}, "[negative, negative]", "class name 'negative' appears twice"),
])
def test_checkpoint_labels_that_cannot_be_matched_are_refused(tmp_path, demo, id2label, label_order, phrase):
    from mtkd.errors import MtkdError
    ckpt = save_checkpoint(tmp_path / "ckpt", id2label)
    cfg = as_is(ckpt, *([f"teachers.0.label_order={label_order}"] if label_order else []))
    with pytest.raises(MtkdError, match=__import__("re").escape(phrase)):
        make_teacher(cfg, demo.label_names, 0).fit(None, None, tmp_path)


def test_generic_labels_accepted_when_the_user_says_as_is(tmp_path, demo):
    ckpt = save_checkpoint(tmp_path / "ckpt", {0: "LABEL_0", 1: "LABEL_1"})
    t, z = extract(as_is(ckpt, "teachers.0.label_order=as_is"), demo.label_names, tmp_path / "w", demo.splits["eval"].texts[:4])
    assert z.shape == (4, 2)


def test_a_base_model_without_a_trained_head_is_refused(tmp_path, demo):
    """epochs 0 on a checkpoint without classifier weights would silently use a random head."""
    from transformers import BertConfig, BertModel
    from mtkd.errors import MtkdError
    BertModel(BertConfig(vocab_size=30522, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                         intermediate_size=64)).save_pretrained(tmp_path / "base")
    with pytest.raises(MtkdError, match="is not a fine-tuned classifier: no trained weights for classifier"):
        make_teacher(as_is(str(tmp_path / "base"), "teachers.0.label_order=as_is"), demo.label_names, 0).fit(None, None, tmp_path)


# ---------------------------------------------------------------- teachers from files (kind: logits)

def file_teacher(files: dict, scores=None):
    from mtkd.config import TeacherConfig
    from mtkd.teachers.files import FileTeacher
    cfg = TeacherConfig(name="ext", kind="logits", files={k: str(v) for k, v in files.items()}, scores=scores)
    return FileTeacher(cfg, ("negative", "positive"))


def write_npy(path: Path, arr, label_names, kind, fingerprint) -> Path:
    import json
    np.save(path, arr)
    path.with_suffix(".json").write_text(json.dumps({"label_names": list(label_names), "kind": kind, "fingerprint": fingerprint}))
    return path


def test_npy_scores_are_put_in_the_task_label_order_by_name(tmp_path, demo):
    """A file whose columns are (POSITIVE, NEGATIVE) gives the task's (negative, positive) order."""
    ev = demo.splits["eval"]
    z = np.random.default_rng(0).normal(size=(len(ev), 2)).astype(np.float32)
    p = write_npy(tmp_path / "eval.npy", z, ["POSITIVE", "NEGATIVE"], "logits", ev.fingerprint(demo.label_names))
    got = file_teacher({"train": p, "validation": p, "eval": p}).split_logits("eval", ev)
    np.testing.assert_array_equal(got, z[:, ::-1])


def test_probabilities_are_tempered_in_the_probability_domain(tmp_path, demo):
    """Probabilities enter as log p: softmax(log p / T) = p^(1/T) renormalised, and for p = softmax(z) it is
    exactly softmax(z / T), the target the same teacher would give as logits (single-teacher KD, any T)."""
    import torch
    from mtkd.fusion import FusionContext, average
    ev = demo.splits["eval"]
    z = np.random.default_rng(1).normal(scale=3, size=(len(ev), 2))
    p = torch.softmax(torch.from_numpy(z), -1).numpy()
    path = write_npy(tmp_path / "eval.npy", p, demo.label_names, "probs", ev.fingerprint(demo.label_names))
    logp = file_teacher({"train": path, "validation": path, "eval": path}).split_logits("eval", ev)
    for T in (0.5, 1.0, 2.0, 6.0):
        target = average(torch.from_numpy(logp)[None].double(), FusionContext(T)).numpy()
        powered = p ** (1 / T)
        np.testing.assert_allclose(target, powered / powered.sum(1, keepdims=True), rtol=1e-5, atol=1e-7)
        np.testing.assert_allclose(target, torch.softmax(torch.from_numpy(z) / T, -1).numpy(), rtol=1e-5, atol=1e-7)


def test_probability_zero_is_clamped_not_minus_infinity(tmp_path):
    from mtkd.teachers.files import LOG_FLOOR, to_logits
    out = to_logits(np.array([[1.0, 0.0], [0.25, 0.75]]), "probs", "t")
    assert np.isfinite(out).all() and out[0, 1] == LOG_FLOOR
    np.testing.assert_allclose(out[1], np.log([0.25, 0.75]), rtol=1e-6)


def test_csv_rows_are_matched_by_text_in_any_order(tmp_path, demo):
    """Shuffled rows, extra rows and label columns in another order and case: each example gets its own row."""
    import csv
    va = demo.splits["validation"]
    rng = np.random.default_rng(2)
    by_text = {t: rng.normal(size=2) for t in dict.fromkeys(va.texts)}   # the carve keeps equal texts together
    z = np.array([by_text[t] for t in va.texts])
    rows = [{"text": t[0], "Positive": f"{a[1]:.6f}", "NEGATIVE": f"{a[0]:.6f}"} for t, a in by_text.items()]
    rows.append({"text": "a sentence the task does not have", "Positive": "1", "NEGATIVE": "0"})
    order = rng.permutation(len(rows))
    with open(tmp_path / "val.csv", "w", newline="") as f:
        w = csv.DictWriter(f, ["NEGATIVE", "text", "Positive"])
        w.writeheader()
        w.writerows(rows[i] for i in order)
    t = file_teacher({"train": tmp_path / "val.csv", "validation": tmp_path / "val.csv", "eval": tmp_path / "val.csv"}, "logits")
    np.testing.assert_allclose(t.split_logits("validation", va), z, atol=1e-5)
    np.testing.assert_allclose(t.logits(list(reversed(va.texts[:3]))), z[:3][::-1], atol=1e-5)


def test_texts_that_differ_only_in_whitespace_keep_their_own_scores(tmp_path):
    """'good' and 'good ' are two examples: each gets its own row (stripping merged them into one); a text
    found only with other whitespace is refused with a hint."""
    from mtkd.errors import MtkdError
    from mtkd.tasks import Split
    (tmp_path / "s.csv").write_text("text,negative,positive\ngood,0.1,0.9\ngood ,0.8,0.2\n")
    t = file_teacher({s: tmp_path / "s.csv" for s in ("train", "validation", "eval")}, "probs")
    z = t.split_logits("validation", Split([("good",), ("good ",)], np.array([1, 0])))
    np.testing.assert_allclose(np.exp(z), [[0.1, 0.9], [0.8, 0.2]], atol=1e-6)
    with pytest.raises(MtkdError, match="other surrounding whitespace"):
        t.split_logits("validation", Split([(" good",)], np.array([1])))


def test_jsonl_sentence_pairs_with_probabilities(tmp_path):
    import json
    pairs = Split([("a cat", "a dog"), ("the sun", "the moon")], np.array([0, 1]))
    lines = [{"text": ["the sun", "the moon"], "negative": 0.1, "positive": 0.9},
             {"text": ["a cat", "a dog"], "negative": 0.8, "positive": 0.2}]
    (tmp_path / "s.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines))
    t = file_teacher({s: tmp_path / "s.jsonl" for s in ("train", "validation", "eval")}, "probs")
    np.testing.assert_allclose(t.split_logits("train", pairs), np.log([[0.8, 0.2], [0.1, 0.9]]), rtol=1e-6)


# ---------------------------------------------------------------- a config mixing every kind, end to end

SOURCE = """
name: source
tasks: [{name: demo, demo_size: 400}]
teachers: [{name: far, kind: tfidf, C: 1.0, ngram_max: 1}]
"""
MIXED = """
name: mixed
tasks: [{name: demo, demo_size: 400}]
teachers:
  - {name: minilm, model: minilm, layers: 2, epochs: 1, lr: 1.0e-4, max_length: 32}
  - {name: tfidf, kind: tfidf}
  - {name: cnn, kind: cnn, epochs: 3, embedding_dim: 32, filters: 16, min_count: 1}
  - {name: far, kind: logits, files: {train: far/demo/train.npy, validation: far/demo/validation.npy, eval: far/demo/eval.npy}}
student: {model: tiny, layers: 1, epochs: 1, lr: 2.0e-3, max_length: 32}
distill: {strategies: [average, prob_average], baseline: false}
"""


def test_a_config_mixing_every_teacher_kind_runs_end_to_end(tmp_path, capsys):
    """MiniLM + TF-IDF + CNN + a teacher from a logits file (exported from another run with mtkd export-logits,
    relative paths from the config's folder): every teacher and student lands in the table; the file teacher's
    cached logits are the exported ones bit for bit; changing its file makes its teacher stage stale."""
    import csv
    from mtkd.cli import main
    (tmp_path / "source.yaml").write_text(SOURCE)
    assert main(["extract-logits", str(tmp_path / "source.yaml"), "--out", str(tmp_path / "src_run")]) == 0
    assert main(["export-logits", str(tmp_path / "src_run"), "far", "--out", str(tmp_path / "far")]) == 0
    (tmp_path / "mixed.yaml").write_text(MIXED)
    run = tmp_path / "run"
    assert main(["run", str(tmp_path / "mixed.yaml"), "--out", str(run)]) == 0
    with open(run / "results" / "master_results.csv") as f:
        rows = {r["method"]: r for r in csv.DictReader(f)}
    assert set(rows) == {"minilm", "tfidf", "cnn", "far", "kd_minilm", "kd_tfidf", "kd_cnn", "kd_far",
                         "multi_average", "multi_prob_average"}
    for split in ("train", "validation", "eval"):
        np.testing.assert_array_equal(np.load(run / "demo" / "logits" / "far" / f"{split}.npy"),
                                      np.load(tmp_path / "src_run" / "demo" / "logits" / "far" / f"{split}.npy"))
    capsys.readouterr()
    z = np.load(tmp_path / "far" / "demo" / "eval.npy")
    np.save(tmp_path / "far" / "demo" / "eval.npy", z + 1.0)   # same argmax, other scores: another teacher
    assert main(["extract-logits", str(tmp_path / "mixed.yaml"), "--out", str(run)]) != 0
    assert "teachers/far" in capsys.readouterr().err


# ---------------------------------------------------------------- mtkd list

def test_list_prints_every_registered_name_with_its_line(capsys, monkeypatch):
    """Strategies come from fusion.STRATEGIES (a newly registered one appears with its docstring's first
    line), teacher kinds from config.TEACHER_KINDS (every kind make_teacher builds), tasks from the registry."""
    from mtkd import fusion
    from mtkd.cli import main
    from mtkd.config import TEACHER_KINDS
    from mtkd.tasks import REGISTRY

    def newest(logits, ctx):
        """sigma(max_k z_k / T): a strategy registered after mtkd list was written.

        More text."""
    monkeypatch.setitem(fusion.STRATEGIES, "newest", newest)
    assert main(["list", "strategies"]) == 0
    lines = dict(line.split(None, 1) for line in capsys.readouterr().out.splitlines())
    assert set(lines) == set(fusion.STRATEGIES)
    assert lines["newest"] == "sigma(max_k z_k / T): a strategy registered after mtkd list was written."
    assert lines["average"].startswith("sigma(mean_k z_k / T)")
    assert main(["list", "teachers"]) == 0
    out = capsys.readouterr().out
    assert [line.split()[0] for line in out.splitlines()] == list(TEACHER_KINDS)
    for kind in set(TEACHER_KINDS) - {"hf"}:   # every listed kind is one make_teacher builds (hf: tested above)
        files = ["teachers.0.files={train: x.npy, validation: x.npy, eval: x.npy}"] if kind == "logits" else []
        cfg = load_config(None, [f"teachers=[{{name: t, kind: {kind}}}]", *files])
        assert make_teacher(cfg.teachers[0], ("a", "b"), 0) is not None
    assert main(["list", "tasks"]) == 0
    names = [line.split()[0] for line in capsys.readouterr().out.splitlines()]
    assert names[:len(REGISTRY)] == list(REGISTRY)
    assert main(["list", "nothing"]) == 2


def test_shipped_diverse_config_loads_with_its_files_next_to_the_repo():
    """configs/diverse_sst2.yaml validates; its file paths resolve from the config's folder (repo/runs/...)."""
    root = Path(__file__).resolve().parents[1]
    cfg = load_config(root / "configs" / "diverse_sst2.yaml")
    assert [t.kind for t in cfg.teachers] == ["hf", "tfidf", "cnn", "logits"]
    assert cfg.teachers[3].files["eval"] == str(root / "runs" / "exported" / "minilm_l3" / "sst2" / "eval.npy")
    assert cfg.tasks[0].glue_dir == str(root.parent / "shared" / "data" / "glue")   # config-relative, like the files
    assert cfg.tasks[0].transfer_from_train == 8000 and set(cfg.teachers[3].files) >= {"transfer", "reviews"}
    assert cfg.tasks[0].extra_eval[0].file == str(root / "src" / "mtkd" / "configs" / "reviews_ood.tsv")


# ---------------------------------------------------------------- one logits teacher for several tasks: {task}

TWO_TASKS = """
name: {name}
tasks:
  - {{name: demo, demo_size: 300}}
  - {{name: reviews, train_file: data/all.csv, eval_fraction: 0.2, label_column: sentiment,
     label_names: [negative, positive], extra_eval: [{{name: held, file: data/held.csv, label_column: sentiment}}]}}
teachers: [{teacher}]
student: {{model: tiny, layers: 1, epochs: 1, lr: 2.0e-3, max_length: 32}}
distill: {{strategies: [average], baseline: false}}
"""


def test_a_logits_teacher_reads_each_tasks_files_through_task_in_its_paths(tmp_path, capsys):
    """The voices study's layout (issue 30): `mtkd export-logits` writes <task>/<split>.npy and one kind: logits
    teacher serves every task of a config through `{task}` in its paths; a split only one task has (an extra
    eval set) is read for that task alone. Each task's cached logits are the source run's bit for bit."""
    import csv
    import json
    from mtkd.cli import main
    from mtkd.demo_data import generate
    (tmp_path / "data").mkdir()
    for name, (n, seed) in {"all.csv": (200, 0), "held.csv": (60, 1)}.items():
        texts, labels = generate(n, seed=seed, split="train" if seed == 0 else "eval")
        with open(tmp_path / "data" / name, "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["text", "sentiment"])
            w.writerows([t, ["negative", "positive"][y]] for t, y in zip(texts, labels))
    (tmp_path / "source.yaml").write_text(TWO_TASKS.format(name="source", teacher="{name: tf, kind: tfidf}"))
    assert main(["extract-logits", str(tmp_path / "source.yaml"), "--out", str(tmp_path / "src_run")]) == 0
    assert main(["export-logits", str(tmp_path / "src_run"), "tf", "--out", str(tmp_path / "scores")]) == 0
    assert (tmp_path / "scores" / "reviews" / "held.npy").is_file()
    assert not (tmp_path / "scores" / "demo" / "held.npy").exists()
    files = ", ".join(f"{s}: 'scores/{{task}}/{s}.npy'" for s in ("train", "validation", "eval", "held"))
    (tmp_path / "read.yaml").write_text(TWO_TASKS.format(name="read", teacher=f"{{name: tf, kind: logits, files: {{{files}}}}}"))
    run = tmp_path / "run"
    capsys.readouterr()
    assert main(["extract-logits", str(tmp_path / "read.yaml"), "--out", str(run)]) == 0
    for task, splits in {"demo": ("train", "validation", "eval"), "reviews": ("train", "validation", "eval", "held")}.items():
        for split in splits:
            np.testing.assert_array_equal(np.load(run / task / "logits" / "tf" / f"{split}.npy"),
                                          np.load(tmp_path / "src_run" / task / "logits" / "tf" / f"{split}.npy"))
    assert not (run / "demo" / "logits" / "tf" / "held.npy").exists()
    # the export carries the source run's provenance: in-sample TF-IDF logits stay "in-sample", not "unknown"
    assert json.loads((tmp_path / "scores" / "demo" / "train.json").read_text())["train_logits"] == "in-sample"
    assert "its train logits are in-sample" in capsys.readouterr().err
