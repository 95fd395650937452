"""The config's rules: `validate(cfg)` checks every value and every rule across fields once, when the config
is loaded, and refuses the first problem in one line naming the key (with the closest allowed name when
there is one). Task names and data are checked when the task loads (tasks/), not here."""
from __future__ import annotations

import difflib

from ..errors import MtkdError
from ..registry import PRECISIONS, SCHEDULES, SPLITS, STRATEGIES, TRACKERS
from .schema import (GROUP_BY, METRICS, MODES, POOLINGS, RESERVED_TASK_NAMES, SOURCES, SPLIT_NAMES, TEACHER_KINDS,
                     RunConfig, StudentConfig, TaskConfig, TeacherConfig)


def safe_name(name: str) -> bool:
    """Names become folder names: letters, digits, '-' and '_' only, so no write can leave the run dir."""
    return name.replace("_", "").replace("-", "").isalnum()


def did_you_mean(word: str, options) -> str:
    close = difflib.get_close_matches(word, list(options), n=1) or \
        [o for o in options if word and str(o).lower().startswith(word.lower())][:1]   # acc -> accuracy
    return f" (did you mean '{close[0]}'?)" if close else ""


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
            raise MtkdError(f"config: unknown fusion strategy '{s}'{did_you_mean(s, STRATEGIES)}; known: {', '.join(STRATEGIES)}")
    if isinstance(d.single_teacher, list):
        names = [t.name for t in cfg.teachers]
        for n in d.single_teacher:
            if n not in names:
                raise MtkdError(f"config: distill.single_teacher names '{n}', which is not a teacher"
                                f"{did_you_mean(n, names)}; teachers: {', '.join(names)}")
    if d.mode not in MODES:
        raise MtkdError(f"config: distill.mode must be one of {', '.join(MODES)}, got '{d.mode}'")
    if not safe_name(cfg.name):   # the default run directory is runs/<name>
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
                        f"{did_you_mean(cfg.tracking, TRACKERS)}")
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
            raise MtkdError(f"config: teacher '{t.name}': unknown kind '{t.kind}'{did_you_mean(t.kind, TEACHER_KINDS)}")
        if not safe_name(t.name):
            raise MtkdError(f"config: teacher name '{t.name}' may only use letters, digits, '-' and '_'")
        if t.name == "no_kd" or t.name.startswith(("kd_", "multi_")):   # teachers and students share one table
            raise MtkdError(f"config: teacher name '{t.name}' collides with the students' names (no_kd, kd_<teacher>, "
                            f"multi_<strategy>); rename the teacher")
        if t.crossfit != 0 and t.crossfit < 2:
            raise MtkdError(f"config: teachers.{t.name}.crossfit must be 0 (off) or a number of folds >= 2, got {t.crossfit}")
        if t.crossfit and d.mode == "online":   # online runs the teacher fitted on all of train: in-sample logits
            raise MtkdError(f"config: teachers.{t.name}.crossfit needs distill.mode: cached (online mode would label "
                            f"train with the teacher fitted on it)")
        if t.bag is not None and (isinstance(t.bag, bool) or not isinstance(t.bag, int) or t.bag < 0):
            raise MtkdError(f"config: teachers.{t.name}.bag must be a seed >= 0 (or unset), got {t.bag!r}")
        if t.bag is not None and t.crossfit:
            raise MtkdError(f"config: teachers.{t.name}: bag and crossfit together are not supported (a bagged "
                            f"teacher's train logits are in-sample for the rows it drew); use one")
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
    for t in cfg.tasks:   # task names are checked against the registry when the task loads (tasks/sources.py)
        _check_task(t)
    return cfg


def _check_task(t: TaskConfig):
    where = f"config: task '{t.name}'"
    if t.source not in SOURCES:
        raise MtkdError(f"{where}: unknown source '{t.source}'{did_you_mean(t.source, SOURCES)}")
    if t.metric is not None and t.metric not in METRICS:
        raise MtkdError(f"{where}: unknown metric '{t.metric}'{did_you_mean(t.metric, METRICS)}")
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
    if not safe_name(t.name):
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
        if not e.name or not safe_name(e.name) or e.name in SPLIT_NAMES:
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
                        f"got '{st.sparsity_schedule}'{did_you_mean(st.sparsity_schedule, SCHEDULES)}")
    if not 0.0 <= st.sparsity_start < st.sparsity_end <= 1.0:
        raise MtkdError(f"config: student.sparsity_start and sparsity_end must satisfy 0 <= start < end <= 1 "
                        f"(fractions of training), got {st.sparsity_start} and {st.sparsity_end}")


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
        if t.crossfit or t.bag is not None:
            raise MtkdError(f"{where}.{'crossfit' if t.crossfit else 'bag'} needs a teacher that is fitted; a "
                            f"logits-file teacher is read, not fitted")
        if mode == "online":
            raise MtkdError(f"{where}: a logits-file teacher has no model to run online; use distill.mode: cached")


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
