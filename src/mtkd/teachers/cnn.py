"""CnnTeacher: a word-level convolutional classifier trained from scratch (Kim, 2014, "Convolutional
Neural Networks for Sentence Classification"): embeddings -> 1-D convolutions of widths 3, 4, 5 ->
ReLU -> max over time -> dropout -> linear. Its vocabulary is built from the training split
(lower-cased word and punctuation tokens seen >= min_count times); a sentence pair is one sequence
`a [SEP] b`. Trained with the one training loop (train.py: AdamW, linear decay, seeded, checkpointed
per epoch, resumable). Saved as model.safetensors + vocab.json (no pickle)."""
from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch
import torch.nn as nn
from safetensors.torch import load_model, save_model

from ..config import TeacherConfig
from ..io import atomic_write_json
from ..losses import kd_loss
from ..models import Encoded
from ..train import TrainSpec, predict, train

PAD, UNK, SEP = "[PAD]", "[UNK]", "[SEP]"
KERNELS = (3, 4, 5)
DROPOUT = 0.5
WEIGHT_DECAY = 0.01
_TOKEN = re.compile(r"\w+(?:'\w+)?|[^\w\s]")


def tokenize(text: str) -> list[str]:
    return _TOKEN.findall(text.lower())


def truncate_pair(a: list[str], b: list[str], max_length: int) -> tuple[list[str], list[str]]:
    """Drop tokens from the end of the longer part until `a [SEP] b` fits (HF's longest_first)."""
    a, b = list(a), list(b)
    while a and len(a) + len(b) + 1 > max_length:
        (a if len(a) >= len(b) else b).pop()
    return a, b


class KimCNN(nn.Module):
    def __init__(self, vocab_size: int, num_labels: int, embedding_dim: int, filters: int):
        super().__init__()
        self.config = SimpleNamespace(num_labels=num_labels)   # predict() reads config.num_labels
        self.embedding = nn.Embedding(vocab_size, embedding_dim, padding_idx=0)
        self.convs = nn.ModuleList(nn.Conv1d(embedding_dim, filters, k) for k in KERNELS)
        self.dropout = nn.Dropout(DROPOUT)
        self.classifier = nn.Linear(filters * len(KERNELS), num_labels)

    def forward(self, input_ids, attention_mask, token_type_ids=None, output_hidden_states=False):
        lengths = attention_mask.sum(1)
        width = max(input_ids.shape[1], max(KERNELS))
        x = self.embedding(nn.functional.pad(input_ids, (0, width - input_ids.shape[1]))).transpose(1, 2)
        pooled = []
        for k, conv in zip(KERNELS, self.convs):
            h = torch.relu(conv(x))                                       # [B, F, width - k + 1]
            # positions whose window starts past the text are padding: excluded, so a text's logits
            # do not depend on how much its batch is padded (a text shorter than k keeps position 0)
            last = (lengths - k).clamp_min(0)
            valid = torch.arange(h.shape[2], device=h.device)[None, :] <= last[:, None]
            pooled.append(h.masked_fill(~valid[:, None, :], float("-inf")).amax(2))
        features = torch.cat(pooled, 1)
        return SimpleNamespace(logits=self.classifier(self.dropout(features)), features=features)


class CnnTeacher:
    def __init__(self, cfg: TeacherConfig, label_names, seed: int, eval_batch_size: int = 128,
                 group_by_length: bool = True):
        self.cfg, self.label_names, self.eval_batch_size = cfg, tuple(label_names), eval_batch_size
        self.seed, self.group_by_length = seed, group_by_length
        self.vocab: dict[str, int] = {}
        self.model: KimCNN | None = None

    # ---------------------------------------------------------------- text -> ids
    def build_vocab(self, texts) -> None:
        counts = Counter(tok for t in texts for part in t for tok in tokenize(part))
        kept = sorted((w for w, n in counts.items() if n >= self.cfg.min_count), key=lambda w: (-counts[w], w))
        self.vocab = {w: i for i, w in enumerate([PAD, UNK, SEP, *kept])}

    def encode(self, texts) -> Encoded:
        unk, L = self.vocab[UNK], self.cfg.max_length
        rows = []
        for t in texts:
            parts = [tokenize(p) for p in t]
            if len(parts) == 2:
                a, b = truncate_pair(parts[0], parts[1], L)
                toks = [*a, SEP, *b]
            else:
                toks = [tok for p in parts for tok in p][:L]
            rows.append([self.vocab.get(w, unk) for w in toks] or [unk])   # an empty text is one unknown token
        return Encoded.from_lists(rows, None, self.vocab[PAD])

    # ---------------------------------------------------------------- protocol
    def _new_model(self) -> KimCNN:
        torch.manual_seed(self.seed)
        return KimCNN(len(self.vocab), len(self.label_names), self.cfg.embedding_dim, self.cfg.filters)

    def fit(self, train_split, validation, work_dir: Path) -> "CnnTeacher":
        c = self.cfg
        self.build_vocab(train_split.texts)
        self.model = self._new_model()
        labels = torch.as_tensor(train_split.labels)

        def loss_fn(logits, feats, idx):
            return kd_loss(logits, None, labels[idx].to(logits.device), 1.0, 0.0)
        spec = TrainSpec(c.epochs, c.lr, c.batch_size, WEIGHT_DECAY, 0.0, self.seed, self.group_by_length)
        self.model = train(self.model, self.encode(train_split.texts), spec, loss_fn, Path(work_dir),
                           desc=f"teacher {c.name}")
        return self

    def logits(self, texts) -> np.ndarray:
        return predict(self.model, self.encode(texts), self.eval_batch_size)

    def save(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        save_model(self.model, str(folder / "model.safetensors"))
        atomic_write_json(folder / "vocab.json", {"tokens": list(self.vocab), "label_names": list(self.label_names)})

    def load(self, folder: Path) -> "CnnTeacher":
        meta = json.loads((folder / "vocab.json").read_text(encoding="utf-8"))
        self.vocab = {w: i for i, w in enumerate(meta["tokens"])}
        self.model = self._new_model()
        load_model(self.model, str(folder / "model.safetensors"))
        self.model.eval()
        return self

