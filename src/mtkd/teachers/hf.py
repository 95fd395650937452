"""HFTeacher: fine-tunes any AutoModelForSequenceClassification (hub id or local path; default the
packaged MiniLM; optionally only its first k layers) with the one training loop. With epochs 0 an
already fine-tuned checkpoint is used as it is (no training, only extraction): its columns are put in
the task's label order by the names in its id2label (teachers/labels.py), the order kept in its config
(`mtkd_column_order`) and applied to every logit it gives."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..config import TeacherConfig
from ..losses import kd_loss
from ..models import encode, load_classifier, load_finetuned_classifier, load_saved_classifier, load_tokenizer
from ..train import TrainSpec, predict, train
from .labels import checkpoint_order

COLUMN_ORDER = "mtkd_column_order"   # config attribute: order[j] = the checkpoint column of task label j


class HFTeacher:
    def __init__(self, cfg: TeacherConfig, label_names, seed: int, eval_batch_size: int = 128,
                 group_by_length: bool = True):
        self.cfg, self.label_names, self.eval_batch_size = cfg, tuple(label_names), eval_batch_size
        self.group_by_length = group_by_length
        self.seed = cfg.seed if cfg.seed is not None else seed
        self.tokenizer = load_tokenizer(cfg.model, cfg.trust_remote_code)
        self.model = None

    def fit(self, train_split, validation, work_dir: Path) -> "HFTeacher":
        c = self.cfg
        if c.epochs == 0:   # a fine-tuned checkpoint, as it is
            self.model = load_finetuned_classifier(c.model, c.trust_remote_code)
            order = checkpoint_order(self.model.config.id2label, self.label_names, c.label_order, f"teacher {c.name} ({c.model})")
            setattr(self.model.config, COLUMN_ORDER, order)
            return self
        self.model = load_classifier(c.model, len(self.label_names), c.layers, self.seed, c.trust_remote_code, c.pooling)
        data = encode(self.tokenizer, train_split.texts, c.max_length)
        labels_t = torch.as_tensor(train_split.labels)

        def loss_fn(logits, feats, idx):
            return kd_loss(logits, None, labels_t[idx].to(logits.device), 1.0, 0.0)
        spec = TrainSpec(c.epochs, c.lr, c.batch_size, c.weight_decay, c.warmup_ratio, self.seed, self.group_by_length,
                         max_grad_norm=c.max_grad_norm, grad_accum=c.grad_accum)
        self.model = train(self.model, data, spec, loss_fn, work_dir, desc=f"teacher {c.name}")
        return self

    def logits(self, texts) -> np.ndarray:
        out = predict(self.model, encode(self.tokenizer, texts, self.cfg.max_length), self.eval_batch_size)
        order = getattr(self.model.config, COLUMN_ORDER, None)
        return out if order is None else np.ascontiguousarray(out[:, order])

    def save(self, folder: Path) -> None:
        self.model.save_pretrained(folder, safe_serialization=True)

    def load(self, folder: Path) -> "HFTeacher":
        self.model = load_saved_classifier(folder, self.cfg.trust_remote_code)
        self.model.eval()
        return self
