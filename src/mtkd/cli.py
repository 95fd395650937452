"""The command line: parses, calls the library, prints. Every error a user can cause is one line
on stderr and a non-zero exit (a traceback only with --debug)."""
from __future__ import annotations

import argparse
import sys
from importlib import resources
from pathlib import Path

from .errors import MtkdError

STAGE_COMMANDS = {   # the study's scripts, as stages of one cached pipeline
    "finetune-teachers": "teachers",
    "extract-logits": "logits",
    "train-baseline": "baseline",
    "distill-single": "single",
    "distill-multi": "multi",
    "evaluate": "evaluate",
}


def demo_config_path(transfer: bool = False) -> Path:
    """The packaged demo config; `transfer`: the demo with a transfer set and an extra eval set."""
    return Path(str(resources.files("mtkd") / "configs" / ("demo_transfer.yaml" if transfer else "demo.yaml")))


class UsageError(Exception):
    """A command line argparse refuses (unknown command, missing argument)."""


class _Parser(argparse.ArgumentParser):
    """argparse, but a bad command line is one line on stderr (see main), not usage + error."""

    def error(self, message):
        if "invalid choice:" in message:   # argparse lists every choice; name the closest one instead
            import difflib
            import re
            m = re.search(r"invalid choice: '([^']*)' \(choose from (.*)\)", message)
            if m:
                choices = re.findall(r"'([^']*)'", m.group(2))
                close = difflib.get_close_matches(m.group(1), choices, n=1)
                hint = f" (did you mean '{close[0]}'?)" if close else ""
                message = f"unknown command '{m.group(1)}'{hint}; commands: {', '.join(choices)}"
        raise UsageError(f"{message} (see {self.prog} --help)")


EXAMPLES = {   # `mtkd COMMAND --help` ends with these (argparse epilog); docs/reference/cli.md lists them too
    "init": ["mtkd init --data reviews.csv --out mtkd.yaml"],
    "demo": ["mtkd demo --out runs/demo", "mtkd demo --transfer"],
    "run": ["mtkd run mtkd.yaml --out runs/reviews", "mtkd run mtkd.yaml distill.alpha=0.5 student.epochs=2",
            "mtkd run mtkd.yaml --seeds 3", "mtkd run runs/reviews/config.yaml"],
    "headroom": ["mtkd headroom mtkd.yaml --out runs/reviews"],
    "list": ["mtkd list strategies"],
    "export-data": ["mtkd export-data mtkd.yaml --out to_score"],
    "export-logits": ["mtkd export-logits runs/reviews minilm --out minilm_scores"],
    "verify-logits": ["mtkd verify-logits runs/reviews"],
    "analyze": ["mtkd analyze runs/reviews"],
    "report": ["mtkd report runs/reviews"],
    "sweep": ["mtkd sweep runs/reviews --param distill.temperature=1,2,4,8",
              "mtkd sweep runs/reviews --param distill.temperature=2,6 --param distill.alpha=0.5,0.9 --ray"],
    "seeds": ["mtkd seeds runs/reviews --seeds 1,2,3"],
    "predict": ["mtkd predict runs/reviews --input new.csv --output preds.csv"],
    "export": ["mtkd export runs/reviews --out my_student",
               "mtkd export runs/reviews --out my_student_int8 --quantize int8"],
}
EXAMPLES |= {name: [f"mtkd {name} mtkd.yaml --out runs/reviews"] for name in STAGE_COMMANDS}


def _epilog(name: str) -> str | None:
    lines = EXAMPLES.get(name)
    return "example" + ("s" if len(lines) > 1 else "") + ":\n" + "\n".join(f"  {x}" for x in lines) if lines else None


def _parser() -> argparse.ArgumentParser:
    from . import __version__
    p = _Parser(prog="mtkd", description="Multi-teacher knowledge distillation of text classifiers.",
                epilog="start here: mtkd init --data FILE.csv, then mtkd headroom / mtkd run on the config it writes; "
                       "mtkd COMMAND --help shows an example")
    p.add_argument("--version", action="version", version=f"mtkd {__version__}")
    p.add_argument("--debug", action="store_true", help="show tracebacks")
    sub = p.add_subparsers(dest="command", required=True)
    add_parser = sub.add_parser

    def with_debug(*a, **k):   # --debug is accepted after the command too; the epilog shows an example
        k.setdefault("epilog", _epilog(a[0]))
        k.setdefault("formatter_class", argparse.RawDescriptionHelpFormatter)
        k.setdefault("description", k.get("help"))
        sp = add_parser(*a, **k)
        sp.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="show tracebacks")
        return sp
    sub.add_parser = with_debug

    it = sub.add_parser("init", help="write a commented starter config for your labelled data file "
                                     "(text and label columns guessed from its header)")
    it.add_argument("--data", required=True, metavar="FILE",
                    help="your labelled file: .csv (header row), .tsv, .jsonl, .json or .parquet")
    it.add_argument("--out", default="mtkd.yaml", help="config to write (default: mtkd.yaml)")
    it.add_argument("--force", action="store_true", help="overwrite --out if it exists")

    d = sub.add_parser("demo", help="the built-in demo, end to end, offline")
    d.add_argument("--out", help="run directory (default: runs/demo, or runs/demo_transfer with --transfer)")
    d.add_argument("--transfer", action="store_true",
                   help="600 labelled sentences + a transfer set of 1,500 unlabelled ones, and an out-of-domain eval set")
    d.add_argument("--recompute", action="store_true", help="rebuild stale cached stages instead of refusing them")
    d.add_argument("overrides", nargs="*", default=[], help="key=value config overrides")

    def run_like(name, help_, trains_students=True):
        r = sub.add_parser(name, help=help_)
        r.add_argument("config", help="config YAML (or a run directory holding config.yaml)")
        r.add_argument("--out", help="run directory (default: the config's run directory or runs/<name>)")
        r.add_argument("--recompute", action="store_true", help="rebuild stale cached stages instead of refusing them")
        if trains_students:   # the teacher-only commands train no student: a --seeds there would do nothing
            r.add_argument("--seeds", type=int, metavar="N",
                           help="train every student at N seeds: the run seed, then 1, 2, 3, ... (teachers once)")
        r.add_argument("--reuse", action="append", default=[], metavar="RUN_DIR",
                       help="another run directory: its finished stages with exactly the same key (data, teachers, "
                            "logits, students) are hard-linked instead of rebuilt (repeatable)")
        r.add_argument("overrides", nargs="*", default=[], help="key=value config overrides, e.g. distill.alpha=0.5")
    run_like("run", "run the whole pipeline: teachers, logits, students, evaluation, report")
    run_like("headroom", "before any student: what the teachers know together beyond the best one (data, teacher "
                         "and logit stages only, cached; per task on validation and eval)", trains_students=False)
    for name, stage in STAGE_COMMANDS.items():
        run_like(name, f"run the pipeline up to the '{stage}' stage",
                 trains_students=stage not in ("teachers", "logits"))

    ls = sub.add_parser("list", help="every registered fusion strategy, teacher kind or task, one line each")
    ls.add_argument("what", choices=("strategies", "teachers", "tasks"))
    ed = sub.add_parser("export-data", help="the examples (and fingerprints) a teacher elsewhere must score (kind: logits)")
    ed.add_argument("config", help="config YAML (or a run directory holding config.yaml)")
    ed.add_argument("--out", required=True, help="folder: <task>/<split>.csv|jsonl and <task>/fingerprints.json")
    ed.add_argument("--format", default="csv", help="csv (default) or jsonl")
    el = sub.add_parser("export-logits", help="a run's teacher logits as the files of a kind: logits teacher")
    el.add_argument("run_dir")
    el.add_argument("teacher", help="teacher name in that run")
    el.add_argument("--out", required=True, help="folder: <task>/<split>.npy + <split>.json sidecars")
    v = sub.add_parser("verify-logits", help="check every cached logit file of a run")
    v.add_argument("run_dir")
    a = sub.add_parser("analyze", help="analysis tables and plots of a finished run "
                       "(or of a published folder with evidence/)")
    a.add_argument("run_dir", help="a run directory or a published folder holding evidence/")
    a.add_argument("--split", default="validation", help="split for teacher confidence (validation or eval)")
    rp = sub.add_parser("report", help="report.md and report.html of a finished run, analysed first when its "
                        "analysis is missing or stale; or of a published folder (with evidence/: re-analysed from "
                        "it; with only analysis/: shown as written)")
    rp.add_argument("run_dir", help="a run directory or a published folder (e.g. docs/results/study_cpu)")

    def sweep_like(name, help_):
        s = sub.add_parser(name, help=help_)
        s.add_argument("run_dir", help="run directory holding config.yaml; its teachers and logits are reused")
        s.add_argument("--strategies", help="comma-separated fusion strategies (default: the run's)")
        s.add_argument("--no-single", action="store_true", help="skip the single-teacher students")
        s.add_argument("--no-baseline", action="store_true", help="skip the no-KD student")
        s.add_argument("--recompute", action="store_true", help="rebuild stale cached stages instead of refusing them")
        s.add_argument("--ray", nargs="?", const="local", metavar="ADDRESS",
                       help="run the points as Ray tasks: on a local Ray (no ADDRESS) or a cluster (auto, ray://HOST:10001)")
        s.add_argument("--cpus-per-task", type=float, metavar="N", help="with --ray: CPUs per point (default: config ray.cpus_per_task)")
        s.add_argument("--gpus-per-task", type=float, metavar="F", help="with --ray: GPU share per point (default: config ray.gpus_per_task)")
        return s
    sw = sweep_like("sweep", "retrain the students over one or two student-side params (1-D sweep or grid), "
                                   "others fixed")
    sw.add_argument("--param", action="append", required=True, metavar="KEY=V1,V2,...",
                    help="e.g. distill.temperature=1,2,4,8; give it twice for a joint grid; one value = a fixed setting")
    sw.add_argument("--name", help="folder under RUN_DIR/sweeps/ (default: from the params, e.g. T_x_alpha)")
    sd = sweep_like("seeds", "retrain the students at several seeds (teachers reused) and summarise across seeds")
    sd.add_argument("--seeds", required=True, help="comma-separated seeds, e.g. 1,2,3")
    sd.add_argument("--name", default="seeds", help="folder under RUN_DIR/sweeps/")

    pr = sub.add_parser("predict", help="label new text with a trained student of a run")
    pr.add_argument("run_dir")
    pr.add_argument("--input", required=True, help="CSV/TSV/JSONL/JSON/Parquet file with the task's text column(s)")
    pr.add_argument("--output", help="CSV (or .jsonl) to write; default: stdout")
    pr.add_argument("--model", help="student method, e.g. multi_average (default: the best on validation)")
    pr.add_argument("--task", help="task name (default: the run's only task)")
    ex = sub.add_parser("export", help="a student as a folder transformers.pipeline loads")
    ex.add_argument("run_dir")
    ex.add_argument("--out", required=True, help="folder to create")
    ex.add_argument("--model", help="student method (default: the best on validation)")
    ex.add_argument("--task", help="task name (default: the run's only task)")
    ex.add_argument("--onnx", action="store_true", help="also onnx/model.onnx (needs optimum[onnxruntime])")
    ex.add_argument("--quantize", metavar="int8", help="int8: dynamic int8 Linear layers (model_int8.pt, loaded by "
                    "mtkd.export.load_quantized; with --onnx: onnx/model_int8.onnx), checked on every eval example")
    return p


def _run_dir(path: str) -> Path:
    p = Path(path)
    if not (p / "config.yaml").is_file():
        raise MtkdError(f"{p} is not a run directory (no config.yaml)")
    return p


def _parse(argv):
    """parse_args, but overrides may also follow the options (`mtkd run cfg.yaml --out X k=v`),
    which plain argparse refuses once the positionals before `--out` were consumed."""
    parser = _parser()
    args, extra = parser.parse_known_args(argv)
    if extra:
        if not hasattr(args, "overrides") or any(x.startswith("-") for x in extra):
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
        args.overrides = [*args.overrides, *extra]
    return args


def main(argv=None) -> int:
    try:
        args = _parse(argv)
    except UsageError as e:
        print(f"mtkd: error: {e}", file=sys.stderr)
        return 2
    try:
        return _dispatch(args)
    except MtkdError as e:
        if args.debug:
            raise
        print(f"mtkd: error: {_one_line(str(e))}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("mtkd: interrupted; rerun the same command to resume", file=sys.stderr)
        return 130
    except OSError as e:  # the environment: disk full, permission denied, a path that is a file
        if args.debug:
            raise
        where = f": {e.filename}" if e.filename else ""
        print(f"mtkd: error: {_one_line(e.strerror or str(e))}{where}", file=sys.stderr)
        return 2
    except Exception as e:  # a bug or an unforeseen environment problem: still one line
        if args.debug:
            raise
        msg = str(e).splitlines()[0] if str(e) else ""
        print(f"mtkd: error: {type(e).__name__}: {msg} (rerun with --debug for the traceback)", file=sys.stderr)
        return 1


def _headroom(args) -> int:
    """mtkd headroom: the data, teacher and logit stages (cached, as `mtkd run` would build them), then the
    headroom tables of analysis/headroom.py, printed and written to RUN/headroom/."""
    from .analysis import headroom
    from .config import load_config
    from .io import atomic_write_text
    from .pipeline.run import run_config
    from .tables import Table
    cfg = load_config(args.config, args.overrides)
    if len(cfg.teachers) < 2:   # before anything is trained
        raise MtkdError(f"headroom compares several teachers; the config has {len(cfg.teachers)}")
    out = run_config(args.config, args.out, args.overrides, "logits", args.recompute, reuse=args.reuse)
    results = [headroom.from_logit_store(out, t.name, [x.name for x in cfg.teachers]) for t in cfg.tasks]
    rows, pairs = headroom.table_rows(results)
    md = headroom.markdown(results)
    folder = out / "headroom"
    folder.mkdir(exist_ok=True)
    atomic_write_text(folder / "headroom.csv", Table(headroom.COLUMNS, rows).to_csv())
    atomic_write_text(folder / "pairs.csv", Table(headroom.PAIR_COLUMNS, pairs).to_csv())
    atomic_write_text(folder / "headroom.md", md + "\n")
    print(md)
    if len(cfg.teachers) >= 3:   # which teams of the teachers leave room (every subset of two or more)
        teams = [r for t in cfg.tasks for r in headroom.from_logit_store(out, t.name, [x.name for x in cfg.teachers],
                                                                          subsets=True)]
        from .tables import cell
        atomic_write_text(folder / "subsets.csv", Table(headroom.SUBSET_COLUMNS,
                                                        [[cell(r[c]) for c in headroom.SUBSET_COLUMNS] for r in teams]).to_csv())
        atomic_write_text(folder / "subsets.md", headroom.subsets_markdown(teams) + "\n")
        headroom.plot_subsets(teams, folder / "subsets.png")
        print(f"which teams of teachers have headroom: {folder / 'subsets.md'}")
    print(f"done: {folder / 'headroom.md'}")
    return 0


def _one_line(msg: str) -> str:
    return " ".join(msg.split("\n")).strip()


def _dispatch(args) -> int:
    from .pipeline.run import run_config   # here, not at the top: it imports torch (mtkd --help stays quick)
    if args.command == "demo":
        out = run_config(demo_config_path(args.transfer),
                         args.out or ("runs/demo_transfer" if args.transfer else "runs/demo"),
                         args.overrides, "report", args.recompute)
        print(f"done: {out / 'results' / 'master_results.md'}")
        print((out / "results" / "master_results.md").read_text())
        return 0
    if args.command == "headroom":
        return _headroom(args)
    if args.command == "init":
        from .starter import init
        g = init(args.data, args.out, args.force)
        classes = ", ".join(f"{n} ({c:,})" for n, c in g["counts"].items())
        print(f"{g['path']}: {g['rows']:,} rows; text: {', '.join(g['text_columns'])}; label: {g['label_column']} "
              f"-> {len(g['counts'])} classes: {classes}")
        print(f"wrote {args.out} (task '{g['name']}', teachers minilm + tfidf, student minilm 2 layers); check the "
              f"guessed columns, add teachers, then:\n  mtkd headroom {args.out}\n  mtkd run {args.out}")
        return 0
    if args.command == "run" or args.command in STAGE_COMMANDS:
        until = STAGE_COMMANDS.get(args.command, "report")
        out = run_config(args.config, args.out, args.overrides, until, args.recompute, n_seeds=getattr(args, "seeds", None),
                         reuse=args.reuse)
        from .runtime import is_main
        if not is_main():   # under accelerate launch, rank 0 speaks for the run
            return 0
        table = out / "results" / "master_results.md"
        if until in ("evaluate", "report") and table.is_file():
            print(table.read_text())
        print(f"done: {out}")
        return 0
    if args.command == "list":
        for name, line in registry(args.what).items():
            print(f"{name:22s} {line}")
        return 0
    if args.command in ("export-data", "export-logits"):
        from .teachers.files import export_data, export_logits
        files = (export_data(args.config, Path(args.out), args.format) if args.command == "export-data"
                 else export_logits(_run_dir(args.run_dir), args.teacher, Path(args.out)))
        print("\n".join(str(f) for f in files))
        print(f"done: {len(files)} files in {args.out}")
        return 0
    if args.command == "verify-logits":
        from .pipeline.logits import verify_run
        lines, problems = verify_run(_run_dir(args.run_dir))
        print("\n".join(lines + [f"FAIL {p}" for p in problems]))
        if problems:   # the full list is on stdout; stderr gets one line
            raise MtkdError(f"{len(problems)} problem(s) in the cached logits of {args.run_dir}; first: {problems[0]}")
        if not lines:
            raise MtkdError(f"no cached logits in {args.run_dir}")
        print(f"all {len(lines)} logit files verified")
        return 0
    if args.command == "analyze":
        from .analysis import analyze
        print(f"done: {analyze(_run_dir(args.run_dir), split=args.split)}")
        return 0
    if args.command == "report":
        from .analysis.run import ensure_analysis
        from .report import build_report
        ensure_analysis(_run_dir(args.run_dir))   # visibly, when missing or stale
        md, html = build_report(_run_dir(args.run_dir))
        print(f"done: {md}\n      {html}")
        return 0
    if args.command in ("sweep", "seeds"):
        from . import sweeps
        opts = dict(strategies=_csv(args.strategies) if args.strategies is not None else None,
                    single=not args.no_single, baseline=not args.no_baseline, recompute=args.recompute,
                    ray=_on_ray(args))
        if args.command == "sweep":
            folder = sweeps.run_sweep(_run_dir(args.run_dir), args.param, args.name, **opts)
            shown = ["sweep_results.md", "best.md"]
        else:
            folder = sweeps.run_seeds(_run_dir(args.run_dir), _csv(args.seeds), args.name, **opts)
            shown = ["seed_summary.md"]
        from .runtime import is_main
        if not is_main():   # under accelerate launch, rank 0 wrote and shows the tables
            return 0
        print("\n".join((folder / name).read_text() for name in shown))
        print(f"done: {folder}")
        return 0
    if args.command == "predict":
        from .predict import find_student, predict_file
        student = find_student(_run_dir(args.run_dir), args.model, args.task)
        _, n = predict_file(student, args.input, args.output)
        if args.output:
            print(f"done: {n} predictions of {student.task}/{student.method} in {args.output}")
        return 0
    if args.command == "export":
        from .export import export
        from .predict import find_student
        student = find_student(_run_dir(args.run_dir), args.model, args.task)
        print(f"done: {export(student, args.out, args.onnx, quantize=args.quantize)} ({student.task}/{student.method})")
        return 0
    raise MtkdError(f"unknown command {args.command}")


def registry(what: str) -> dict[str, str]:
    """name -> one line, for `mtkd list`: strategies from fusion.STRATEGIES (the first line of each
    docstring, so a new strategy appears by being registered), teacher kinds, tasks."""
    if what == "strategies":
        from .fusion import STRATEGIES, describe
        return {name: describe(name) for name in STRATEGIES}
    if what == "teachers":
        from .config import TEACHER_KINDS
        return dict(TEACHER_KINDS)
    from .tasks import METRIC_SHORT, REGISTRY
    return {name: f"{' / '.join(s.label_names)}; {METRIC_SHORT[s.metric]}"
                  + (f"; GLUE {s.glue_folder}, hf glue/{s.hf_config}" if s.glue_folder else "; built in, generated")
            for name, s in REGISTRY.items()} | {"<any name>": "source: file, train_file + eval_file (CSV/TSV/JSONL)"}


def _on_ray(args):
    """--ray [ADDRESS] with its resources (flags, else the run's config), or None: one point after the other."""
    if args.ray is None:
        if args.cpus_per_task is not None or args.gpus_per_task is not None:
            raise MtkdError("--cpus-per-task and --gpus-per-task go with --ray")
        return None
    from .config import load_config
    from .sweeps import OnRay
    ray = load_config(_run_dir(args.run_dir) / "config.yaml").ray
    cpus = args.cpus_per_task if args.cpus_per_task is not None else ray.cpus_per_task
    gpus = args.gpus_per_task if args.gpus_per_task is not None else ray.gpus_per_task
    if not cpus > 0 or not gpus >= 0:
        raise MtkdError(f"--cpus-per-task must be > 0 and --gpus-per-task >= 0, got {cpus} and {gpus}")
    return OnRay(None if args.ray == "local" else args.ray, cpus, gpus)


def _csv(text: str) -> list[str]:
    return [x.strip() for x in text.split(",") if x.strip()]


if __name__ == "__main__":
    sys.exit(main())
