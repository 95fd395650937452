"""Non-transformer teachers. TfidfTeacher: word n-gram TF-IDF + logistic regression; its logits
are the log-probabilities, so softmax(logits) = its probabilities. Saved as JSON + .npy (no pickle)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression

from ..config import TeacherConfig
from ..io import atomic_write_text, load_npy, save_npy


def _join(texts):
    return [" [SEP] ".join(t) for t in texts]


class TfidfTeacher:
    def __init__(self, cfg: TeacherConfig, label_names, seed: int):
        self.cfg, self.label_names, self.seed = cfg, tuple(label_names), seed
        self.vectorizer = TfidfVectorizer(ngram_range=(1, cfg.ngram_max), sublinear_tf=True, lowercase=True)
        self.clf = None

    def fit(self, train_split, validation, work_dir: Path) -> "TfidfTeacher":
        x = self.vectorizer.fit_transform(_join(train_split.texts))
        self.clf = LogisticRegression(C=self.cfg.C, max_iter=2000, random_state=self.seed)
        self.clf.fit(x, train_split.labels)
        return self

    def logits(self, texts) -> np.ndarray:
        n = len(self.label_names)
        out = np.full((len(texts), n), -30.0, dtype=np.float32)   # classes never seen in train: ~0 probability
        if texts:
            logp = self.clf.predict_log_proba(self.vectorizer.transform(_join(texts)))
            out[:, self.clf.classes_] = np.maximum(logp, -30.0)
        return out

    def save(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        vocab = {k: int(v) for k, v in self.vectorizer.vocabulary_.items()}
        atomic_write_text(folder / "vocabulary.json", json.dumps(vocab, ensure_ascii=False))
        save_npy(folder / "idf.npy", self.vectorizer.idf_)
        save_npy(folder / "coef.npy", self.clf.coef_)
        save_npy(folder / "intercept.npy", self.clf.intercept_)
        save_npy(folder / "classes.npy", self.clf.classes_)

    def load(self, folder: Path) -> "TfidfTeacher":
        vocab = json.loads((folder / "vocabulary.json").read_text(encoding="utf-8"))
        self.vectorizer.vocabulary_ = vocab
        self.vectorizer.idf_ = load_npy(folder / "idf.npy")
        self.clf = LogisticRegression()
        self.clf.coef_ = load_npy(folder / "coef.npy")
        self.clf.intercept_ = load_npy(folder / "intercept.npy")
        self.clf.classes_ = load_npy(folder / "classes.npy")
        return self
