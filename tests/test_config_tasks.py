"""Config parsing and validation, task loaders (GLUE TSV layouts, user files), metrics."""
from pathlib import Path

import numpy as np
import pytest

from mtkd.config import TaskConfig, dump_yaml, load_config
from mtkd.errors import MtkdError
from mtkd.tasks import REGISTRY, compute_metrics, load_task

ROOT = Path(__file__).resolve().parents[1]
GLUE = ROOT.parent / "shared" / "data" / "glue"


def write(p: Path, text: str) -> Path:
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(text, encoding="utf-8")
    return p


@pytest.mark.parametrize("name", sorted(p.name for p in (ROOT / "configs").glob("*.yaml")))
def test_every_shipped_config_validates(name):
    """Every config in configs/ loads and passes validation (a shipped config nobody ran yet included)."""
    cfg = load_config(ROOT / "configs" / name)
    assert cfg.tasks and cfg.teachers


def test_paper_config_parses_and_resolves():
    cfg = load_config(ROOT / "configs" / "paper.yaml")
    assert [t.name for t in cfg.tasks] == ["sst2", "mnli", "qqp", "mrpc"]
    assert [t.model for t in cfg.teachers] == ["bert-large-uncased", "roberta-large", "microsoft/deberta-base"]
    assert cfg.student.model == "distilbert-base-uncased" and cfg.student.layers is None
    assert (cfg.distill.temperature, cfg.distill.alpha) == (6.0, 0.7)
    assert cfg.distill.strategies == ["average", "weighted", "best_per_sample", "learned_gating"]
    assert all(t.trust_remote_code is False for t in cfg.teachers)


def test_resolved_config_round_trips(tmp_path):
    cfg = load_config(ROOT / "configs" / "sst2_cpu.yaml", ["distill.alpha=0.5", "tasks.0.max_train_examples=100"])
    assert cfg.distill.alpha == 0.5 and cfg.tasks[0].max_train_examples == 100
    assert load_config(None, ["student.lr=1e-4"]).student.lr == 1e-4    # YAML 1.1 reads 1e-4 as a string
    again = load_config(write(tmp_path / "config.yaml", dump_yaml(cfg)))
    assert again == cfg


@pytest.mark.parametrize("text,overrides,message", [
    ("distill: {temperature: 0}", [], "temperature must be > 0"),
    ("distill: {alpha: 1.5}", [], "alpha must be in [0, 1]"),
    ("distill: {strategies: [averge]}", [], "did you mean 'average'"),
    ("studnet: {epochs: 1}", [], "unknown key 'studnet' (did you mean 'student'?)"),
    ("student: {epocs: 1}", [], "unknown key 'student.epocs' (did you mean 'epochs'?)"),
    ("teachers: []", [], "'teachers' is empty"),
    ("teachers: [{name: a}, {name: a}]", [], "teacher names must be unique"),
    ("teachers: [{name: a, kind: svm}]", [], "unknown kind 'svm'"),
    ("student: {epochs: two}", [], "must be a number"),
    ("tasks: [{name: demo, source: web}]", [], "unknown source 'web'"),
    ("seed: 1\n  bad: [", [], "invalid YAML"),
    ("- 1\n- 2", [], "top level must be a mapping"),
    ("", ["distill.alpha"], "must look like key=value"),
    ("teachers: [{name: '../x'}]", [], "may only use letters"),
    ("teachers: [{name: bert}, {name: tf, kind: tfidf}]\ndistill: {single_teacher: [tf, bret]}", [],
     "distill.single_teacher names 'bret', which is not a teacher (did you mean 'bert'?)"),
])
def test_bad_configs_are_one_line_errors(tmp_path, text, overrides, message):
    with pytest.raises(MtkdError) as e:
        load_config(write(tmp_path / "c.yaml", text), overrides)
    assert message in str(e.value) and "\n" not in str(e.value)


def test_single_teacher_students_for_the_named_teachers_only(tmp_path):
    from mtkd.experiments import planned_students
    from mtkd.report.build import coverage_lines
    text = "teachers: [{name: a}, {name: b, kind: tfidf}, {name: c, kind: tfidf}]\ndistill: {strategies: [average]}"
    path = write(tmp_path / "c.yaml", text)
    methods = lambda over: [s.method for s in planned_students(load_config(path, over))]   # noqa: E731
    assert methods([]) == ["no_kd", "kd_a", "kd_b", "kd_c", "multi_average"]
    assert methods(["distill.single_teacher=[c, a]"]) == ["no_kd", "kd_a", "kd_c", "multi_average"]
    assert methods(["distill.single_teacher=false"]) == ["no_kd", "multi_average"]
    # the report's coverage expects the named single-teacher students only
    man = tmp_path / "demo" / "eval" / "manifest.json"
    man.parent.mkdir(parents=True)
    models = [{"method": t, "type": "teacher"} for t in "abc"] + [
        {"method": "no_kd", "type": "baseline"}, {"method": "kd_a", "type": "single", "teachers": ["a"]},
        {"method": "multi_average", "type": "multi", "strategy": "average"}]
    man.write_text(__import__("json").dumps({"task": "demo", "models": models}))
    config = {"teachers": [{"name": t} for t in "abc"], "distill": {"strategies": ["average"], "single_teacher": ["a"]}}
    assert not any("missing:" in line for line in coverage_lines(tmp_path, [man], config))
    config["distill"]["single_teacher"] = ["a", "c"]
    assert any("single-teacher student for c" in line and "for b" not in line
               for line in coverage_lines(tmp_path, [man], config))


def test_missing_config_file():
    with pytest.raises(MtkdError, match="config file not found"):
        load_config("/nonexistent/c.yaml")


def test_demo_task_is_deterministic_and_has_three_splits():
    a, b = load_task(TaskConfig(demo_size=400)), load_task(TaskConfig(demo_size=400))
    assert {k: len(v) for k, v in a.splits.items()} == {"train": 360, "validation": 40, "eval": 200}
    assert a.fingerprints() == b.fingerprints()
    assert set(a.splits["eval"].labels.tolist()) == {0, 1}


def test_validation_is_carved_from_train_without_overlap():
    d = load_task(TaskConfig(demo_size=500, max_train_examples=300, validation_fraction=0.2))
    assert len(d.splits["train"]) == 240 and len(d.splits["validation"]) == 60


def test_glue_tsv_layouts(tmp_path):
    g = tmp_path / "glue"
    write(g / "MRPC" / "train.tsv", "\ufeffQuality\t#1 ID\t#2 ID\t#1 String\t#2 String\n"
          + "".join(f"{i % 2}\t{i}\t{i + 1}\tA \" quoted {i}\tB {i}\n" for i in range(20)))
    write(g / "MRPC" / "dev.tsv", "\ufeffQuality\t#1 ID\t#2 ID\t#1 String\t#2 String\n1\t1\t2\tx\ty\n0\t3\t4\tz\tw\n")
    d = load_task(TaskConfig(name="mrpc", glue_dir=str(g)))
    assert d.splits["eval"].texts == [("x", "y"), ("z", "w")] and d.metric == "f1"
    assert d.metric_columns == ["mrpc_f1", "mrpc_acc"]
    assert any(t[0].startswith('A " quoted') for t in d.splits["train"].texts)
    write(g / "MNLI" / "train.tsv", "index\tsentence1\tsentence2\tgold_label\n"
          + "".join(f"{i}\tp{i}\th{i}\t{['entailment', 'neutral', 'contradiction'][i % 3]}\n" for i in range(30)))
    write(g / "MNLI" / "dev_matched.tsv", "index\tsentence1\tsentence2\tgold_label\n0\tp\th\tcontradiction\n")
    m = load_task(TaskConfig(name="mnli", glue_dir=str(g)))
    assert m.label_names == ("entailment", "neutral", "contradiction") and m.splits["eval"].labels.tolist() == [2]
    write(g / "CoLA" / "train.tsv", "".join(f"src\t{i % 2}\t*\tsentence {i}\n" for i in range(20)))
    write(g / "CoLA" / "dev.tsv", "src\t1\t\tgood one\n")
    c = load_task(TaskConfig(name="cola", glue_dir=str(g)))
    assert c.metric == "matthews" and c.splits["eval"].texts == [("good one",)]


def test_glue_tsv_errors(tmp_path):
    g = tmp_path / "glue"
    with pytest.raises(MtkdError, match="GLUE file not found"):
        load_task(TaskConfig(name="sst2", glue_dir=str(g)))
    write(g / "SST-2" / "train.tsv", "sentence\tlabel\n" + "ok\t1\n" * 20)
    write(g / "SST-2" / "dev.tsv", "sentence\tlabel\nfine\tmaybe\n")
    with pytest.raises(MtkdError, match="unknown label 'maybe'"):
        load_task(TaskConfig(name="sst2", glue_dir=str(g)))
    write(g / "SST-2" / "dev.tsv", "index\tsentence\n0\tno label here\n")
    with pytest.raises(MtkdError, match="missing column"):
        load_task(TaskConfig(name="sst2", glue_dir=str(g)))


def test_unknown_task_suggests():
    with pytest.raises(MtkdError, match="did you mean 'sst2'"):
        load_task(TaskConfig(name="sst3"))


def test_user_csv_and_jsonl(tmp_path):
    write(tmp_path / "train.csv", "review,stars\n" + "".join(f"text {i},{['bad', 'good', 'meh'][i % 3]}\n" for i in range(30)))
    write(tmp_path / "eval.jsonl", '{"review": "x", "stars": "good"}\n{"review": "y", "stars": "meh"}\n')
    d = load_task(TaskConfig(name="reviews", source="file", train_file=str(tmp_path / "train.csv"),
                             eval_file=str(tmp_path / "eval.jsonl"), text_columns=["review"], label_column="stars"))
    assert d.label_names == ("bad", "good", "meh") and d.splits["eval"].labels.tolist() == [1, 2]
    with pytest.raises(MtkdError, match="missing column 'body'"):
        load_task(TaskConfig(name="reviews", source="file", train_file=str(tmp_path / "train.csv"),
                             eval_file=str(tmp_path / "eval.jsonl"), text_columns=["body"], label_column="stars"))
    write(tmp_path / "empty.csv", "")
    with pytest.raises(MtkdError, match="empty"):
        load_task(TaskConfig(name="r", source="file", train_file=str(tmp_path / "empty.csv"),
                             eval_file=str(tmp_path / "eval.jsonl"), text_columns=["review"]))


def test_metrics_against_hand_values():
    y = [1, 1, 0, 0, 1]
    p = [1, 0, 0, 1, 1]
    m = compute_metrics(y, p, 2)
    # acc 3/5; precision 2/3, recall 2/3 -> F1 2/3; MCC = (2*1 - 1*1)/sqrt(3*3*2*2) = 1/6
    assert m["accuracy"] == pytest.approx(60.0)
    assert m["f1"] == pytest.approx(200 / 3)
    assert m["matthews"] == pytest.approx(100 / 6)


def test_registry_has_the_glue_tasks():
    assert {"sst2", "mnli", "qqp", "mrpc", "qnli", "rte", "cola"} <= set(REGISTRY)
    assert REGISTRY["qqp"].metric == "f1" and REGISTRY["cola"].metric == "matthews"


@pytest.mark.skipif(not GLUE.is_dir(), reason="real GLUE data not found at ../shared/data/glue")
def test_real_glue_files_load():
    for name, n_eval in [("sst2", 872), ("mrpc", 408), ("mnli", 9815), ("qqp", 5000)]:
        d = load_task(TaskConfig(name=name, glue_dir=str(GLUE), max_train_examples=500))
        assert len(d.splits["eval"]) == n_eval
        assert len(set(d.splits["eval"].labels.tolist())) == d.num_labels


def test_hf_loader_maps_glue_columns(monkeypatch):
    """The real `datasets` code path, offline: load_dataset is replaced by real Dataset objects in
    the hub's glue/mnli layout (premise, hypothesis, ClassLabel label)."""
    import datasets

    names = ["entailment", "neutral", "contradiction"]
    feats = datasets.Features({"premise": datasets.Value("string"), "hypothesis": datasets.Value("string"),
                               "label": datasets.ClassLabel(names=names), "idx": datasets.Value("int32")})

    def rows(n):
        return {"premise": [f"p{i}" for i in range(n)], "hypothesis": [f"h{i}" for i in range(n)],
                "label": [i % 3 for i in range(n)], "idx": list(range(n))}
    calls = []

    def fake_load_dataset(path, name):
        calls.append((path, name))
        return datasets.DatasetDict({"train": datasets.Dataset.from_dict(rows(30), features=feats),
                                     "validation_matched": datasets.Dataset.from_dict(rows(6), features=feats)})
    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    d = load_task(TaskConfig(name="mnli", source="hf"))
    assert calls == [("glue", "mnli")]
    assert d.label_names == tuple(names)
    assert d.splits["eval"].texts[:2] == [("p0", "h0"), ("p1", "h1")]
    assert d.splits["eval"].labels.tolist() == [0, 1, 2, 0, 1, 2]


@pytest.mark.parametrize("task,shown", [(TaskConfig(name="sst2", source="hf"), "could not load glue/sst2"),
                                        (TaskConfig(name="news", dataset="ag_news"),
                                         "could not load ag_news from the Hugging Face hub")])
def test_hf_loader_offline_is_one_line(monkeypatch, task, shown):
    import datasets

    def offline(*a, **k):
        raise ConnectionError("Couldn't reach the Hugging Face Hub\nmore lines")
    monkeypatch.setattr(datasets, "load_dataset", offline)
    with pytest.raises(MtkdError) as e:
        load_task(task)
    assert shown in str(e.value) and "\n" not in str(e.value)


def _news_dataset():
    """A real DatasetDict in ag_news' layout: text, ClassLabel label whose names are not alphabetical."""
    import datasets
    names = ["World", "Sports", "Business", "Sci/Tech"]
    feats = datasets.Features({"text": datasets.Value("string"), "label": datasets.ClassLabel(names=names)})

    def rows(n, off):
        return {"text": [f'"news" {i} \\ NA' for i in range(off, off + n)], "label": [i % 4 for i in range(n)]}
    return names, datasets.DatasetDict({"train": datasets.Dataset.from_dict(rows(80, 0), features=feats),
                                        "test": datasets.Dataset.from_dict(rows(12, 1000), features=feats)})


def test_any_hub_dataset_by_name(monkeypatch):
    """`source: hf` + `dataset:` names any dataset; label names come from its ClassLabel feature in the
    dataset's order; with no validation split the test split is eval."""
    import datasets
    names, dd = _news_dataset()
    calls = []
    monkeypatch.setattr(datasets, "load_dataset", lambda path, name=None: calls.append((path, name)) or dd)
    d = load_task(TaskConfig(name="news", source="hf", dataset="ag_news"))
    assert calls == [("ag_news", None)]
    assert d.label_names == tuple(names)
    assert d.splits["eval"].texts == [(t,) for t in dd["test"]["text"]]
    assert d.splits["eval"].labels.tolist() == list(dd["test"]["label"])
    with pytest.raises(MtkdError, match="has no split 'dev'; splits: train, test"):
        load_task(TaskConfig(name="news", dataset="ag_news", eval_split="dev"))
    with pytest.raises(MtkdError, match="has no column 'body'"):
        load_task(TaskConfig(name="news", dataset="ag_news", text_columns=["body"]))


def test_local_dataset_folder_offline(tmp_path):
    """A dataset saved with save_to_disk, loaded for real (no hub), and a folder of data files; a
    relative `dataset:` path in a config resolves against the config's folder."""
    names, dd = _news_dataset()
    dd.save_to_disk(str(tmp_path / "data" / "news"))
    write(tmp_path / "cfg" / "c.yaml", "tasks: [{name: news, source: hf, dataset: ../data/news}]\n")
    cfg = load_config(tmp_path / "cfg" / "c.yaml")
    assert cfg.tasks[0].dataset == str(tmp_path / "data" / "news")
    d = load_task(cfg.tasks[0])
    assert d.label_names == tuple(names) and len(d.splits["eval"]) == 12
    assert d.splits["eval"].texts[0] == ('"news" 1000 \\ NA',)
    one = dd["train"]   # a single saved Dataset: eval carved with eval_fraction
    one.save_to_disk(str(tmp_path / "one"))
    d1 = load_task(TaskConfig(name="one", source="hf", dataset=str(tmp_path / "one"), eval_fraction=0.25))
    assert len(d1.splits["eval"]) == 20 and sorted(np.bincount(d1.splits["eval"].labels)) == [5, 5, 5, 5]



def test_relative_paths_resolve_against_the_config_and_travel_with_the_run(tmp_path, monkeypatch):
    """Guards: a relative data path was read against the working directory, so `mtkd sweep RUN` failed
    from any other folder. Now it is relative to the config file; RUN/config.yaml stores it relative to
    RUN, and the same run loads identically from anywhere."""
    from mtkd.config import dump_yaml
    write(tmp_path / "proj" / "data" / "tr.csv", "text,label\n" + "".join(f"t{i},{i % 2}\n" for i in range(40)))
    write(tmp_path / "proj" / "configs" / "c.yaml",
          "tasks: [{name: mine, train_file: ../data/tr.csv, eval_fraction: 0.2}]\n")
    monkeypatch.chdir(tmp_path)
    cfg = load_config(tmp_path / "proj" / "configs" / "c.yaml")
    assert cfg.tasks[0].train_file == str(tmp_path / "proj" / "data" / "tr.csv")
    run = tmp_path / "proj" / "runs" / "r1"
    saved = write(run / "config.yaml", dump_yaml(cfg, run))
    assert "train_file: ../../data/tr.csv" in saved.read_text()
    monkeypatch.chdir(tmp_path / "proj" / "data")
    again = load_config(saved)
    assert again == cfg and load_task(again.tasks[0]).fingerprints() == load_task(cfg.tasks[0]).fingerprints()
    over = load_config(tmp_path / "proj" / "configs" / "c.yaml", ["tasks.0.train_file=tr.csv"])   # cwd-relative
    assert over.tasks[0].train_file == str(tmp_path / "proj" / "data" / "tr.csv")
