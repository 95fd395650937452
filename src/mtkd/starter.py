"""`mtkd init --data FILE`: a commented starter config for a user's labelled file. The header (or a
JSON file's keys) is read to guess the text column(s) and the label column; the label values give the
class names. Every problem is one line (MtkdError)."""
from __future__ import annotations

import os
import re
from pathlib import Path

from .errors import MtkdError
from .readers import read_table

TEXT_NAMES = ("text", "sentence", "review", "content", "body", "comment", "tweet", "message", "document",
              "utterance", "question", "query", "title", "description", "abstract", "headline", "summary")
PAIR_NAMES = (("sentence1", "sentence2"), ("text_a", "text_b"), ("text1", "text2"), ("premise", "hypothesis"),
              ("question1", "question2"), ("question", "sentence"), ("query", "passage"), ("sentence_a", "sentence_b"))
LABEL_NAMES = ("label", "labels", "class", "category", "sentiment", "target", "y", "intent", "tag", "gold",
               "gold_label", "polarity", "rating", "stars", "topic", "emotion")
MAX_CLASSES = 100


def _columns(path: Path) -> list[str]:
    """Every column name of the file, in order (CSV/TSV header, JSON keys of the first row, Parquet schema)."""
    from .readers import file_format
    fmt = file_format(path)
    if fmt in ("csv", "tsv"):
        from .readers import _header
        return _header(path, fmt)
    if fmt == "parquet":
        import pyarrow.parquet as pq
        try:
            return list(pq.read_schema(path).names)
        except Exception as e:
            raise MtkdError(f"{path}: not a Parquet file ({str(e).splitlines()[0]})") from None
    return _json_keys(path)


def _json_keys(path: Path) -> list[str]:
    import json
    text = path.read_text(encoding="utf-8-sig").lstrip()
    try:
        first = json.loads(text)[0] if text.startswith("[") else json.loads(text.splitlines()[0])
    except (ValueError, IndexError):
        raise MtkdError(f"{path}: not valid JSON / JSON Lines") from None
    if not isinstance(first, dict):
        raise MtkdError(f"{path}: each row must be a JSON object")
    return list(first)


def _by_name(columns: list[str], names) -> str | None:
    lower = {c.lower(): c for c in columns}
    return next((lower[n] for n in names if n in lower), None)


def guess(path) -> dict:
    """{'text_columns': [...], 'label_column': str, 'label_names': [...], 'rows': n} for the file at `path`."""
    path = Path(path)
    columns = _columns(path)
    if len(columns) < 2:
        raise MtkdError(f"{path}: needs a header row with at least a text column and a label column; "
                        f"found {', '.join(map(repr, columns)) or 'no columns'}")
    cols = read_table(path, columns).columns
    rows = len(next(iter(cols.values())))
    distinct = {c: len(set(map(str, v))) for c, v in cols.items()}
    label = _by_name(columns, LABEL_NAMES)
    if label is None:   # the column with the fewest distinct values (at least 2, at most MAX_CLASSES)
        few = [c for c in columns if 2 <= distinct[c] <= min(MAX_CLASSES, max(2, rows // 2))]
        label = min(few, key=lambda c: (distinct[c], columns.index(c)), default=None)
    if label is None:
        raise MtkdError(f"{path}: no column looks like labels (a few distinct values); name it 'label' "
                        f"or set label_column in the config. Columns: {', '.join(columns)}")
    rest = [c for c in columns if c != label]
    lower = {c.lower(): c for c in rest}
    pair = next(([lower[a], lower[b]] for a, b in PAIR_NAMES if a in lower and b in lower), None)
    named = _by_name(rest, TEXT_NAMES)
    if pair:
        text = pair
    elif named:
        text = [named]
    else:   # the column with the longest texts on average
        mean_len = {c: sum(len(str(x)) for x in cols[c]) / max(1, rows) for c in rest}
        text = [max(rest, key=lambda c: (mean_len[c], -columns.index(c)))]
    values = list(dict.fromkeys(str(x) for x in cols[label] if str(x) != ""))
    if len(values) < 2:
        raise MtkdError(f"{path}: column '{label}' holds {len(values)} distinct label(s); a classifier needs at least 2")
    if len(values) > MAX_CLASSES:
        raise MtkdError(f"{path}: column '{label}' holds {len(values)} distinct values, more than {MAX_CLASSES} "
                        f"classes; is it the label column? Columns: {', '.join(columns)}")
    names = sorted(values, key=int) if all(v.lstrip("-").isdigit() for v in values) else sorted(values)
    counts = {n: sum(1 for x in cols[label] if str(x) == n) for n in names}
    return {"text_columns": text, "label_column": label, "label_names": names, "rows": rows, "counts": counts,
            "columns": columns}


def _flow(items) -> str:
    """A YAML flow list (strings quoted only where YAML needs it: '1', 'yes', 'a: b')."""
    import yaml
    return yaml.safe_dump(list(items), default_flow_style=True, allow_unicode=True, width=10**6).strip()


def _scalar(x: str) -> str:
    return _flow([x])[1:-1]


def starter_config(data, out) -> tuple[str, dict]:
    """The commented YAML for `data`, to be written at `out` (paths relative to its folder), and the guess."""
    data, out = Path(data), Path(out)
    g = guess(data)
    rel = os.path.relpath(data.resolve(), out.resolve().parent)
    name = re.sub(r"[^A-Za-z0-9_-]+", "_", data.stem).strip("_") or "task"
    pair = len(g["text_columns"]) == 2
    classes = ", ".join(f"{n} {c:,}" for n, c in g["counts"].items())
    lines = [
        f"# mtkd starter config for {data.name} ({g['rows']:,} rows; {classes}), written by `mtkd init`.",
        "# Every key is optional; all keys and their defaults: docs/reference/config.md.",
        "# Next: mtkd headroom THIS_FILE   (what the teachers know together beyond the best one)",
        "#       mtkd run THIS_FILE        (teachers, students, evaluation, report)",
        f"name: {name}",
        "seed: 42",
        "tasks:",
        f"  - name: {name}",
        f"    train_file: {_scalar(rel)}              # relative to this file's folder",
        "    eval_fraction: 0.2            # eval carved from the file (by label, group-aware); or eval_file: PATH",
        "    validation_fraction: 0.1      # carved from the rest: selection, fusion weights, calibration",
        f"    text_columns: {_flow(g['text_columns'])}" + ("   # a sentence pair" if pair else ""),
        f"    label_column: {_scalar(g['label_column'])}",
        f"    label_names: {_flow(g['label_names'])}   # class order; binary F1 scores the second (pos_label)",
        "    # metric: f1                  # accuracy (default) | f1 | matthews",
        "    # transfer_file: unlabelled.csv   # more text without labels: the teachers label it for the students",
        "teachers:                         # `mtkd list teachers`; docs/teachers.md",
        "  # a pretrained transformer fine-tuned on your train split (minilm: the packaged all-MiniLM-L6-v2;",
        "  # or any Hugging Face hub id or local checkpoint folder)",
        "  - {name: minilm, model: minilm, epochs: 3, lr: 1.0e-4}",
        "  # word n-grams + logistic regression: fitted in seconds, knows other things than a transformer",
        "  - {name: tfidf, kind: tfidf}",
        "  # a checkpoint already fine-tuned for these labels, used as it is (its id2label names your classes):",
        "  # - {name: hub, model: some-org/some-classifier, epochs: 0}",
        "  # another model's or an API's scores, one file per split (the texts to score: mtkd export-data THIS_FILE --out to_score):",
        "  # - {name: api, kind: logits, scores: probs, files: {train: api/train.csv, validation: api/validation.csv, eval: api/eval.csv}}",
        "student: {model: minilm, layers: 2}   # the packaged MiniLM's first 2 layers; epochs 4, lr 4e-4 by default",
        "distill:",
        "  temperature: 6.0",
        "  alpha: 0.7                      # weight of the KD term (1 - alpha: the gold labels)",
        "  strategies: [average, weighted, best_per_sample, learned_gating]   # `mtkd list strategies`",
    ]
    return "\n".join(lines) + "\n", g | {"name": name, "path": str(data)}


def init(data, out, force: bool = False) -> dict:
    """Write the starter config for `data` at `out`; refuses to overwrite unless `force`."""
    out = Path(out)
    if out.exists() and not force:
        raise MtkdError(f"{out} exists; choose another --out or pass --force to overwrite it")
    text, g = starter_config(data, out)
    from .config import load_config
    from .io import atomic_write_text
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out, text)
    try:
        load_config(out)   # what init writes must load
    except MtkdError:
        out.unlink()
        raise
    return g
