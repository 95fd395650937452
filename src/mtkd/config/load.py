"""The config from YAML: a strict YAML reader (a key given twice is an error), dotted `key=value` overrides,
local paths made absolute (relative to the file they are written in), every value checked against its
field's type with a one-line error naming the key (and the closest key when it is unknown), then
validate.py's rules; and the resolved config written back as RUN/config.yaml."""
from __future__ import annotations

import dataclasses
import math
import os
import types
import typing
from pathlib import Path

import yaml

from ..errors import MtkdError
from .schema import KIND_DEFAULTS, TEACHER_COMMON, TEACHER_FIELDS, RunConfig, TaskConfig, TeacherConfig, to_dict
from .validate import did_you_mean, validate


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
            raise MtkdError(f"config: unknown key '{where + '.' if where else ''}{key}'{did_you_mean(str(key), fields)}")
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
