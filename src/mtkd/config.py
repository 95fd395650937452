"""Typed run configuration: YAML + dotted `key=value` overrides, validated once, never mutated
during a run, and saved resolved (defaults filled in) as RUN/config.yaml."""
from __future__ import annotations

import dataclasses
import difflib
import os
import itertools
import math
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from .errors import MtkdError
from .registry import PRECISIONS, SCHEDULES, SPLITS, STRATEGIES, TRACKERS


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
TEACHER_COMMON = ("name", "kind", "crossfit")   # and seed, keyed apart as the effective seed
TEACHER_FIELDS = {
    "hf": ("model", "layers", "epochs", "lr", "batch_size", "max_length", "weight_decay", "warmup_ratio",
           "max_grad_norm", "grad_accum", "trust_remote_code", "pooling", "label_order"),
    "tfidf": ("C", "ngram_max"),
    "cnn": ("epochs", "lr", "batch_size", "max_length", "embedding_dim", "filters", "min_count"),
    "logits": ("files", "scores"),
}
KEYED_WHEN_SET = ("label_order", "files", "scores")   # added later: left out of a key while unset (None)
# defaults that differ by kind, used where the config does not give the field
KIND_DEFAULTS = {"cnn": {"epochs": 5.0, "lr": 3e-3}}
METRICS = ("accuracy", "f1", "matthews")
MODES = ("cached", "online")
POOLINGS = ("auto", "cls", "mean")
GROUP_BY = ("auto", "exact", "none")
RESERVED_TASK_NAMES = ("results", "analysis", "sweeps")
SPLIT_NAMES = ("train", "validation", "eval", "transfer")   # an extra eval set may not take one of these names


class _StrictLoader(yaml.SafeLoader):
    """yaml.safe_load, but a key given twice in one mapping is an error, not a silent override."""

    def construct_mapping(self, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            try:
                if key in seen:
                    raise yaml.constructor.ConstructorError(None, None, f"duplicate key '{key}'", key_node.start_mark)
                seen.add(key)
            except TypeError:   # an unhashable key: SafeLoader refuses it itself
                pass
        return super().construct_mapping(node, deep)


def _safe_name(name: str) -> bool:
    """Names become folder names: letters, digits, '-' and '_' only, so no write can leave the run dir."""
    return name.replace("_", "").replace("-", "").isalnum()


def _did_you_mean(word: str, options) -> str:
    close = difflib.get_close_matches(word, list(options), n=1) or \
        [o for o in options if word and str(o).lower().startswith(word.lower())][:1]   # acc -> accuracy
    return f" (did you mean '{close[0]}'?)" if close else ""


def _build(cls, data, where: str):
    """Build dataclass `cls` from a dict, refusing unknown keys and wrong types."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise MtkdError(f"config: '{where or 'top level'}' must be a mapping, got {type(data).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for key, value in data.items():
        if key not in fields:
            raise MtkdError(f"config: unknown key '{where + '.' if where else ''}{key}'{_did_you_mean(str(key), fields)}")
        kwargs[key] = _coerce(hints[key], value, f"{where + '.' if where else ''}{key}")
    if cls is TeacherConfig:
        kwargs = _teacher_kind_fields(kwargs, where)
    return cls(**kwargs)


def _teacher_kind_fields(kwargs: dict, where: str) -> dict:
    """A teacher's kind defaults filled in, and a field its kind does not read refused (unless it holds
    the default: a config.yaml written before the kind's fields were restricted still loads)."""
    kind = kwargs.get("kind", "hf")
    own = TEACHER_FIELDS.get(kind)
    if own is None:   # an unknown kind is refused by validate, with its "did you mean"
        return kwargs
    defaults = {f.name: f.default for f in dataclasses.fields(TeacherConfig)}
    for key, value in kwargs.items():
        if key not in {*TEACHER_COMMON, "seed", *own} and value != defaults[key]:
            name = kwargs.get("name", where)
            raise MtkdError(f"config: teacher '{name}' (kind {kind}) does not use '{key}'; "
                            f"its fields: {', '.join(k for k in (*TEACHER_COMMON, 'seed', *own) if k != 'kind')}")
    return {**KIND_DEFAULTS.get(kind, {}), **kwargs}


def _coerce(hint, value, where):
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        if float in args and str in args and isinstance(value, str):   # temperature: auto (validate checks the word)
            try:
                return float(value)
            except ValueError:
                return value
        options = [a for a in args if a is not type(None)]
        # str | list[str]: the list form when a list is given
        hint = next((a for a in options if isinstance(value, list) and typing.get_origin(a) is list), options[0])
        origin, args = typing.get_origin(hint), typing.get_args(hint)
    if dataclasses.is_dataclass(hint):
        return _build(hint, value, where)
    if origin is dict:
        if not isinstance(value, dict):
            raise MtkdError(f"config: '{where}' must be a mapping, got {value!r}")
        return {_coerce(args[0], k, where): _coerce(args[1], v, f"{where}.{k}") for k, v in value.items()}
    if origin is list:
        if not isinstance(value, list):
            raise MtkdError(f"config: '{where}' must be a list, got {value!r}")
        (item,) = args
        if item is TaskConfig and all(isinstance(v, (str, dict)) for v in value):
            value = [{"name": v} if isinstance(v, str) else v for v in value]
        return [_coerce(item, v, f"{where}.{i}") for i, v in enumerate(value)]
    if hint is bool:
        if not isinstance(value, bool):
            raise MtkdError(f"config: '{where}' must be true or false, got {value!r}")
        return value
    if hint is float:
        if isinstance(value, str):   # YAML 1.1 reads 1e-4 (no dot) as a string
            try:
                value = float(value)
            except ValueError:
                pass
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise MtkdError(f"config: '{where}' must be a number, got {value!r}")
        if not math.isfinite(value):
            raise MtkdError(f"config: '{where}' must be a finite number, got {value!r}")
        return float(value)
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise MtkdError(f"config: '{where}' must be an integer, got {value!r}")
        return value
    if hint is str:
        if not isinstance(value, (str, int, float)) or isinstance(value, bool):
            raise MtkdError(f"config: '{where}' must be a string, got {value!r}")
        return str(value)
    return value


def validate(cfg: RunConfig) -> RunConfig:
    d = cfg.distill
    if isinstance(d.temperature, str) and d.temperature != "auto":
        raise MtkdError(f"config: distill.temperature must be a number > 0 or 'auto', got '{d.temperature}'")
    if not isinstance(d.temperature, str) and not d.temperature > 0:
        raise MtkdError(f"config: distill.temperature must be > 0, got {d.temperature}")
    if not d.temperature_grid or any(not t > 0 for t in d.temperature_grid):
        raise MtkdError(f"config: distill.temperature_grid must list temperatures > 0, got {d.temperature_grid}")
    if not 0.0 <= d.agreement_shift <= 1.0:
        raise MtkdError(f"config: distill.agreement_shift must be in [0, 1], got {d.agreement_shift}")
    if not d.curriculum_end >= 0:
        raise MtkdError(f"config: distill.curriculum_end must be >= 0, got {d.curriculum_end}")
    if d.calibrate and "calibrated_average" in d.strategies:
        raise MtkdError("config: calibrated_average already calibrates its teachers; with distill.calibrate: true "
                        "list 'average' instead")
    if not 0.0 <= d.alpha <= 1.0:
        raise MtkdError(f"config: distill.alpha must be in [0, 1], got {d.alpha}")
    for s in d.strategies:
        if d.strategies.count(s) > 1:   # two students multi_<s> would share one folder and one table row
            raise MtkdError(f"config: distill.strategies lists '{s}' twice; list each strategy once")
        if s not in STRATEGIES:
            raise MtkdError(f"config: unknown fusion strategy '{s}'{_did_you_mean(s, STRATEGIES)}; known: {', '.join(STRATEGIES)}")
    if isinstance(d.single_teacher, list):
        names = [t.name for t in cfg.teachers]
        for n in d.single_teacher:
            if n not in names:
                raise MtkdError(f"config: distill.single_teacher names '{n}', which is not a teacher"
                                f"{_did_you_mean(n, names)}; teachers: {', '.join(names)}")
    if d.mode not in MODES:
        raise MtkdError(f"config: distill.mode must be one of {', '.join(MODES)}, got '{d.mode}'")
    if not _safe_name(cfg.name):   # the default run directory is runs/<name>
        raise MtkdError(f"config: run name '{cfg.name}' may only use letters, digits, '-' and '_'")
    if cfg.seed < 0:
        raise MtkdError(f"config: seed must be >= 0, got {cfg.seed}")
    _check_seeds(cfg)
    if cfg.eval_batch_size < 1:
        raise MtkdError(f"config: eval_batch_size must be >= 1, got {cfg.eval_batch_size}")
    if cfg.threads is not None and cfg.threads < 1:
        raise MtkdError(f"config: threads must be >= 1, got {cfg.threads}")
    if cfg.mixed_precision is not None and cfg.mixed_precision not in PRECISIONS:
        raise MtkdError(f"config: mixed_precision must be one of {', '.join(PRECISIONS)}, got '{cfg.mixed_precision}'")
    if not cfg.ray.cpus_per_task > 0 or not cfg.ray.gpus_per_task >= 0:
        raise MtkdError(f"config: ray.cpus_per_task must be > 0 and ray.gpus_per_task >= 0, got "
                        f"{cfg.ray.cpus_per_task} and {cfg.ray.gpus_per_task}")
    if cfg.tracking not in TRACKERS:
        raise MtkdError(f"config: tracking must be one of {', '.join(TRACKERS)}, got '{cfg.tracking}'"
                        f"{_did_you_mean(cfg.tracking, TRACKERS)}")
    if not cfg.tasks:
        raise MtkdError("config: 'tasks' is empty; name at least one task")
    if not cfg.teachers:
        raise MtkdError("config: 'teachers' is empty; name at least one teacher")
    names = [t.name for t in cfg.teachers]
    if len(set(names)) != len(names):
        raise MtkdError(f"config: teacher names must be unique, got {names}")
    if len({n.lower() for n in names}) != len(names):   # one folder on a case-insensitive file system
        raise MtkdError(f"config: teacher names must differ in more than upper/lower case, got {names}")
    tnames = [t.name for t in cfg.tasks]
    if len(set(tnames)) != len(tnames):
        raise MtkdError(f"config: task names must be unique, got {tnames}")
    for t in cfg.teachers:
        if t.kind not in TEACHER_KINDS:
            raise MtkdError(f"config: teacher '{t.name}': unknown kind '{t.kind}'{_did_you_mean(t.kind, TEACHER_KINDS)}")
        if not _safe_name(t.name):
            raise MtkdError(f"config: teacher name '{t.name}' may only use letters, digits, '-' and '_'")
        if t.name == "no_kd" or t.name.startswith(("kd_", "multi_")):   # teachers and students share one table
            raise MtkdError(f"config: teacher name '{t.name}' collides with the students' names (no_kd, kd_<teacher>, "
                            f"multi_<strategy>); rename the teacher")
        if t.crossfit != 0 and t.crossfit < 2:
            raise MtkdError(f"config: teachers.{t.name}.crossfit must be 0 (off) or a number of folds >= 2, got {t.crossfit}")
        if t.crossfit and d.mode == "online":   # online runs the teacher fitted on all of train: in-sample logits
            raise MtkdError(f"config: teachers.{t.name}.crossfit needs distill.mode: cached (online mode would label "
                            f"train with the teacher fitted on it)")
        _check_training(f"teachers.{t.name}", t, zero_epochs=t.kind == "hf")
        _check_kind(t, d.mode, teacher_splits(cfg))
        if t.seed is not None and t.seed < 0:
            raise MtkdError(f"config: teachers.{t.name}.seed must be >= 0, got {t.seed}")
        if not t.C > 0:
            raise MtkdError(f"config: teachers.{t.name}.C must be > 0, got {t.C}")
        if t.ngram_max < 1:
            raise MtkdError(f"config: teachers.{t.name}.ngram_max must be >= 1, got {t.ngram_max}")
        for key in ("embedding_dim", "filters", "min_count"):
            if getattr(t, key) < 1:
                raise MtkdError(f"config: teachers.{t.name}.{key} must be >= 1, got {getattr(t, key)}")
    _check_training("student", cfg.student)
    if cfg.student.gate_hidden < 1:
        raise MtkdError(f"config: student.gate_hidden must be >= 1, got {cfg.student.gate_hidden}")
    if not cfg.student.gate_lr > 0:
        raise MtkdError(f"config: student.gate_lr must be > 0, got {cfg.student.gate_lr}")
    _check_sparsity(cfg.student)
    if not cfg.student.gate_entropy >= 0:
        raise MtkdError(f"config: student.gate_entropy must be >= 0, got {cfg.student.gate_entropy}")
    for where, c in [("student", cfg.student), *((f"teachers.{t.name}", t) for t in cfg.teachers)]:
        if c.pooling not in POOLINGS:
            raise MtkdError(f"config: {where}.pooling must be one of {', '.join(POOLINGS)}, got '{c.pooling}'")
    for t in cfg.tasks:   # task names are checked against the registry when the task loads (tasks.py)
        _check_task(t)
    return cfg


def _check_task(t: TaskConfig):
    where = f"config: task '{t.name}'"
    if t.source not in SOURCES:
        raise MtkdError(f"{where}: unknown source '{t.source}'{_did_you_mean(t.source, SOURCES)}")
    if t.metric is not None and t.metric not in METRICS:
        raise MtkdError(f"{where}: unknown metric '{t.metric}'{_did_you_mean(t.metric, METRICS)}")
    if t.group_by not in GROUP_BY:
        raise MtkdError(f"{where}: group_by must be one of {', '.join(GROUP_BY)}, got '{t.group_by}'")
    for key in ("validation_fraction", "eval_fraction"):
        v = getattr(t, key)
        if v is not None and not 0.0 < v < 1.0:
            raise MtkdError(f"{where}: {key} must be in (0, 1), got {v}")
    if t.eval_fraction is not None and (t.eval_file or t.eval_split):
        raise MtkdError(f"{where}: give eval_fraction or an eval {'file' if t.eval_file else 'split'}, not both")
    for key in ("max_train_examples", "max_eval_examples"):
        v = getattr(t, key)
        if v is not None and v < 1:
            raise MtkdError(f"{where}: {key} must be >= 1, got {v}")
    if not _safe_name(t.name):
        raise MtkdError(f"config: task name '{t.name}' may only use letters, digits, '-' and '_'")
    if t.name in RESERVED_TASK_NAMES:   # RUN/<task>/ would share a folder with the run's own outputs
        raise MtkdError(f"config: task name '{t.name}' is reserved (RUN/{t.name}/ holds the run's own outputs); rename the task")
    if t.demo_size < 1:
        raise MtkdError(f"{where}: demo_size must be >= 1, got {t.demo_size}")
    if t.label_names is not None and len(set(t.label_names)) != len(t.label_names):
        raise MtkdError(f"{where}: label_names must be unique, got {t.label_names}")
    if t.label_names is not None and t.pos_label is not None and t.pos_label not in t.label_names:
        raise MtkdError(f"{where}: pos_label '{t.pos_label}' is not one of label_names {', '.join(t.label_names)}")
    if t.header and t.columns:
        raise MtkdError(f"{where}: columns names the columns of a header-less file; set header: false (or drop columns)")
    if not t.header and not t.columns:
        raise MtkdError(f"{where}: header: false needs columns: [...] naming every column in order")
    if t.columns is not None and len(set(t.columns)) != len(t.columns):
        raise MtkdError(f"{where}: columns must be unique, got {t.columns}")
    if t.transfer_file and t.transfer_from_train is not None:
        raise MtkdError(f"{where}: give transfer_file or transfer_from_train, not both")
    if t.transfer_from_train is not None and t.transfer_from_train < 1:
        raise MtkdError(f"{where}: transfer_from_train must be >= 1, got {t.transfer_from_train}")
    names = [e.name for e in t.extra_eval or []]
    for e in t.extra_eval or []:
        if not e.name or not _safe_name(e.name) or e.name in SPLIT_NAMES:
            raise MtkdError(f"{where}: extra_eval name '{e.name}' must use letters, digits, '-' and '_' only and "
                            f"not be one of {', '.join(SPLIT_NAMES)}")
        if names.count(e.name) > 1:
            raise MtkdError(f"{where}: extra_eval lists '{e.name}' twice; name each set once")
        if not e.file:
            raise MtkdError(f"{where}: extra_eval set '{e.name}' needs file: PATH")
        if e.header == bool(e.columns):
            raise MtkdError(f"{where}: extra_eval set '{e.name}': header: false goes with columns: [...] naming "
                            f"every column in order (and columns only with header: false)")


def _check_seeds(cfg: RunConfig) -> None:
    if cfg.seeds is None:
        return
    if not cfg.seeds:
        raise MtkdError("config: 'seeds' is empty; give at least the run seed, or drop the key")
    for s in cfg.seeds:
        if s < 0:
            raise MtkdError(f"config: seeds must be >= 0, got {s}")
        if cfg.seeds.count(s) > 1:
            raise MtkdError(f"config: seeds lists {s} twice; list each seed once")
    if cfg.seeds[0] != cfg.seed:
        raise MtkdError(f"config: seeds must start with the run seed (seed: {cfg.seed}), got {cfg.seeds}; "
                        f"put {cfg.seed} first or drop 'seed' (then the first of 'seeds' is the run seed)")


def _check_sparsity(st: StudentConfig) -> None:
    if not 0.0 <= st.sparsity < 1.0:
        raise MtkdError(f"config: student.sparsity must be in [0, 1) (the share of weights pruned), got {st.sparsity}")
    if st.sparsity_schedule not in SCHEDULES:
        raise MtkdError(f"config: student.sparsity_schedule must be one of {', '.join(SCHEDULES)}, "
                        f"got '{st.sparsity_schedule}'{_did_you_mean(st.sparsity_schedule, SCHEDULES)}")
    if not 0.0 <= st.sparsity_start < st.sparsity_end <= 1.0:
        raise MtkdError(f"config: student.sparsity_start and sparsity_end must satisfy 0 <= start < end <= 1 "
                        f"(fractions of training), got {st.sparsity_start} and {st.sparsity_end}")


def seeds_of(cfg: RunConfig) -> list[int]:
    """Every seed the students are trained at, the run seed first."""
    return list(cfg.seeds) if cfg.seeds else [cfg.seed]


def first_seeds(seed: int, n: int) -> list[int]:
    """`--seeds N`: the run seed, then 1, 2, 3, ... skipping it."""
    if n < 1:
        raise MtkdError(f"--seeds must be >= 1, got {n}")
    rest = (s for s in itertools.count(1) if s != seed)
    return [seed, *itertools.islice(rest, n - 1)]


def teacher_splits(cfg: RunConfig) -> list[str]:
    """Every split teachers label: train, validation, eval, `transfer` when a task has a transfer set, and
    each task's extra eval sets (a logits-file teacher needs a file for each)."""
    has_transfer = any(t.transfer_file or t.transfer_from_train for t in cfg.tasks)
    extra = [e.name for t in cfg.tasks for e in t.extra_eval or []]
    return list(dict.fromkeys([*SPLITS, *(["transfer"] if has_transfer else []), *extra]))


def _check_kind(t: TeacherConfig, mode: str, splits=None) -> None:
    """What only some kinds allow: epochs 0 and label_order (hf), files and scores (logits)."""
    where = f"config: teachers.{t.name}"
    as_is = t.kind == "hf" and t.epochs == 0
    if as_is:
        if t.model in ("minilm", "tiny"):
            raise MtkdError(f"{where}: epochs 0 uses a fine-tuned classifier as it is; '{t.model}' has no trained "
                            f"classification head (name a fine-tuned hub id or local checkpoint, or train it: epochs > 0)")
        for key, bad in (("layers", t.layers is not None), ("pooling", t.pooling == "mean"), ("crossfit", t.crossfit)):
            if bad:
                raise MtkdError(f"{where}.{key} needs training, but epochs is 0 (the checkpoint is used as it is)")
    if t.label_order is not None:
        if not as_is:
            raise MtkdError(f"{where}.label_order applies to a checkpoint used as it is (kind hf, epochs: 0)")
        if isinstance(t.label_order, str) and t.label_order != "as_is":
            raise MtkdError(f"{where}.label_order must be as_is or a list of the task's label names (one per "
                            f"checkpoint column), got '{t.label_order}'")
    if t.kind == "logits":
        if not t.files:
            raise MtkdError(f"{where}: kind logits needs files: {{train: PATH, validation: PATH, eval: PATH}}")
        splits = splits or SPLITS
        missing = [s for s in splits if s not in t.files]
        extra = [s for s in t.files if s not in splits]
        if missing or extra:
            hint = "" if set(missing) <= set(SPLITS) else \
                " (the tasks' transfer set and extra eval sets are labelled by every teacher: score them too)"
            raise MtkdError(f"{where}.files needs exactly the splits {', '.join(splits)}"
                            f"{'; missing ' + ', '.join(missing) if missing else ''}"
                            f"{'; unknown ' + ', '.join(extra) if extra else ''}{hint}")
        if t.scores not in (None, "logits", "probs"):
            raise MtkdError(f"{where}.scores must be logits or probs, got '{t.scores}'")
        if t.crossfit:
            raise MtkdError(f"{where}.crossfit needs a teacher that is fitted; a logits-file teacher is read, not fitted")
        if mode == "online":
            raise MtkdError(f"{where}: a logits-file teacher has no model to run online; use distill.mode: cached")


def teacher_fields(t: TeacherConfig) -> dict:
    """The fields of `t` that its kind reads (seed excluded): what its teacher stage is keyed on."""
    fields = dataclasses.asdict(t)
    own = TEACHER_FIELDS.get(t.kind)
    keep = set(fields) if own is None else {*TEACHER_COMMON, *own}
    return {k: v for k, v in fields.items()
            if k in keep and k != "seed" and not (k in KEYED_WHEN_SET and v is None)}


def _check_training(where, c, zero_epochs: bool = False):
    if hasattr(c, "epochs") and not (c.epochs > 0 or zero_epochs and c.epochs == 0):
        raise MtkdError(f"config: {where}.epochs must be > 0, got {c.epochs}")
    if hasattr(c, "lr") and not c.lr > 0:
        raise MtkdError(f"config: {where}.lr must be > 0, got {c.lr}")
    for key in ("batch_size", "max_length"):
        if getattr(c, key, 1) < 1:
            raise MtkdError(f"config: {where}.{key} must be >= 1, got {getattr(c, key)}")
    if getattr(c, "layers", None) is not None and c.layers < 1:
        raise MtkdError(f"config: {where}.layers must be >= 1, got {c.layers}")
    if not 0.0 <= c.warmup_ratio <= 1.0:
        raise MtkdError(f"config: {where}.warmup_ratio must be in [0, 1], got {c.warmup_ratio}")
    if not c.weight_decay >= 0:
        raise MtkdError(f"config: {where}.weight_decay must be >= 0, got {c.weight_decay}")
    if not c.max_grad_norm >= 0:
        raise MtkdError(f"config: {where}.max_grad_norm must be >= 0 (0 = no clipping), got {c.max_grad_norm}")
    if c.grad_accum < 1:
        raise MtkdError(f"config: {where}.grad_accum must be >= 1, got {c.grad_accum}")


def parse_overrides(overrides) -> list[tuple[list[str], object]]:
    out = []
    for item in overrides or []:
        if "=" not in item:
            raise MtkdError(f"override '{item}' must look like key=value (e.g. distill.alpha=0.5)")
        key, raw = item.split("=", 1)
        try:
            value = yaml.safe_load(raw) if raw != "" else ""
        except yaml.YAMLError:
            value = raw
        out.append((key.strip().split("."), value))
    return out


def apply_overrides(data: dict, overrides) -> dict:
    for path, value in parse_overrides(overrides):
        node = data
        for i, key in enumerate(path[:-1]):
            nxt = path[i + 1]
            if isinstance(node, list):
                if not key.isdigit() or int(key) >= len(node):
                    raise MtkdError(f"override '{'.'.join(path)}': no list item {key}")
                node = node[int(key)]
                if isinstance(node, str):  # tasks given as plain names
                    raise MtkdError(f"override '{'.'.join(path)}': write that list item as a mapping in the config")
            elif isinstance(node, dict):
                if key not in node or node[key] is None:
                    node[key] = [] if nxt.isdigit() else {}
                node = node[key]
            else:
                raise MtkdError(f"override '{'.'.join(path)}': '{'.'.join(path[:i])}' holds {node!r}, not a mapping")
        last = path[-1]
        if isinstance(node, list):
            if not last.isdigit() or int(last) >= len(node):
                raise MtkdError(f"override '{'.'.join(path)}': no list item {last}")
            node[int(last)] = value
        elif isinstance(node, dict):
            node[last] = value
        else:
            raise MtkdError(f"override '{'.'.join(path)}': '{'.'.join(path[:-1])}' holds {node!r}, not a mapping")
    return data


def load_config(path=None, overrides=()) -> RunConfig:
    data: dict = {}
    if path is not None:
        path = Path(path)
        if path.is_dir():
            path = path / "config.yaml"
        if not path.is_file():
            raise MtkdError(f"config file not found: {path}")
        try:
            data = yaml.load(path.read_text(encoding="utf-8"), Loader=_StrictLoader) or {}
        except yaml.YAMLError as e:
            mark = getattr(e, "problem_mark", None)
            where = f" at line {mark.line + 1}" if mark else ""
            raise MtkdError(f"config {path}: invalid YAML{where}: {getattr(e, 'problem', e)}") from None
        except UnicodeDecodeError:
            raise MtkdError(f"config {path}: not a UTF-8 text file") from None
        if not isinstance(data, dict):
            raise MtkdError(f"config {path}: top level must be a mapping of keys to values")
    data = _normalise_tasks(data)
    base = path.parent if path is not None else Path.cwd()
    _map_paths(data, lambda p: _absolute(p, base), base)
    data = apply_overrides(data, overrides)
    _map_paths(data, lambda p: _absolute(p, Path.cwd()), Path.cwd())   # an override's path: relative to where mtkd runs
    if isinstance(data.get("seeds"), list) and data["seeds"] and "seed" not in data:
        data["seed"] = data["seeds"][0]   # `seeds: [1, 2, 3]` alone: the first is the run seed
    cfg = _build(RunConfig, data, "")
    base = Path(path).parent if path is not None else Path.cwd()
    cfg.teachers = [_absolute_files(t, base) for t in cfg.teachers]
    return validate(cfg)


def _absolute_files(t: TeacherConfig, base: Path) -> TeacherConfig:
    """A logits teacher's relative file paths are relative to the config file's folder; saved absolute."""
    if not t.files:
        return t
    return dataclasses.replace(t, files={k: str((base / Path(v).expanduser()).resolve()) for k, v in t.files.items()})


def _normalise_tasks(data: dict) -> dict:
    tasks = data.get("tasks")
    if isinstance(tasks, list):
        data["tasks"] = [{"name": t} if isinstance(t, str) else t for t in tasks]
    return data


def to_dict(cfg: RunConfig) -> dict:
    return dataclasses.asdict(cfg)


def dump_yaml(cfg: RunConfig, folder: Path | None = None) -> str:
    """The resolved config as YAML. With `folder` (the run directory it is saved in), every local path is
    written relative to that folder, so the file means the same from any working directory."""
    data = to_dict(cfg)
    if folder is not None:
        base = os.path.abspath(folder)
        _map_paths(data, lambda p: os.path.relpath(p, base) if os.path.isabs(p) else p, None)
    return yaml.safe_dump(data, sort_keys=False)


# ---------------------------------------------------------------- paths
# A relative path is relative to the file it is written in (a config's folder; RUN/config.yaml's is the
# run directory), or to the working directory when given as a command-line override. Inside a loaded
# config every local path is absolute.
PATH_KEYS = {"tasks": ("glue_dir", "train_file", "eval_file", "transfer_file"), "teachers": ("files",),
             "student": ()}   # str or {name: path}; and tasks' extra_eval[].file
MAYBE_PATH_KEYS = {"tasks": ("dataset",), "teachers": ("model",), "student": ("model",)}   # or a hub id / builtin name


def _looks_local(value: str, base: Path) -> bool:
    return value.startswith((".", "/", "~")) or (base / value).exists()


def _absolute(value: str, base: Path) -> str:
    p = Path(value).expanduser()
    return str(p) if p.is_absolute() else os.path.normpath(os.path.join(os.path.abspath(base), p))


def _map_paths(data: dict, fn, base: Path | None) -> None:
    """Apply `fn` to every local path of a raw config dict (in place). A model or dataset name is a
    path when absolute, or (with `base`) when it starts with . / ~ or names something under `base`."""
    for section in PATH_KEYS:
        items = data.get(section)
        items = items if isinstance(items, list) else [items]
        for item in items:
            if not isinstance(item, dict):
                continue
            extras = item.get("extra_eval") if section == "tasks" else None
            for extra in extras if isinstance(extras, list) else []:
                if isinstance(extra, dict) and isinstance(extra.get("file"), str) and extra["file"]:
                    extra["file"] = fn(extra["file"])
            for key in PATH_KEYS[section]:
                if isinstance(item.get(key), str) and item[key]:
                    item[key] = fn(item[key])
                elif isinstance(item.get(key), dict):
                    item[key] = {k: fn(v) if isinstance(v, str) and v else v for k, v in item[key].items()}
            for key in MAYBE_PATH_KEYS[section]:
                value = item.get(key)
                if isinstance(value, str) and value and (os.path.isabs(value) or base is not None and _looks_local(value, base)):
                    item[key] = fn(value)
