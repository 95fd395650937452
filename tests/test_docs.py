"""The documentation cannot drift from the code: the config and CLI reference pages are generated
(mtkd.docgen) and the committed ones must equal what the code generates, every config key has an entry,
every command has an example, the MkDocs site builds in strict mode (no broken internal link or
anchor), and the README keeps CI's commands byte for byte."""
import dataclasses
import re
import subprocess
import sys
import typing
from pathlib import Path

import pytest

from mtkd import __version__, config, docgen
from mtkd.cli import EXAMPLES, _parser, main

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
README = ROOT / "README.md"


def all_config_keys(cls=config.RunConfig, prefix="") -> list[str]:
    """Every key reachable from RunConfig by walking the dataclasses' type hints (a new nested section
    is found here even if docgen.SECTIONS does not list it)."""
    out = []
    hints = typing.get_type_hints(cls)
    def walk(t, key):
        if dataclasses.is_dataclass(t):
            return all_config_keys(t, key + ".")
        origin, args = typing.get_origin(t), typing.get_args(t)
        if origin is list and args and dataclasses.is_dataclass(args[0]):   # list[TaskConfig]
            return all_config_keys(args[0], key + "[].")
        return [k for a in args if a is not type(None) for k in walk(a, key)]   # X | None
    for f in dataclasses.fields(cls):
        out += [prefix + f.name, *walk(hints[f.name], prefix + f.name)]
    return out


def test_config_reference_lists_every_key():
    text = (DOCS / "reference" / "config.md").read_text(encoding="utf-8")
    keys = all_config_keys()
    assert sorted(keys) == sorted(docgen.keys()), "docgen.SECTIONS misses a config section"
    missing = [k for k in keys if f"| `{k}` |" not in text]
    assert not missing, f"docs/reference/config.md has no entry for {missing}; run python -m mtkd.docgen"


def test_every_config_key_has_a_meaning():
    generated = docgen.config_reference()
    empty = [line.split("|")[1].strip() for line in generated.splitlines()
             if line.startswith("| `") and line.rstrip().endswith("| — |")]
    assert not empty, f"no comment in config.py (nor docgen.NOTES) says what {empty} mean"


@pytest.mark.parametrize("page", sorted(docgen.PAGES))
def test_committed_reference_is_what_the_code_generates(page):
    committed = (DOCS / page).read_text(encoding="utf-8")
    assert committed == docgen.PAGES[page](), f"docs/{page} is stale: run python -m mtkd.docgen"
    assert docgen.main(["--docs", str(DOCS), "--check"]) == 0


def test_reference_defaults_are_the_dataclass_defaults():
    text = docgen.config_reference()
    assert "| `distill.temperature` | `float \\| str` | `6.0` |" in text
    assert "| `student.lr` | `float` | `0.0004` |" in text
    assert "| `teachers[].epochs` | `float` | `1.0`; cnn: `5.0` | hf, cnn |" in text
    assert "| `distill.strategies` | `list[str]` | `[average, weighted, best_per_sample, learned_gating]` |" in text


def subcommands():
    return docgen._subcommands(_parser())


def test_every_command_has_an_example_and_a_reference_section():
    text = (DOCS / "reference" / "cli.md").read_text(encoding="utf-8")
    for name, sp in subcommands().items():
        assert name in EXAMPLES and sp.epilog and f"mtkd {name}" in sp.epilog, name
        assert f"\n## mtkd {name}\n" in text, name
        for example in EXAMPLES[name]:   # every example parses
            argv = example.split()[1:]
            assert sp.prog.split()[-1] == argv[0]
            _parser().parse_known_args(argv)


def test_help_ends_with_an_example(capsys):
    with pytest.raises(SystemExit) as e:
        main(["export", "--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    assert "examples:\n  mtkd export runs/reviews --out my_student\n" in out


def test_version(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--version"])
    assert e.value.code == 0
    assert capsys.readouterr().out.strip() == f"mtkd {__version__}"
    r = subprocess.run([sys.executable, "-m", "mtkd", "--version"], capture_output=True, text=True)
    assert r.returncode == 0 and r.stdout.strip() == f"mtkd {__version__}"


def test_mkdocs_builds_strict(tmp_path):
    """mkdocs build --strict fails on a broken internal link or anchor (mkdocs.yml sets validation)."""
    pytest.importorskip("mkdocs")
    r = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-q", "-f", str(ROOT / "mkdocs.yml"),
                        "-d", str(tmp_path / "site")], capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 0, r.stdout + r.stderr
    assert (tmp_path / "site" / "reference" / "config" / "index.html").is_file()


def test_every_docs_page_is_in_the_nav():
    import yaml
    nav = yaml.safe_load((ROOT / "mkdocs.yml").read_text())["nav"]

    def pages(node):
        if isinstance(node, str):
            yield node
        elif isinstance(node, list):
            for x in node:
                yield from pages(x)
        elif isinstance(node, dict):
            for x in node.values():
                yield from pages(x)
    listed = set(pages(nav))
    top = {str(p.relative_to(DOCS)) for p in DOCS.glob("*.md")} | {str(p.relative_to(DOCS)) for p in
                                                                    (DOCS / "reference").glob("*.md")}
    assert top <= listed, f"not in mkdocs.yml's nav: {sorted(top - listed)}"


def test_readme_keeps_ci_commands_and_is_short():
    readme = README.read_text(encoding="utf-8")
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()
    for marker in ("# --- README: set-up ---", "# --- README: tests ---"):
        command = ci[ci.index(marker) + 1]
        assert command in readme.splitlines(), f"README lost CI's command {command!r}"
    assert 'pip install torch==2.13.0 && pip install -e ".[dev]"' in readme.splitlines()
    assert 'python -m pytest -q -m "not slow"' in readme
    assert len(readme.splitlines()) <= 220, "the README is the quickstart: move detail into docs/"
    for heading in ("## Results", "### A student to ship"):
        assert heading in readme.splitlines(), heading


def test_readme_links_resolve():
    readme = README.read_text(encoding="utf-8")
    links = re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", readme)
    local = [link for link in links if not re.match(r"[a-z]+://", link)]
    assert local, "the README links into docs/"
    missing = [link for link in local if not (ROOT / link).exists()]
    assert not missing, f"README links to missing files: {missing}"


def test_slow_marker_is_registered():
    import tomllib
    markers = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["pytest"]["ini_options"]["markers"]
    assert any(m.startswith("slow:") for m in markers)
