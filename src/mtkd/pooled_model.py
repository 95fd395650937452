"""mtkd's mean-pooled students as a plain `transformers` model: an encoder (any `AutoModel`) whose
masked mean of token states feeds one linear classifier — the forward of `models.MeanPooled`.

`mtkd export` copies this file into the exported folder as `modeling_mtkd.py` and names it in
`config.json` (`auto_map`), so the folder loads anywhere with `trust_remote_code=True`, mtkd not
installed. Importing this module registers the model with transformers' Auto classes, so after
`import mtkd.pooled_model` the folder loads without remote code:

    import mtkd.pooled_model, transformers
    clf = transformers.pipeline("text-classification", model="exported/", truncation=True)

Self-contained on purpose: it imports only torch and transformers.
"""
import torch
from transformers import AutoConfig, AutoModel, AutoModelForSequenceClassification, PretrainedConfig, PreTrainedModel
from transformers.modeling_outputs import SequenceClassifierOutput

MODEL_TYPE = "mtkd_mean_pooled"


class MtkdMeanPooledConfig(PretrainedConfig):
    """`encoder`: the encoder's own config as a dict (with its `model_type`)."""
    model_type = MODEL_TYPE

    def __init__(self, encoder=None, classifier_dropout=0.1, **kwargs):
        self.encoder = dict(encoder or {})
        self.classifier_dropout = classifier_dropout
        super().__init__(**kwargs)

    @property
    def hidden_size(self):
        return self.encoder.get("hidden_size")


class MtkdMeanPooledForSequenceClassification(PreTrainedModel):
    config_class = MtkdMeanPooledConfig
    base_model_prefix = "encoder"

    def __init__(self, config):
        super().__init__(config)
        enc = dict(config.encoder)
        self.encoder = AutoModel.from_config(AutoConfig.for_model(enc.pop("model_type"), **enc))
        self.dropout = torch.nn.Dropout(config.classifier_dropout)
        self.classifier = torch.nn.Linear(config.hidden_size, config.num_labels)
        self.post_init()

    def _init_weights(self, module):
        if isinstance(module, torch.nn.Linear):
            module.weight.data.normal_(0.0, 0.02)
            if module.bias is not None:
                module.bias.data.zero_()

    def forward(self, input_ids=None, attention_mask=None, token_type_ids=None, labels=None, **kwargs):
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        extra = {"token_type_ids": token_type_ids} if token_type_ids is not None else {}
        h = self.encoder(input_ids=input_ids, attention_mask=attention_mask, **extra).last_hidden_state
        m = attention_mask.unsqueeze(-1).to(h.dtype)
        pooled = (h * m).sum(1) / m.sum(1).clamp_min(1.0)
        logits = self.classifier(self.dropout(pooled))
        loss = torch.nn.functional.cross_entropy(logits, labels) if labels is not None else None
        return SequenceClassifierOutput(loss=loss, logits=logits)


AutoConfig.register(MODEL_TYPE, MtkdMeanPooledConfig, exist_ok=True)
AutoModelForSequenceClassification.register(MtkdMeanPooledConfig, MtkdMeanPooledForSequenceClassification, exist_ok=True)
