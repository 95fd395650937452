"""Ten minutes to a shipped student: the README's quickstart as a script that runs.

    python docs/tutorial.py [--out DIR]        # default runs/tutorial; about 3 min on 2 CPU cores

A user's labelled CSV (`reviews.csv`: generated movie-review sentences, written out as anyone's data
would be), three teachers that know different things — the packaged MiniLM fine-tuned on it (a `model:`
alias), the scores of an outside "API" read from CSV files (`kind: logits`), TF-IDF — then `mtkd
headroom`, `mtkd run`, the report, `mtkd export` and `transformers.pipeline`. Every command goes
through `mtkd.cli.main` exactly as typed, in DIR, and prints what it prints. Rerunning reuses every
finished stage (mtkd caches them). tests/test_tutorial.py runs this file end to end.
"""
from __future__ import annotations

import argparse
import contextlib
import csv
import math
import os
import re
import shlex
import sys
from pathlib import Path

import yaml

from mtkd.cli import main as mtkd_cli
from mtkd.demo_data import NEGATIVE, POSITIVE, generate

ROWS = 1000          # the user's file: 1,000 labelled sentences
FAST = {             # smaller than init's defaults, so the tutorial runs in minutes on a laptop CPU
    "teachers": {"minilm": {"max_length": 32}},
    "student": {"max_length": 32},
    "distill": {"strategies": ["average", "weighted"]},
}
EXAMPLES = ["the acting was truly wonderful", "the plot was dull, and the ending was terrible"]


def run(command: str) -> None:
    """`$ mtkd ...` as a user types it, then its output; stops the tutorial on a non-zero exit."""
    print(f"\n$ {command}", flush=True)
    rc = mtkd_cli(shlex.split(command)[1:])
    sys.stdout.flush()
    if rc != 0:
        raise SystemExit(f"tutorial: `{command}` failed with exit code {rc}")


def write_user_csv(path: Path) -> None:
    """The user's data: one CSV with a header row, a text column and a label column."""
    texts, labels = generate(ROWS, seed=2024, split="eval")   # clean labels, the whole vocabulary
    with open(path, "w", encoding="utf-8", newline="") as f:
        w = csv.writer(f)
        w.writerow(["review", "sentiment"])
        w.writerows([t, "positive" if y else "negative"] for t, y in zip(texts, labels))


LEXICON = {w: 1.0 for w in POSITIVE} | {w: -1.0 for w in NEGATIVE}


def api_scores(text: str) -> tuple[float, float]:
    """A stand-in for a remote sentiment API: a lexicon that knows every adjective and that the last
    clause decides ("X, but Y"), but not negation. Returns (p_negative, p_positive)."""
    last = re.split(r", but |, | and ", text.lower())[-1]
    score = sum(LEXICON.get(w, 0.0) for w in re.findall(r"[a-z']+", last))
    p = 1.0 / (1.0 + math.exp(-1.5 * score))
    return 1.0 - p, p


def score_with_api(to_score: Path, out: Path) -> None:
    """What one does with `mtkd export-data`'s files: send each split's texts to the scorer, write its
    probabilities as one CSV per split (the text, then one column per label)."""
    out.mkdir(exist_ok=True)
    for split in ("train", "validation", "eval"):
        with open(to_score / f"{split}.csv", encoding="utf-8", newline="") as f:
            texts = [row["text"] for row in csv.DictReader(f)]
        with open(out / f"{split}.csv", "w", encoding="utf-8", newline="") as f:
            w = csv.writer(f)
            w.writerow(["text", "negative", "positive"])
            w.writerows([t, *(f"{p:.6f}" for p in api_scores(t))] for t in texts)
        print(f"scored {len(texts)} {split} texts -> {out / f'{split}.csv'}")


def add_api_teacher_and_shrink(config: Path) -> None:
    """Uncomment init's `kind: logits` teacher (what a user does in an editor), then apply FAST."""
    text = config.read_text(encoding="utf-8")
    text = text.replace("  # - {name: api, kind: logits", "  - {name: api, kind: logits")
    cfg = yaml.safe_load(text)
    for t in cfg["teachers"]:
        t.update(FAST["teachers"].get(t["name"], {}))
    cfg["student"].update(FAST["student"])
    cfg["distill"].update(FAST["distill"])
    config.write_text(yaml.safe_dump(cfg, sort_keys=False), encoding="utf-8")
    print(f"\n# {config}: the api teacher uncommented; tutorial sizes {FAST}")


def main(argv=None) -> list[dict]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default="runs/tutorial", help="working folder (default: runs/tutorial)")
    out = Path(ap.parse_args(argv).out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    os.chdir(out)
    print(f"# working in {out}")

    # 1. your data, and a starter config for it
    write_user_csv(Path("reviews.csv"))
    print(f"# reviews.csv: {ROWS} rows, columns review,sentiment")
    if not Path("mtkd.yaml").exists():
        run("mtkd init --data reviews.csv --out mtkd.yaml")
        # 2. a teacher that ran elsewhere: export the texts, have them scored, read the scores back
        run("mtkd export-data mtkd.yaml --out to_score")
        score_with_api(Path("to_score/reviews"), Path("api"))
        add_api_teacher_and_shrink(Path("mtkd.yaml"))
    # 3. what the teachers know together beyond the best one, before any student is trained
    run("mtkd headroom mtkd.yaml --out runs/reviews")
    # 4. teachers (cached from headroom), students, evaluation, analysis, report
    run("mtkd run mtkd.yaml --out runs/reviews")
    report = Path("runs/reviews/report.md").read_text(encoding="utf-8").splitlines()
    answer = next(line for line in report if line.startswith("**Answer.** "))
    print("\n# runs/reviews/report.md (and report.html), its answer:\n" + answer)
    # 5. ship the student the analysis selected, and use it without mtkd
    with contextlib.suppress(FileNotFoundError):
        import shutil
        shutil.rmtree("my_student")
    run("mtkd export runs/reviews --out my_student")
    import transformers

    import mtkd.pooled_model  # noqa: F401  (registers the mean-pooled student's head)
    clf = transformers.pipeline("text-classification", model="my_student", truncation=True)
    preds = clf(EXAMPLES)
    print("\n>>> clf = transformers.pipeline('text-classification', model='my_student', truncation=True)")
    for text, p in zip(EXAMPLES, preds):
        print(f">>> clf({text!r})\n[{{'label': {p['label']!r}, 'score': {p['score']:.2f}}}]")
    return preds


if __name__ == "__main__":
    main()
