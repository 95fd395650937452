"""The config's schema: one dataclass per section, every key with its type, default and meaning (the comment
on its line: docs/reference/config.md is generated from it by docgen.py), and the names some keys allow.
A new key goes here (and, when it has a rule, into validate.py); a new teacher kind into TEACHER_KINDS and
TEACHER_FIELDS (the fields its stage key holds) and mtkd.teachers.make_teacher."""
from __future__ import annotations

import dataclasses
import itertools
from dataclasses import dataclass, field

from ..errors import MtkdError


@dataclass
class ExtraEvalConfig:
    """A labelled set every model is also evaluated on (e.g. adversarial or out-of-domain), read as task files
    are, with the task's label names; its own columns and layout (default: the task's)."""
    name: str = ""                     # [A-Za-z0-9_-]+, not train / validation / eval / transfer
    file: str = ""                     # .csv / .tsv / .jsonl / .json / .parquet
    text_columns: list[str] | None = None   # default: the task's text columns
    label_column: str | None = None    # default: the task's label_column
    header: bool = True
    columns: list[str] | None = None

@dataclass
class TaskConfig:
    name: str = "demo"                 # registry name: demo, sst2, mnli, qqp, mrpc, qnli, rte, cola, or any name with source file/hf
    source: str = "auto"               # auto | builtin | hf | glue_dir | file
    glue_dir: str | None = None        # local folder in GLUE's TSV layout (source glue_dir)
    train_file: str | None = None      # source file: .csv / .tsv (quoting off) / .jsonl / .json / .parquet
    eval_file: str | None = None       # or eval_fraction: eval carved from train_file
    header: bool = True                # CSV/TSV: false = no header row; `columns` names every column in order
    columns: list[str] | None = None
    dataset: str | None = None         # source hf: a hub dataset id, or a local folder (save_to_disk or data files)
    config: str | None = None          # source hf: the dataset's configuration (subset) name
    train_split: str = "train"         # source hf
    eval_split: str | None = None      # source hf (default: GLUE's dev split; else validation, or test when absent)
    text_columns: list[str] | None = None
    label_column: str = "label"
    label_names: list[str] | None = None
    pos_label: str | None = None       # binary F1: the positive class (default: GLUE's; else the second of label_names)
    metric: str | None = None          # accuracy | f1 | matthews (default: the task's official metric)
    max_train_examples: int | None = None   # a seeded, label-stratified sample (validation included)
    max_eval_examples: int | None = None    # a seeded, label-stratified sample
    eval_fraction: float | None = None      # no eval file/split: eval carved from train (group-aware, stratified)
    validation_fraction: float = 0.1   # carved from train: deterministic, group-aware, label-stratified
    group_by: str = "auto"             # auto (equal texts + containment for one-text tasks) | exact | none
    group_column: str | None = None    # examples with the same value here stay on one side of every carve
    demo_size: int = 2400              # builtin demo: number of generated training sentences
    transfer_file: str | None = None   # unlabelled text the teachers label for the students (KD only; labels ignored)
    transfer_from_train: int | None = None  # or: a seeded sample of N train rows max_train_examples left unused
    extra_eval: list[ExtraEvalConfig] | None = None   # labelled sets every model is evaluated on besides eval

@dataclass
class TeacherConfig:
    name: str = "minilm_l6"
    kind: str = "hf"                   # hf | tfidf | cnn | logits (see TEACHER_FIELDS for the fields each kind reads)
    model: str = "minilm"              # hub id, local path, `minilm` (the packaged MiniLM) or `tiny` (random tiny BERT for tests)
    layers: int | None = None          # keep only the first k encoder layers
    epochs: float = 1.0                # cnn default: 5 (KIND_DEFAULTS); hf: 0 = a fine-tuned checkpoint used as it is
    lr: float = 5e-5                   # cnn default: 3e-3
    batch_size: int = 32
    max_length: int = 64               # tokens (hf: the model's tokenizer; cnn: words and punctuation)
    seed: int | None = None            # default: the run seed
    weight_decay: float = 0.01
    warmup_ratio: float = 0.1
    max_grad_norm: float = 1.0         # clip the gradient norm (0 = off)
    grad_accum: int = 1                # micro-batches per optimizer update (effective batch: batch_size x this x processes)
    trust_remote_code: bool = False
    pooling: str = "auto"              # auto | cls | mean (auto: mean for the packaged MiniLM, the model's own head otherwise)
    C: float = 10.0                    # tfidf: inverse regularisation strength
    ngram_max: int = 2                 # tfidf: word n-grams 1..ngram_max
    embedding_dim: int = 128           # cnn: word embedding size
    filters: int = 100                 # cnn: convolution filters per width (widths 3, 4, 5)
    min_count: int = 3                 # cnn: a training-split word seen fewer times is [UNK]
    label_order: str | list[str] | None = None   # hf, epochs 0: the checkpoint's columns -> the task's labels:
                                       # None = by id2label name; as_is = column i is the task's label i;
                                       # a list = the task label of each checkpoint column, in column order
    files: dict[str, str] | None = None   # logits: {train: path, validation: path, eval: path} (.npy, .csv, .jsonl); '{task}' in a path: the task's name
    scores: str | None = None          # logits: logits | probs, for its CSV/JSONL files (a .npy file's sidecar says it)
    crossfit: int = 0                  # k >= 2: train-split logits out-of-fold (k copies fitted on k-1 folds each)
    bag: int | None = None             # a seed: fit on a bootstrap resample of train drawn with it (bagging)

@dataclass
class StudentConfig:
    model: str = "minilm"
    layers: int | None = 2             # the offline default student: the packaged MiniLM cut to its first 2 layers
    epochs: float = 4.0                # epochs and lr chosen on validation (SST-2, 3 seeds; docs/benchmarks.md,
    lr: float = 4e-4                   # "The student's default recipe"), not inherited
    batch_size: int = 32
    max_length: int = 64
    weight_decay: float = 0.01
    warmup_ratio: float = 0.1
    max_grad_norm: float = 1.0
    grad_accum: int = 1
    trust_remote_code: bool = False
    pooling: str = "auto"
    save_model: bool = True            # keep each student's weights (safetensors), tokenizer and label names in its folder
    gate_hidden: int = 64              # learned_gating: hidden units of the gate MLP
    gate_lr: float = 1e-3
    sparsity: float = 0.0              # share of the encoder's linear weights pruned by magnitude (0 = dense; see sparsity.py)
    sparsity_schedule: str = "cubic"   # cubic: reached gradually (Zhu & Gupta 2017) | constant: from the first step
    sparsity_start: float = 0.0        # cubic: fractions of training where pruning starts and reaches the target
    sparsity_end: float = 0.75
    sparsity_structured: bool = False  # true: whole FFN neurons instead of single weights
    gate_entropy: float = 0.0          # learned_gating: weight of the gate-entropy bonus (against collapse)

@dataclass
class DistillConfig:
    temperature: float | str = 6.0     # or "auto": per student, the validation-best of temperature_grid
                                       # (6: validation-best at lr 4e-4 / 3 epochs; alpha 0.7 at lr 4e-4 / 4 epochs)
    temperature_grid: list[float] = field(default_factory=lambda: [1.0, 2.0, 4.0, 6.0, 8.0])
    calibrate: bool = False            # every teacher temperature-scaled on validation before any strategy
    agreement_shift: float = 0.5       # agreement: mass moved to the gold/majority class where teachers disagree
    curriculum_end: float = 0.5        # curriculum: training progress at which the full ensemble is reached
    alpha: float = 0.7                 # weight of the KD term; 0 = plain fine-tuning
    strategies: list[str] = field(default_factory=lambda: ["average", "weighted", "best_per_sample", "learned_gating"])
    single_teacher: bool | list[str] = True   # one single-teacher KD student per teacher (or per teacher named)
    baseline: bool = True              # the no-KD student
    mode: str = "cached"               # cached | online
    use_transfer: bool = True          # KD students also learn from the task's transfer set (when it has one)

@dataclass
class RayConfig:
    """Resources of each sweep point when `mtkd sweep/seeds --ray` runs the points as Ray tasks."""
    cpus_per_task: float = 1.0         # CPUs a point reserves (its torch threads: at least 1)
    gpus_per_task: float = 0.0         # its share of a GPU (0.5: two points per GPU)

@dataclass
class RunConfig:
    name: str = "mtkd-run"
    seed: int = 42
    seeds: list[int] | None = None     # students trained once per seed (default [seed]); the first is `seed`
    reseed_teachers: bool = False      # with several seeds: teachers (and their logits) trained per seed too
    tasks: list[TaskConfig] = field(default_factory=lambda: [TaskConfig()])
    teachers: list[TeacherConfig] = field(default_factory=lambda: [TeacherConfig()])
    student: StudentConfig = field(default_factory=StudentConfig)
    distill: DistillConfig = field(default_factory=DistillConfig)
    length_grouping: bool = True       # group batches by length (less padding); order stays seeded
    eval_batch_size: int = 128
    threads: int | None = None         # torch CPU threads (default: torch's choice)
    mixed_precision: str | None = None # no | fp16 | bf16 (default: what `accelerate launch` chose, else no); training and extraction
    tracking: str = "none"             # none | tensorboard | mlflow | wandb: per-step losses, lr, per-epoch validation (RUN/tracking)
    ray: RayConfig = field(default_factory=RayConfig)


SOURCES = ("auto", "builtin", "hf", "glue_dir", "file")
TEACHER_KINDS = {   # kind -> its one line in `mtkd list teachers` (docs/teachers.md)
    "hf": "any Hugging Face AutoModelForSequenceClassification (hub id, local path, minilm) fine-tuned on train; "
          "epochs: 0 = a fine-tuned checkpoint used as it is, columns aligned by label name",
    "tfidf": "word n-gram TF-IDF + logistic regression (C, ngram_max); logits = its log-probabilities",
    "cnn": "word-level CNN (Kim 2014: widths 3/4/5, max over time) trained from scratch, vocabulary from train",
    "logits": "a teacher run elsewhere: per-split files of logits or probabilities (.npy + JSON sidecar, CSV, JSONL); "
              "probabilities enter as log p (softmax(log p / T) = p^(1/T) renormalised)",
}
# the TeacherConfig fields each kind reads besides TEACHER_COMMON: a teacher's stage key holds only these
# (see teacher_fields), so changing a TF-IDF field does not retrain an HF teacher and vice versa. A kind
# missing here is keyed on every field.
TEACHER_COMMON = ("name", "kind", "crossfit", "bag")   # and seed, keyed apart as the effective seed
TEACHER_FIELDS = {
    "hf": ("model", "layers", "epochs", "lr", "batch_size", "max_length", "weight_decay", "warmup_ratio",
           "max_grad_norm", "grad_accum", "trust_remote_code", "pooling", "label_order"),
    "tfidf": ("C", "ngram_max"),
    "cnn": ("epochs", "lr", "batch_size", "max_length", "embedding_dim", "filters", "min_count"),
    "logits": ("files", "scores"),
}
KEYED_WHEN_SET = ("label_order", "files", "scores", "bag")   # added later: left out of a key while unset (None)
# defaults that differ by kind, used where the config does not give the field
KIND_DEFAULTS = {"cnn": {"epochs": 5.0, "lr": 3e-3}}
METRICS = ("accuracy", "f1", "matthews")
MODES = ("cached", "online")
POOLINGS = ("auto", "cls", "mean")
GROUP_BY = ("auto", "exact", "none")
RESERVED_TASK_NAMES = ("results", "analysis", "sweeps")
SPLIT_NAMES = ("train", "validation", "eval", "transfer")   # an extra eval set may not take one of these names


def seeds_of(cfg: RunConfig) -> list[int]:
    """Every seed the students are trained at, the run seed first."""
    return list(cfg.seeds) if cfg.seeds else [cfg.seed]


def first_seeds(seed: int, n: int) -> list[int]:
    """`--seeds N`: the run seed, then 1, 2, 3, ... skipping it."""
    if n < 1:
        raise MtkdError(f"--seeds must be >= 1, got {n}")
    rest = (s for s in itertools.count(1) if s != seed)
    return [seed, *itertools.islice(rest, n - 1)]


def teacher_fields(t: TeacherConfig) -> dict:
    """The fields of `t` that its kind reads (seed excluded): what its teacher stage is keyed on."""
    fields = dataclasses.asdict(t)
    own = TEACHER_FIELDS.get(t.kind)
    keep = set(fields) if own is None else {*TEACHER_COMMON, *own}
    return {k: v for k, v in fields.items()
            if k in keep and k != "seed" and not (k in KEYED_WHEN_SET and v is None)}


def to_dict(cfg: RunConfig) -> dict:
    return dataclasses.asdict(cfg)
