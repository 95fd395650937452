"""Bad input, clear errors: a library of malformed inputs, one test each.

Every case runs the real CLI in-process (`mtkd.cli.main`) and checks the contract of
docs/reliability.md: a non-zero exit, exactly one line on stderr starting with
"mtkd: error:" that names what is wrong, no traceback, and nothing half-written under the
test's folder (no `.*.tmp*` file or folder, no stage folder without its manifest.json).
Pipeline cases use the tiny random BERT and TF-IDF teachers; the logit cases corrupt a copy of
one extraction made once per module.
"""
from __future__ import annotations

import fnmatch
import hashlib
import io
import json
import os
import resource
import shutil
import signal
from pathlib import Path

import numpy as np
import pytest
import yaml

from mtkd.cli import main

TINY = """\
name: tiny
tasks: [{name: demo, demo_size: 200}]
teachers: [{name: t1, model: tiny, epochs: 1, lr: 1.0e-3, max_length: 32}, {name: tf, kind: tfidf}]
student: {model: tiny, layers: 1, epochs: 1, max_length: 32}
distill: {strategies: [average], baseline: false, single_teacher: false}
"""
STAGE_PARENTS = ("teachers", "logits", "students")


# ---------------------------------------------------------------- helpers

def write(path: Path, text, encoding="utf-8") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding=encoding)
    return path


def config(tmp_path: Path, text: str = TINY, name: str = "cfg.yaml") -> Path:
    return write(tmp_path / name, text)


def tiny_with(**task) -> str:
    """The tiny config with its one task replaced by `task` (a file task, say)."""
    data = yaml.safe_load(TINY)
    data["tasks"] = [task]
    return yaml.safe_dump(data, sort_keys=False)


def assert_clean(root: Path, allow_unfinished: tuple[Path, ...] = ()) -> None:
    """Nothing half-written under `root`: no temporary file or folder, and every stage folder of
    every run directory (a folder holding config.yaml) has its manifest.json."""
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            assert not fnmatch.fnmatch(name, ".*.tmp*"), f"half-written {Path(dirpath) / name}"
            assert name != ".mtkd-write-probe", f"write probe left in {dirpath}"
    for cfg in root.rglob("config.yaml"):
        run = cfg.parent
        for task in (d for d in run.iterdir() if d.is_dir() and not d.name.startswith(".")):
            folders = [task / "data", task / "eval"]
            folders += [s for p in STAGE_PARENTS if (task / p).is_dir() for s in (task / p).iterdir()
                        if s.is_dir() and not s.name.startswith(".")]
            for f in folders:
                if f.is_dir() and f not in allow_unfinished:
                    assert (f / "manifest.json").is_file(), f"stage folder without manifest: {f}"


def refused(capsys, argv, phrase: str, root: Path | None = None, **clean) -> str:
    """Run the CLI; assert the one-line refusal containing `phrase`; return the line."""
    rc = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    assert rc != 0, f"exit 0 for {argv}\n{out}"
    assert "Traceback" not in err
    assert err.startswith("mtkd: error:") and err.endswith("\n") and err.count("\n") == 1, f"not one line: {err!r}"
    assert phrase in err, f"{phrase!r} not in {err!r}"
    if root is not None:
        assert_clean(root, **clean)
    return err


def ok(capsys, argv) -> str:
    rc = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    assert rc == 0, err
    return out


def refused_config(capsys, tmp_path, text, phrase, overrides=()):
    """A config error: refused before anything is written (the run directory is not even created)."""
    out = tmp_path / "run"
    refused(capsys, ["run", config(tmp_path, text), "--out", out, *overrides], phrase, tmp_path)
    assert not out.exists(), "a refused config must not create its run directory"


# ---------------------------------------------------------------- command line

@pytest.mark.parametrize("argv,phrase", [
    (["extract-logit", "cfg.yaml"], "unknown command 'extract-logit' (did you mean 'extract-logits'?)"),
    (["run"], "required: config"),
    (["run", "cfg.yaml", "--frobnicate"], "unrecognized arguments: --frobnicate"),
])
def test_bad_command_line(capsys, argv, phrase):
    refused(capsys, argv, phrase)


def test_ray_resources_without_ray(capsys, tmp_path):
    """--cpus-per-task / --gpus-per-task only mean something with --ray."""
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.yaml").write_text(TINY)
    refused(capsys, ["sweep", str(run), "--param", "distill.alpha=0.5", "--cpus-per-task", "2"],
            "--cpus-per-task and --gpus-per-task go with --ray")


@pytest.mark.parametrize("command", ["verify-logits", "analyze", "report"])
def test_not_a_run_directory(capsys, tmp_path, command):
    refused(capsys, [command, tmp_path], "is not a run directory (no config.yaml)", tmp_path)


def test_missing_config_file(capsys, tmp_path):
    refused(capsys, ["run", tmp_path / "nope.yaml", "--out", tmp_path / "run"], "config file not found", tmp_path)
    assert not (tmp_path / "run").exists()


# ---------------------------------------------------------------- config files and overrides

@pytest.mark.parametrize("text,phrase", [
    ("name: x\n  bad: [", "invalid YAML at line"),
    ("- name: x\n- seed: 1\n", "top level must be a mapping"),
    (TINY + "studnet: {epochs: 1}\n", "unknown key 'studnet' (did you mean 'student'?)"),
    (TINY.replace("max_length: 32}\n", "max_length: 32, epocs: 2}\n"), "unknown key 'student.epocs' (did you mean 'epochs'?)"),
    (TINY.replace("[average]", "[averge]"), "unknown fusion strategy 'averge' (did you mean 'average'?)"),
    (TINY + "seed: 1.5\n", "'seed' must be an integer"),
    (TINY.replace("tasks: [{name: demo, demo_size: 200}]", "tasks: demo"), "'tasks' must be a list"),
    (TINY.replace("kind: tfidf", "kind: tfidf, trust_remote_code: 'yes'"), "must be true or false"),
    (TINY + "distill: {alpha: 0.5}\n", "invalid YAML at line 6: duplicate key 'distill'"),
    (TINY.replace("tasks: [{name: demo, demo_size: 200}]", "tasks: [5]"), "'tasks.0' must be a mapping, got int"),
    (TINY.replace("name: tiny", "name: ../../escaped"), "run name '../../escaped' may only use letters"),
    (TINY.replace("demo_size: 200", "demo_size: .inf"), "must be an integer"),
])
def test_bad_config_file(capsys, tmp_path, text, phrase):
    refused_config(capsys, tmp_path, text, phrase)


def test_demo_command_with_a_bad_override(capsys, tmp_path):
    refused(capsys, ["demo", "--out", tmp_path / "run", "distill.temperature=-1"], "distill.temperature must be > 0", tmp_path)
    assert not (tmp_path / "run").exists()


def test_run_name_cannot_escape_the_runs_folder(capsys, tmp_path, monkeypatch):
    """Without --out the run directory is runs/<name>: a name with '/' or '..' is refused."""
    monkeypatch.chdir(tmp_path)
    refused(capsys, ["run", config(tmp_path), "name=/tmp/elsewhere"], "run name '/tmp/elsewhere' may only use", tmp_path)
    assert not (tmp_path / "runs").exists()


def test_config_not_utf8(capsys, tmp_path):
    write(tmp_path / "cfg.yaml", "name: caf\xe9\n".encode("latin-1"))
    refused(capsys, ["run", tmp_path / "cfg.yaml", "--out", tmp_path / "run"], "not a UTF-8 text file", tmp_path)


@pytest.mark.parametrize("override,phrase", [
    ("distill.temperature=0", "distill.temperature must be > 0, got 0.0"),
    ("distill.temperature=-2", "distill.temperature must be > 0"),
    ("distill.temperature=.nan", "must be a finite number"),
    ("distill.alpha=1.5", "distill.alpha must be in [0, 1], got 1.5"),
    ("distill.alpha=-0.1", "distill.alpha must be in [0, 1]"),
    ("distill.mode=offline", "distill.mode must be one of cached, online"),
    ("tasks.0.name=sst3", "unknown task 'sst3' (did you mean 'sst2'?)"),
    ("tasks.0.metric=acc", "unknown metric 'acc' (did you mean 'accuracy'?)"),
    ("tasks.0.source=web", "unknown source 'web'"),
    ("tasks.0.validation_fraction=1.5", "validation_fraction must be in (0, 1)"),
    ("tasks.0.validation_fraction=0", "validation_fraction must be in (0, 1)"),
    ("tasks.0.max_train_examples=0", "max_train_examples must be >= 1"),
    ("tasks.0.eval_fraction=1", "eval_fraction must be in (0, 1)"),
    ("tasks.0.group_by=phrases", "group_by must be one of auto, exact, none, got 'phrases'"),
    ("tasks.0.header=false", "header: false needs columns: [...] naming every column in order"),
    ("tasks.0.columns=[text,label]", "columns names the columns of a header-less file; set header: false"),
    ("tasks.0.name=results", "task name 'results' is reserved"),
    ("teachers.1.kind=tfdif", "unknown kind 'tfdif' (did you mean 'tfidf'?)"),
    ("teachers.1.kind=svm", "unknown kind 'svm'"),
    ("teachers.1.name=t1", "teacher names must be unique"),
    ("teachers.1.name=a/b", "teacher name 'a/b' may only use letters, digits, '-' and '_'"),
    ("teachers.1.name=..", "teacher name '..' may only use letters"),
    ("teachers.0.batch_size=0", "teachers.t1.batch_size must be >= 1, got 0"),
    ("teachers.1.C=0", "teachers.tf.C must be > 0"),
    ("student.epochs=-1", "student.epochs must be > 0, got -1.0"),
    ("student.pooling=max", "student.pooling must be one of auto, cls, mean, got 'max'"),
    ("student.layers=0", "student.layers must be >= 1"),
    ("student.warmup_ratio=2", "student.warmup_ratio must be in [0, 1]"),
    ("eval_batch_size=0", "eval_batch_size must be >= 1"),
    ("threads=-1", "threads must be >= 1"),
    ("seed=-3", "seed must be >= 0"),
    ("teachers=[]", "'teachers' is empty"),
    ("distill.alpha=abc", "'distill.alpha' must be a number, got 'abc'"),
    ("distill.alpha", "override 'distill.alpha' must look like key=value"),
    ("teachers.5.lr=1", "override 'teachers.5.lr': no list item 5"),
    ("name.first=1", "override 'name.first': 'name' holds 'tiny', not a mapping"),
    ("seed.value=1", "'seed' must be an integer, got {'value': 1}"),
    # names that would merge rows of the master table or share a folder
    ("teachers.1.name=no_kd", "teacher name 'no_kd' collides with the students' names"),
    ("teachers.1.name=kd_t1", "teacher name 'kd_t1' collides with the students' names"),
    ("teachers.1.name=multi_average", "teacher name 'multi_average' collides"),
    ("teachers.1.name=T1", "teacher names must differ in more than upper/lower case"),
    ("distill.strategies=[average,weighted,average]", "distill.strategies lists 'average' twice"),
    ("teachers.1.crossfit=1", "teachers.tf.crossfit must be 0 (off) or a number of folds >= 2, got 1"),
    ("seeds=[]", "'seeds' is empty"),
    ("seeds=[4,1,4]", "seeds lists 4 twice"),
    ("seeds=[4,-1]", "seeds must be >= 0, got -1"),
    ("student.sparsity=1", "student.sparsity must be in [0, 1) (the share of weights pruned), got 1.0"),
    ("student.sparsity=-0.2", "student.sparsity must be in [0, 1)"),
    ("student.sparsity_schedule=cubc", "sparsity_schedule must be one of cubic, constant, got 'cubc' (did you mean 'cubic'?)"),
    ("student.sparsity_end=0", "sparsity_start and sparsity_end must satisfy 0 <= start < end <= 1"),
    ("student.sparsity_start=1.5", "sparsity_start and sparsity_end must satisfy 0 <= start < end <= 1"),
    # teacher kinds: a field the kind does not read is refused, not silently ignored
    ("teachers.1.epochs=3", "teacher 'tf' (kind tfidf) does not use 'epochs'; its fields: name, crossfit, bag, seed, C, ngram_max"),
    ("teachers.0.C=3", "teacher 't1' (kind hf) does not use 'C'"),
    ("teachers.1={name: c, kind: cnn, ngram_max: 3}", "teacher 'c' (kind cnn) does not use 'ngram_max'"),
    ("teachers.1={name: c, kind: cnn, min_count: 0}", "teachers.c.min_count must be >= 1, got 0"),
    ("teachers.1={name: c, kind: cnn, epochs: 0}", "teachers.c.epochs must be > 0, got 0"),
    # fusion settings
    ("distill.temperature=hot", "distill.temperature must be a number > 0 or 'auto', got 'hot'"),
    ("distill.temperature_grid=[1,0]", "distill.temperature_grid must list temperatures > 0"),
    ("distill.agreement_shift=1.5", "distill.agreement_shift must be in [0, 1]"),
    ("student.gate_entropy=-1", "student.gate_entropy must be >= 0"),
    # epochs 0: a fine-tuned checkpoint used as it is
    ("teachers.0.epochs=0", "teachers.t1: epochs 0 uses a fine-tuned classifier as it is; 'tiny' has no trained classification head"),
    ("teachers.0={name: ft, model: /tmp, epochs: 0, layers: 2}", "teachers.ft.layers needs training, but epochs is 0"),
    ("teachers.0.label_order=as_is", "teachers.t1.label_order applies to a checkpoint used as it is (kind hf, epochs: 0)"),
    ("teachers.0={name: ft, model: /tmp, epochs: 0, label_order: by_name}", "label_order must be as_is or a list"),
    # training and how a run executes (scale)
    ("student.max_grad_norm=-1", "student.max_grad_norm must be >= 0 (0 = no clipping), got -1.0"),
    ("teachers.0.grad_accum=0", "teachers.t1.grad_accum must be >= 1, got 0"),
    ("mixed_precision=fp8", "mixed_precision must be one of no, fp16, bf16, got 'fp8'"),
    ("tracking=tensorbord", "tracking must be one of none, tensorboard, mlflow, wandb, got 'tensorbord' (did you mean 'tensorboard'?)"),
    ("ray.cpus_per_task=0", "ray.cpus_per_task must be > 0"),
])
def test_bad_value_or_override(capsys, tmp_path, override, phrase):
    refused_config(capsys, tmp_path, TINY, phrase, [override])


def test_seeds_not_starting_with_the_run_seed(capsys, tmp_path):
    refused_config(capsys, tmp_path, TINY, "seeds must start with the run seed (seed: 3), got [1, 2]", ["seed=3", "seeds=[1,2]"])


def test_crossfit_in_online_mode(capsys, tmp_path):
    """Online mode runs the teacher fitted on all of train: its train logits would not be out of fold."""
    refused_config(capsys, tmp_path, TINY, "teachers.tf.crossfit needs distill.mode: cached",
                   ["teachers.1.crossfit=3", "distill.mode=online"])


def test_calibrate_with_calibrated_average(capsys, tmp_path):
    """calibrated_average calibrates itself: calibrate: true in front of it would temper each teacher twice."""
    refused_config(capsys, tmp_path, TINY, "calibrated_average already calibrates its teachers",
                   ["distill.calibrate=true", "distill.strategies=[calibrated_average]"])


def test_zero_seeds_on_the_command_line(capsys, tmp_path):
    refused(capsys, ["run", config(tmp_path), "--out", tmp_path / "run", "--seeds", "0"], "--seeds must be >= 1, got 0", tmp_path)


def test_checkpoint_labels_that_cannot_be_matched(capsys, tmp_path):
    """epochs 0: a checkpoint whose id2label names are not the task's is refused before anything is extracted."""
    from _checkpoints import save_checkpoint
    ckpt = save_checkpoint(tmp_path / "ckpt", {0: "toxic", 1: "clean"})
    capsys.readouterr()   # the test's own save progress bar
    text = TINY.replace("{name: t1, model: tiny, epochs: 1, lr: 1.0e-3, max_length: 32}", f"{{name: t1, model: '{ckpt}', epochs: 0}}")
    refused(capsys, ["finetune-teachers", config(tmp_path, text), "--out", tmp_path / "run"],
            "teacher t1 (" + ckpt + ") (id2label): class names ['toxic', 'clean'] do not match the task's labels", tmp_path)


# ---------------------------------------------------------------- teachers from files (kind: logits)

@pytest.fixture
def exported(tmp_path, capsys):
    """The tiny config's examples and fingerprints (mtkd export-data), and a valid .npy logits teacher for them."""
    assert main(["export-data", str(config(tmp_path)), "--out", str(tmp_path / "data")]) == 0
    fps = json.loads((tmp_path / "data" / "demo" / "fingerprints.json").read_text())
    (tmp_path / "ext").mkdir()
    for split, fp in fps["fingerprints"].items():
        np.save(tmp_path / "ext" / f"{split}.npy", np.zeros((fps["examples"][split], 2), dtype=np.float32))
        write(tmp_path / "ext" / f"{split}.json", json.dumps({"label_names": ["negative", "positive"], "kind": "logits",
                                                               "fingerprint": fp}))
    capsys.readouterr()
    return tmp_path


def with_file_teacher(files: dict, scores: str | None = None) -> str:
    data = yaml.safe_load(TINY)
    data["teachers"] = [{"name": "ext", "kind": "logits", "files": files, **({"scores": scores} if scores else {})}]
    return yaml.safe_dump(data, sort_keys=False)


def refused_file_teacher(capsys, root, phrase, scores=None, **files):
    files = {s: str(root / "ext" / f"{s}.npy") for s in ("train", "validation", "eval")} | {k: str(v) for k, v in files.items()}
    refused(capsys, ["extract-logits", config(root, with_file_teacher(files, scores), "ext.yaml"), "--out", root / "run"],
            phrase, root)


def test_logits_file_teacher_accepted(capsys, exported):
    """The fixture is valid: the refusals below are about what each case breaks."""
    files = {s: str(exported / "ext" / f"{s}.npy") for s in ("train", "validation", "eval")}
    ok(capsys, ["extract-logits", config(exported, with_file_teacher(files), "ext.yaml"), "--out", exported / "run"])


def test_logits_file_missing(capsys, exported):
    refused_file_teacher(capsys, exported, "teacher ext: eval scores file not found", eval=exported / "nope.npy")


def test_logits_file_without_sidecar(capsys, exported):
    (exported / "ext" / "eval.json").unlink()
    refused_file_teacher(capsys, exported, "teacher ext: sidecar not found")


def test_logits_file_of_the_wrong_shape(capsys, exported):
    np.save(exported / "ext" / "validation.npy", np.zeros((7, 2), dtype=np.float32))
    refused_file_teacher(capsys, exported, "does not match the dataset (20 examples, 2 classes)")


def test_logits_file_label_names_that_cannot_be_matched(capsys, exported):
    side = exported / "ext" / "train.json"
    side.write_text(side.read_text().replace('"negative", "positive"', '"LABEL_0", "LABEL_1"'))
    refused_file_teacher(capsys, exported, "class names ['LABEL_0', 'LABEL_1'] do not match the task's labels")


def test_logits_file_of_another_dataset(capsys, exported):
    """The fingerprint in the sidecar is not the split's: the scores belong to other examples."""
    side = exported / "ext" / "train.json"
    side.write_text(json.dumps({**json.loads(side.read_text()), "fingerprint": "0" * 64}))
    refused_file_teacher(capsys, exported, "train file " + str(exported / "ext" / "train.npy") + ": scores of another dataset (fingerprint 000000000000")


def test_logits_csv_missing_examples(capsys, exported):
    """Every example must be found by text; how many are missing is said."""
    lines = (exported / "data" / "demo" / "eval.csv").read_text().splitlines()
    rows = [lines[0] + ",Negative,Positive"] + [ln + ",0.5,0.5" for ln in lines[1:-3]]
    csv_file = write(exported / "ext" / "eval.csv", "\n".join(rows) + "\n")
    refused_file_teacher(capsys, exported, "eval file " + str(exported / "ext" / "eval.csv") + ": 3 of 200 eval examples not found by text", "probs", eval=csv_file)


def test_logits_csv_with_a_score_that_is_not_a_number(capsys, exported):
    csv_file = write(exported / "ext" / "eval.csv", "text,negative,positive\na,0.5,0.5\nb,high,low\n")
    refused_file_teacher(capsys, exported, "row 2 lacks a column or has a score that is not a number", "probs", eval=csv_file)


def test_logits_csv_without_scores_kind(capsys, exported):
    csv_file = write(exported / "ext" / "eval.csv", "text,negative,positive\na,0.5,0.5\n")
    refused_file_teacher(capsys, exported, "teacher ext: say scores: logits or scores: probs", eval=csv_file)


def test_logits_csv_probabilities_that_are_not(capsys, exported):
    lines = (exported / "data" / "demo" / "eval.csv").read_text().splitlines()
    rows = [lines[0] + ",negative,positive"] + [ln + ",2.0,-1.0" for ln in lines[1:]]
    csv_file = write(exported / "ext" / "eval.csv", "\n".join(rows) + "\n")
    refused_file_teacher(capsys, exported, "not probabilities: 200 rows outside [0, 1]", "probs", eval=csv_file)


@pytest.mark.parametrize("teacher, phrase", [
    ("{name: e, kind: logits}", "teachers.e: kind logits needs files"),
    ("{name: e, kind: logits, files: {train: a.npy, eval: b.npy}}", "teachers.e.files needs exactly the splits train, validation, eval; missing validation"),
    ("{name: e, kind: logits, files: {train: a, validation: a, eval: a, test: a}}", "unknown test"),
    ("{name: e, kind: logits, scores: odds, files: {train: a, validation: a, eval: a}}", "teachers.e.scores must be logits or probs"),
    ("{name: e, kind: logits, crossfit: 3, files: {train: a, validation: a, eval: a}}", "teachers.e.crossfit needs a teacher that is fitted"),
    ("{name: e, kind: logits, lr: 0.1, files: {train: a, validation: a, eval: a}}", "teacher 'e' (kind logits) does not use 'lr'"),
])
def test_bad_logits_teacher_config(capsys, tmp_path, teacher, phrase):
    refused_config(capsys, tmp_path, TINY, phrase, [f"teachers.1={teacher}"])


def test_logits_teacher_in_online_mode(capsys, tmp_path):
    refused_config(capsys, tmp_path, TINY, "a logits-file teacher has no model to run online",
                   ["teachers.1={name: e, kind: logits, files: {train: a, validation: a, eval: a}}", "distill.mode=online"])


def test_crossfit_with_more_folds_than_examples(capsys, tmp_path):
    text = TINY.replace("{name: tf, kind: tfidf}", "{name: tf, kind: tfidf, crossfit: 500}")
    refused_config(capsys, tmp_path, text, "teacher tf crossfit: 500 folds need at least 500 training examples, the task has 180")


# ---------------------------------------------------------------- data files

def file_task(tmp_path, train, eval_, suffix=".csv", **extra):
    tr = write(tmp_path / "inputs" / f"train{suffix}", train)
    ev = write(tmp_path / "inputs" / f"eval{suffix}", eval_)
    return tiny_with(name="mine", source="file", train_file=str(tr), eval_file=str(ev), **extra)


GOOD_CSV = "text,label\n" + "".join(f"sentence number {i},{'pos' if i % 2 else 'neg'}\n" for i in range(30))


@pytest.mark.parametrize("train,eval_,suffix,extra,phrase", [
    (GOOD_CSV, "", ".csv", {}, "data file is empty"),
    (GOOD_CSV, "text,label\n", ".csv", {}, "no examples in"),
    (GOOD_CSV, "sentence,label\nhi,pos\n", ".csv", {}, "missing column 'text'; found sentence, label"),
    (GOOD_CSV, "text\nhi\n", ".csv", {}, "missing column 'label'"),
    (GOOD_CSV, "text,label\nhi,maybe\n", ".csv", {}, "eval.csv: example 1: unknown label 'maybe'; expected one of neg, pos"),
    (GOOD_CSV, "text,label\nhi,\nho,\n", ".csv", {}, "example 1: no label (an unlabelled split"),
    (GOOD_CSV, "text,label\nhi,-1\n", ".csv", {}, "no label"),
    (GOOD_CSV.replace(",pos\n", ",neg\n"), "text,label\nhi,neg\n", ".csv", {}, "need at least 2 classes"),
    (GOOD_CSV, "text,label\nhi,pos\n", ".csv", {"text_columns": ["a", "b", "c"]}, "text_columns must name one or two columns"),
    (GOOD_CSV, "text,label\nhi,pos\n", ".csv", {"label_names": ["neg", "neg"]}, "label_names must be unique"),
    ('{"text": "a", "label": "pos"}\n[1, 2]\n', '{"text": "a", "label": "pos"}\n', ".jsonl", {},
     "train.jsonl:2: each line must be a JSON object"),
    ('{"text": "a", "label": "pos"}\n{"text": "b", "label": \n', '{"text": "a", "label": "pos"}\n', ".jsonl", {},
     "train.jsonl:2: not valid JSON"),
    ('{"text": "a", "label": "pos"}\n{"text": 5, "label": "neg"}\n', '{"text": "a", "label": "pos"}\n', ".jsonl", {},
     "example 2: text column(s) text must be strings"),
    ("text,label\ncaf\xe9,pos\n".encode("latin-1"), "text,label\nhi,pos\n", ".csv", {}, "not a UTF-8 text file"),
    ("text\tlabel\ncaf\xe9\tpos\n".encode("latin-1"), "text\tlabel\nhi\tpos\n", ".tsv", {}, "not a UTF-8 text file"),
    (GOOD_CSV, "text,label\nhi,pos\n", ".txt", {}, "unknown data file type '.txt'"),
    (GOOD_CSV, "text,label\nhi,pos\n", ".parquet", {}, "not a Parquet file"),
    ("text,text,label\na,b,pos\n", "text,label\nhi,pos\n", ".csv", {}, "column 'text' appears twice in the header"),
    (GOOD_CSV, "text,label\nhi,pos\n", ".csv", {"eval_fraction": 0.2}, "give eval_fraction or an eval file, not both"),
    (GOOD_CSV, "text,label\nhi,pos\n", ".csv", {"pos_label": "yes"}, "pos_label 'yes' is not a label; labels: neg, pos"),
    (GOOD_CSV, "text,label\nhi,pos\n", ".csv", {"pos_label": "maybe", "label_names": ["neg", "pos"]},
     "pos_label 'maybe' is not one of label_names neg, pos"),
    (GOOD_CSV, "text,label\nhi,pos\n", ".csv", {"metric": "f1"}, "binary F1 needs its positive class: set pos_label"),
    ('[{"text": "a", "label": "pos"}, {"text": "b"}]', '[{"text": "a", "label": "pos"}]', ".json", {},
     "train.json: item 2 has no 'label'"),
    (GOOD_CSV, "hi,pos\n", ".csv", {"header": False, "columns": ["text", "label"], "label_names": ["neg", "pos"]},
     "train.csv: example 1: unknown label 'label'; expected one of neg, pos"),   # header: false on a file with a header
])
def test_bad_data_file(capsys, tmp_path, train, eval_, suffix, extra, phrase):
    cfg = config(tmp_path, file_task(tmp_path, train, eval_, suffix, **extra))
    refused(capsys, ["run", cfg, "--out", tmp_path / "run"], phrase, tmp_path)


def test_group_too_large_for_validation(capsys, tmp_path):
    """Every example shares its group: no group fits in validation; refused, not a silent empty split."""
    train = "text,label,doc\n" + "".join(f"s{i},{'pos' if i % 2 else 'neg'},same\n" for i in range(40))
    cfg = config(tmp_path, file_task(tmp_path, train, "text,label\nhi,pos\n", group_column="doc"))
    refused(capsys, ["run", cfg, "--out", tmp_path / "run"], "no group of examples fits in a validation split", tmp_path)


def test_hub_dataset_offline(capsys, tmp_path, monkeypatch):
    import datasets

    def offline(*a, **k):
        raise ConnectionError("Couldn't reach the Hugging Face Hub")
    monkeypatch.setattr(datasets, "load_dataset", offline)
    cfg = config(tmp_path, tiny_with(name="news", source="hf", dataset="ag_news"))
    refused(capsys, ["run", cfg, "--out", tmp_path / "run"], "could not load ag_news from the Hugging Face hub", tmp_path)


def test_missing_data_file(capsys, tmp_path):
    cfg = config(tmp_path, tiny_with(name="mine", source="file", train_file=str(tmp_path / "no.csv"),
                                     eval_file=str(tmp_path / "no_eval.csv")))
    refused(capsys, ["run", cfg, "--out", tmp_path / "run"], "data file not found", tmp_path)


def test_file_source_without_files(capsys, tmp_path):
    refused(capsys, ["run", config(tmp_path, tiny_with(name="mine", source="file")), "--out", tmp_path / "run"],
            "source file needs train_file, and eval_file or eval_fraction", tmp_path)


def test_too_few_examples_after_filtering(capsys, tmp_path):
    cfg = config(tmp_path, tiny_with(name="demo", demo_size=200, max_train_examples=3))
    refused(capsys, ["run", cfg, "--out", tmp_path / "run"], "3 training examples are too few to carve a validation split",
            tmp_path)


def test_glue_dir_missing_files(capsys, tmp_path):
    cfg = config(tmp_path, tiny_with(name="sst2", glue_dir=str(tmp_path / "glue")))
    refused(capsys, ["run", cfg, "--out", tmp_path / "run"], "GLUE file not found", tmp_path)


def test_glue_tsv_with_only_broken_rows(capsys, tmp_path):
    write(tmp_path / "glue" / "SST-2" / "train.tsv", "sentence\tlabel\nonly-one-field\nanother\n")
    write(tmp_path / "glue" / "SST-2" / "dev.tsv", "sentence\tlabel\nfine\t1\n")
    cfg = config(tmp_path, tiny_with(name="sst2", glue_dir=str(tmp_path / "glue")))
    refused(capsys, ["run", cfg, "--out", tmp_path / "run"], "train.tsv (2 malformed row(s) skipped)", tmp_path)


def test_glue_tsv_wrong_columns(capsys, tmp_path):
    write(tmp_path / "glue" / "SST-2" / "train.tsv", "text\tgold\nhello\t1\n")
    cfg = config(tmp_path, tiny_with(name="sst2", glue_dir=str(tmp_path / "glue")))
    refused(capsys, ["run", cfg, "--out", tmp_path / "run"], "missing column(s) sentence, label; found text, gold", tmp_path)


def test_builtin_task_without_glue_data(capsys, tmp_path):
    cfg = config(tmp_path, tiny_with(name="demo", source="glue_dir", glue_dir=str(tmp_path)))
    refused(capsys, ["run", cfg, "--out", tmp_path / "run"], "task 'demo' has no GLUE data", tmp_path)


# ---------------------------------------------------------------- models and output directories

def test_model_path_does_not_exist(capsys, tmp_path):
    cfg = config(tmp_path, TINY.replace("model: tiny, epochs", "model: ./no/such/model, epochs"))
    refused(capsys, ["run", cfg, "--out", tmp_path / "run"], f"model path does not exist: {tmp_path / 'no/such/model'}", tmp_path)
    assert not (tmp_path / "run" / "demo" / "teachers" / "t1").exists()


def test_model_path_that_is_not_a_model(capsys, tmp_path):
    (tmp_path / "empty_model").mkdir()
    cfg = config(tmp_path, TINY.replace("model: tiny, epochs", f"model: {tmp_path / 'empty_model'}, epochs"))
    refused(capsys, ["run", cfg, "--out", tmp_path / "run"], "could not load tokenizer", tmp_path)


def test_output_under_a_regular_file(capsys, tmp_path):
    """An unwritable --out that is unwritable for root too: a path below a regular file."""
    write(tmp_path / "afile", "x")
    refused(capsys, ["run", config(tmp_path), "--out", tmp_path / "afile" / "sub"], "is not writable", tmp_path)


def test_output_is_a_regular_file(capsys, tmp_path):
    write(tmp_path / "afile", "x")
    refused(capsys, ["run", config(tmp_path), "--out", tmp_path / "afile"], "is not writable: File exists", tmp_path)
    assert (tmp_path / "afile").read_text() == "x"


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores directory permissions; "
                    "test_output_under_a_regular_file covers an unwritable --out for root")
def test_read_only_output_directory(capsys, tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        refused(capsys, ["run", config(tmp_path), "--out", ro / "run"], "is not writable", tmp_path)
        assert list(ro.iterdir()) == []
    finally:
        ro.chmod(0o755)


def test_full_output_device_mid_stage(capsys, tmp_path):
    """A write that fails half-way through a stage (as on a full disk): RLIMIT_FSIZE makes the
    kernel refuse any write past 4 KiB (EFBIG), so config.yaml and run.json (~1 KiB) are written
    and the data stage's train.jsonl (~14 KiB) fails inside its temporary folder."""
    out = tmp_path / "run"
    old_limit = resource.getrlimit(resource.RLIMIT_FSIZE)
    old_handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)   # the write fails instead of killing us
    resource.setrlimit(resource.RLIMIT_FSIZE, (4096, old_limit[1]))
    try:
        rc = main(["extract-logits", str(config(tmp_path)), "--out", str(out)])
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, old_limit)
        signal.signal(signal.SIGXFSZ, old_handler)
    _, err = capsys.readouterr()
    assert rc != 0 and err.count("\n") == 1 and err.startswith("mtkd: error: cannot write")
    assert "File too large" in err and "Traceback" not in err
    assert_clean(tmp_path)
    assert (out / "config.yaml").is_file() and not (out / "demo" / "data").exists()


def test_run_dir_holding_another_config(capsys, tmp_path):
    out = tmp_path / "run"
    write(out / "config.yaml", TINY.replace("name: tiny", "name: other"))
    err = refused(capsys, ["run", config(tmp_path), "--out", out], "holds a run of another config (name: recorded 'other'",
                  tmp_path)
    assert "use another --out or pass --recompute" in err


def test_run_dir_with_corrupt_config(capsys, tmp_path):
    write(tmp_path / "run" / "config.yaml", "name: [unclosed\n")
    refused(capsys, ["verify-logits", tmp_path / "run"], "invalid YAML", tmp_path)


# ---------------------------------------------------------------- cached logits

@pytest.fixture(scope="module")
def extracted(tmp_path_factory) -> Path:
    """One tiny extraction (demo task, teachers t1 and tf), made once; tests corrupt copies."""
    root = tmp_path_factory.mktemp("extracted")
    cfg = write(root / "cfg.yaml", TINY)
    assert main(["extract-logits", str(cfg), "--out", str(root / "run")]) == 0
    return root / "run"


@pytest.fixture
def run(extracted, tmp_path) -> Path:
    dst = tmp_path / "run"
    shutil.copytree(extracted, dst)
    return dst


def store(run: Path, teacher: str = "t1") -> Path:
    return run / "demo" / "logits" / teacher


def rewrite(run: Path, teacher: str, split: str, array: np.ndarray | bytes, **manifest_changes) -> None:
    """Replace one logit file and update its manifest consistently (sha256, shape), so the
    refusal under test is the content check, not the hash check."""
    folder = store(run, teacher)
    if isinstance(array, np.ndarray):
        buf = io.BytesIO()
        np.save(buf, array, allow_pickle=array.dtype == object)
        data = buf.getvalue()
    else:
        data = array
    (folder / f"{split}.npy").write_bytes(data)
    m = json.loads((folder / "manifest.json").read_text())
    m["outputs"][f"{split}.npy"] = hashlib.sha256(data).hexdigest()
    if isinstance(array, np.ndarray):
        m["splits"][split]["shape"] = list(array.shape)
    m.update(manifest_changes)
    (folder / "manifest.json").write_text(json.dumps(m))


def logits_of(run: Path, teacher: str = "t1", split: str = "validation") -> np.ndarray:
    return np.load(store(run, teacher) / f"{split}.npy")


def test_verify_logits_accepts_the_fixture(capsys, run):
    assert "all 6 logit files verified" in ok(capsys, ["verify-logits", run])


@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
def test_non_finite_logits_are_refused(capsys, run, value):
    a = logits_of(run)
    a[3, 1] = value
    rewrite(run, "t1", "validation", a)
    refused(capsys, ["verify-logits", run], "logits contain NaN or inf (1 values, first in example 3)", run)
    # the pipeline refuses them too, when the student reads them, and leaves no unfinished student
    refused(capsys, ["run", run], "logits contain NaN or inf", run)
    assert not (run / "demo" / "students" / "multi_average").exists()


def test_logits_with_the_wrong_number_of_rows(capsys, run):
    rewrite(run, "t1", "eval", logits_of(run, split="eval")[:-5])
    refused(capsys, ["verify-logits", run], "does not match the dataset (200 examples, 2 classes)", run)


def test_logits_shape_differs_from_manifest(capsys, run):
    a = logits_of(run, split="eval")
    rewrite(run, "t1", "eval", a)
    m = json.loads((store(run) / "manifest.json").read_text())
    m["splits"]["eval"]["shape"] = [199, 2]
    (store(run) / "manifest.json").write_text(json.dumps(m))
    refused(capsys, ["verify-logits", run], "differs from the manifest's [199, 2]", run)


def test_logits_that_are_not_2d_float(capsys, run):
    rewrite(run, "t1", "train", np.zeros(180, dtype=np.int64))
    refused(capsys, ["verify-logits", run], "logits must be a float array [N, C], got int64 [180]", run)


def test_teacher_with_a_different_number_of_classes(capsys, run):
    names = ["negative", "neutral", "positive"]
    for split in ("train", "validation", "eval"):
        a = logits_of(run, "tf", split)
        rewrite(run, "tf", split, np.concatenate([a, a[:, :1]], axis=1), label_names=names)
    refused(capsys, ["verify-logits", run], "logits have 3 classes ['negative', 'neutral', 'positive'], the task has 2", run)
    refused(capsys, ["run", run], "logits have 3 classes", run)


def test_logits_in_another_label_order(capsys, run):
    m = json.loads((store(run) / "manifest.json").read_text())
    m["label_names"] = ["positive", "negative"]
    (store(run) / "manifest.json").write_text(json.dumps(m))
    refused(capsys, ["verify-logits", run], "label order ['positive', 'negative'] differs from the task's", run)


def test_pickled_object_array_is_never_unpickled(capsys, run):
    rewrite(run, "t1", "eval", np.array([{"evil": 1}, None], dtype=object))
    refused(capsys, ["verify-logits", run], "not a valid .npy array (Object arrays cannot be loaded when allow_pickle=False)",
            run)


def test_logit_file_that_is_not_npy(capsys, run):
    rewrite(run, "t1", "eval", b"this is not an array")
    refused(capsys, ["verify-logits", run], "not a valid .npy array", run)


def test_manifest_pointing_outside_its_folder(capsys, run):
    m = json.loads((store(run) / "manifest.json").read_text())
    m["splits"]["eval"]["file"] = "../../../config.yaml"
    (store(run) / "manifest.json").write_text(json.dumps(m))
    refused(capsys, ["verify-logits", run], "names file '../../../config.yaml', expected 'eval.npy'", run)


def test_unreadable_logit_manifest(capsys, run):
    (store(run) / "manifest.json").write_text("{not json")
    refused(capsys, ["verify-logits", run], "unreadable manifest", run)
    refused(capsys, ["extract-logits", run], "unreadable manifest; pass --recompute to rebuild it", run)


def test_missing_logit_store(capsys, run):
    shutil.rmtree(store(run, "tf"))
    refused(capsys, ["verify-logits", run], "no finished logit store (manifest.json missing); run extraction first", run)


def test_missing_logit_file(capsys, run):
    (store(run) / "train.npy").unlink()
    refused(capsys, ["verify-logits", run], "train.npy: logit file missing", run)
    refused(capsys, ["extract-logits", run], "file listed in its manifest is missing; pass --recompute", run)


def test_tampered_logits_refused_then_recomputed(capsys, run):
    path = store(run) / "eval.npy"
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))
    refused(capsys, ["verify-logits", run], "eval.npy: file does not match the sha256 in its manifest (tampered or corrupt)", run)
    refused(capsys, ["extract-logits", run], "(tampered or corrupt); pass --recompute to rebuild it", run)
    refused(capsys, ["run", run], "pass --recompute to rebuild it", run)
    ok(capsys, ["extract-logits", run, "--recompute"])
    assert "all 6 logit files verified" in ok(capsys, ["verify-logits", run])
    assert_clean(run)


def test_dataset_changed_after_extraction(capsys, run):
    cfg = (run / "config.yaml").read_text()
    (run / "config.yaml").write_text(cfg.replace("demo_size: 200", "demo_size: 240"))
    refused(capsys, ["verify-logits", run], "was extracted from a different dataset (fingerprint", run)
    refused(capsys, ["extract-logits", run], "cached stage was built from other inputs (fingerprints.", run)


def test_analyze_before_evaluation(capsys, run):
    refused(capsys, ["analyze", run], "no evaluated task", run)
    assert not (run / "analysis").exists()


def test_report_before_evaluation(capsys, run):
    refused(capsys, ["report", run], "no evaluated task", run)
    assert not (run / "report.md").exists()
