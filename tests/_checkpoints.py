"""A tiny fine-tuned-looking checkpoint for the epochs: 0 tests (test_teachers, test_bad_inputs)."""
from __future__ import annotations

from pathlib import Path


def save_checkpoint(folder: Path, id2label: dict, seed: int = 3) -> str:
    """A tiny random BERT 'fine-tuned' classifier saved like a hub checkpoint, with its own id2label."""
    import torch
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification
    from mtkd.models import packaged_minilm_path
    torch.manual_seed(seed)
    cfg = BertConfig(vocab_size=30522, hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64,
                     num_labels=len(id2label), id2label=id2label, label2id={v: k for k, v in id2label.items()})
    BertForSequenceClassification(cfg).save_pretrained(folder)
    AutoTokenizer.from_pretrained(packaged_minilm_path()).save_pretrained(folder)
    return str(folder)
