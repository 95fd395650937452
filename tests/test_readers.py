"""User data files are read without altering a byte: every text and label comes back exactly as
written, in every format, with quote characters, backslashes, empty cells, "NA"/"null", a BOM,
header-less layouts and tabs inside quoted CSV fields; rows that cannot be parsed are dropped and
named in one warning line."""
import csv
import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from mtkd.config import TaskConfig
from mtkd.errors import MtkdError
from mtkd.readers import read_table
from mtkd.tasks import load_task

# Texts a naive reader alters: quotes (a TSV cell starting with " swallowed the next fields in the old
# reader: GLUE RTE), backslashes, NaN-looking cells, empty cells, spaces, non-ASCII, a lone quote.
TEXTS = ['"Quoted" start, then more', 'it\'s a "so-called" \\ backslash \\n not a newline', "NA", "null", "",
         "  padded  ", "naïve café — ünïcode ✓", 'a lone " quote', "None", "nan", "#N/A", "1.0", "007", "TRUE",
         'ends with a quote"', "comma, inside", "'single'"]
LABELS = ["pos", "neg"] * (len(TEXTS) // 2) + ["pos"] * (len(TEXTS) % 2)
CSV_ONLY = ["tab\tinside a quoted field", "line\nbreak inside", 'doubled "" quotes']


def write_tsv(path, rows, header=("text", "label"), bom=False):
    lines = (["\t".join(header)] if header else []) + ["\t".join(r) for r in rows]
    path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + ("\n".join(lines) + "\n").encode("utf-8"))
    return path


def write_csv(path, rows, header=("text", "label"), bom=False):
    with open(path, "w", encoding="utf-8-sig" if bom else "utf-8", newline="") as f:
        w = csv.writer(f)
        if header:
            w.writerow(header)
        w.writerows(rows)
    return path


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps({"text": t, "label": y}, ensure_ascii=False) + "\n" for t, y in rows), encoding="utf-8")
    return path


def write_json(path, rows):
    path.write_text(json.dumps([{"text": t, "label": y} for t, y in rows], ensure_ascii=False, indent=1), encoding="utf-8")
    return path


def write_parquet(path, rows):
    pq.write_table(pa.table({"text": [t for t, _ in rows], "label": [y for _, y in rows]}), path)
    return path


@pytest.mark.parametrize("fmt,extra", [("tsv", []), ("csv", CSV_ONLY), ("jsonl", CSV_ONLY), ("json", CSV_ONLY),
                                       ("parquet", CSV_ONLY)])
def test_every_cell_comes_back_byte_for_byte(tmp_path, fmt, extra):
    """Guards: no quoting in TSV, standard quoting in CSV, no NaN/number coercion, no stripping."""
    rows = list(zip(TEXTS + extra, LABELS + ["neg"] * len(extra)))
    writer = {"tsv": write_tsv, "csv": write_csv, "jsonl": write_jsonl, "json": write_json, "parquet": write_parquet}[fmt]
    table = read_table(writer(tmp_path / f"data.{fmt}", rows), ["text", "label"])
    assert table.columns["text"] == [t for t, _ in rows]
    assert table.columns["label"] == [y for _, y in rows]
    assert table.dropped == []


@pytest.mark.parametrize("fmt", ["tsv", "csv"])
def test_bom_and_header_less_layout(tmp_path, fmt):
    """A BOM is not part of the first header name (or of the first text, header-less); `columns` names
    a header-less file's columns in order, and its first row is data."""
    rows = list(zip(TEXTS, LABELS))
    write = write_tsv if fmt == "tsv" else write_csv
    with_header = read_table(write(tmp_path / f"h.{fmt}", rows, bom=True), ["text", "label"])
    assert with_header.columns["text"] == TEXTS
    flipped = [(y, t) for t, y in rows]   # AG News as distributed: label first, no header
    bare = read_table(write(tmp_path / f"n.{fmt}", flipped, header=None, bom=True), ["text", "label"],
                      header=False, names=["label", "text"])
    assert bare.columns["text"] == TEXTS and bare.columns["label"] == LABELS


def test_unparseable_rows_are_dropped_and_named(tmp_path, capsys):
    """Guards: a TSV row with too many or too few fields is neither merged nor padded, and is counted
    and named (its line) in one warning line."""
    path = tmp_path / "t.tsv"
    path.write_text("text\tlabel\ngood one\tpos\ntoo\tmany\tfields\nlonely\n\nfine\tneg\n", encoding="utf-8")
    table = read_table(path, ["text", "label"])
    assert table.columns == {"text": ["good one", "fine"], "label": ["pos", "neg"]}
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "skipped 3 row(s)" in err
    assert "line 3 has 3 field(s), expected 2" in err and "line 4 has 1 field(s)" in err and "is empty" in err


def test_user_task_texts_and_labels_unchanged_through_load_task(tmp_path):
    """The whole loader (sampling, carve): train + validation hold exactly the written rows, eval is the
    eval file in order; label names keep the order given, and pos_label is the second of them."""
    rows = [(f"{t} #{i}", LABELS[i % len(LABELS)]) for i in range(6) for t in TEXTS]
    write_tsv(tmp_path / "train.tsv", rows)
    write_csv(tmp_path / "eval.csv", list(zip(TEXTS + CSV_ONLY, LABELS + ["neg"] * 3)))
    d = load_task(TaskConfig(name="mine", train_file=str(tmp_path / "train.tsv"), eval_file=str(tmp_path / "eval.csv"),
                             label_names=["pos", "neg"], metric="f1"))
    names = d.label_names
    assert names == ("pos", "neg") and d.pos_label == 1
    got = [(t[0], names[y]) for s in ("train", "validation") for t, y in zip(d.splits[s].texts, d.splits[s].labels)]
    assert sorted(got) == sorted(rows)
    ev = d.splits["eval"]
    assert [(t[0], names[y]) for t, y in zip(ev.texts, ev.labels)] == list(zip(TEXTS + CSV_ONLY, LABELS + ["neg"] * 3))


def test_sentence_pairs_from_jsonl_and_parquet(tmp_path):
    pairs = [{"a": f'"q{i}" \\ x', "b": "" if i % 5 == 0 else f"NA {i}", "y": i % 3} for i in range(40)]
    (tmp_path / "tr.jsonl").write_text("".join(json.dumps(p) + "\n" for p in pairs), encoding="utf-8")
    pq.write_table(pa.Table.from_pylist(pairs[:9]), tmp_path / "ev.parquet")
    d = load_task(TaskConfig(name="pairs", train_file=str(tmp_path / "tr.jsonl"), eval_file=str(tmp_path / "ev.parquet"),
                             text_columns=["a", "b"], label_column="y"))
    assert d.label_names == ("0", "1", "2")   # integer labels: numeric order
    assert d.splits["eval"].texts == [(p["a"], p["b"]) for p in pairs[:9]]
    assert d.splits["eval"].labels.tolist() == [p["y"] for p in pairs[:9]]


def test_eval_fraction_carves_a_stratified_deterministic_eval(tmp_path):
    """One labelled file (MR/CR/SUBJ style): eval carved by label share, the same every time, disjoint."""
    rows = [(f"sentence {i}", "pos" if i < 300 else "neg") for i in range(400)]   # sorted by class
    write_csv(tmp_path / "all.csv", rows)
    cfg = TaskConfig(name="one", train_file=str(tmp_path / "all.csv"), eval_fraction=0.25, label_names=["neg", "pos"])
    a, b = load_task(cfg), load_task(cfg)
    ev = a.splits["eval"]
    assert len(ev) == 100 and np.bincount(ev.labels).tolist() == [25, 75]
    assert a.fingerprints() == b.fingerprints()
    seen = [t for s in a.splits.values() for t in s.texts]
    assert sorted(seen) == sorted((t,) for t, _ in rows)


def test_max_examples_are_stratified_samples_not_the_first_rows(tmp_path):
    """Guards: max_eval_examples on a file sorted by class used to keep one class only."""
    rows = [(f"s{i}", "a" if i < 500 else "b") for i in range(1000)]
    write_csv(tmp_path / "tr.csv", rows)
    write_csv(tmp_path / "ev.csv", rows)
    d = load_task(TaskConfig(name="s", train_file=str(tmp_path / "tr.csv"), eval_file=str(tmp_path / "ev.csv"),
                             max_train_examples=100, max_eval_examples=50))
    assert np.bincount(d.splits["eval"].labels).tolist() == [25, 25]
    assert d.splits["eval"].texts != [(f"s{i}",) for i in range(50)]
    train = np.concatenate([d.splits["train"].labels, d.splits["validation"].labels])
    assert np.bincount(train).tolist() == [50, 50]


def test_pos_label_drives_binary_f1(tmp_path):
    """Guards: F1 of a user task scores the positive class it names, not whichever label sorts second."""
    rows = [(f"q{i}", "not_duplicate" if i % 3 else "duplicate") for i in range(60)]
    write_csv(tmp_path / "tr.csv", rows)
    common = dict(name="dup", train_file=str(tmp_path / "tr.csv"), eval_file=str(tmp_path / "tr.csv"), metric="f1")
    with pytest.raises(MtkdError, match="binary F1 needs its positive class"):
        load_task(TaskConfig(**common))
    d = load_task(TaskConfig(**common, pos_label="duplicate"))
    assert d.label_names == ("duplicate", "not_duplicate") and d.pos_label == 0
    d2 = load_task(TaskConfig(**common, label_names=["not_duplicate", "duplicate"]))
    assert d2.pos_label == 1
    from mtkd.tasks import compute_metrics
    y, p = [0, 0, 1, 1, 1], [0, 1, 1, 1, 0]   # class 0: precision 1/2, recall 1/2 -> F1 50; class 1: 2/3 -> 66.7
    assert compute_metrics(y, p, 2, pos_label=0)["f1"] == pytest.approx(50.0)
    assert compute_metrics(y, p, 2, pos_label=1)["f1"] == pytest.approx(200 / 3)
    from mtkd.analysis import stats   # the bootstrap's metric (significance.csv) scores the same class
    assert stats.metric_from_confusion(stats.confusion(np.array(y), np.array(p), 2), "f1", pos_label=0) == pytest.approx(50.0)
