"""analyze + build_report end to end on a fake run directory (tests/_fake_run.py)."""
import csv
import json
import os

import pytest

from _fake_run import build_fake_run
from mtkd.analysis import analyze
from mtkd.errors import MtkdError
from mtkd.report import build_report
from mtkd.report.tables import Table

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
TABLES = ["advantage", "gap_closed", "ranking", "agreement_regions", "agreement_accuracy", "failure_categories",
          "teacher_confidence", "teacher_pairwise_agreement", "teacher_ceilings", "calibration"]
FIGURES = ["gap_analysis.png", "agreement_breakdown.png", "failure_categories.png", "ranking_heatmap.png",
           "reliability_bin.png", "reliability_tri.png"]


def _metric(run, task, method):
    man = json.loads((run / task / "eval" / "manifest.json").read_text())
    return next(m["metrics"]["accuracy"] for m in man["models"] if m["method"] == method)


def _rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_analyze_writes_every_table_and_plot(tmp_path):
    run = build_fake_run(tmp_path)
    out = analyze(run)
    assert out == run / "analysis"
    for name in TABLES:
        assert (out / f"{name}.csv").is_file() and (out / f"{name}.md").is_file()
    for name in FIGURES:
        data = (out / name).read_bytes()
        assert data[:8] == PNG_MAGIC and len(data) > 10_000
    assert not list(out.glob(".*tmp"))   # atomic writes leave no temporaries
    man = json.loads((out / "manifest.json").read_text())
    assert man["split"] == "validation" and set(man["inputs"]) == {"bin", "tri"}
    # numbers in the tables agree with the fake run's manifest metrics
    adv = {r["task"]: r for r in _rows(out / "advantage.csv")}
    bin_adv = _metric(run, "bin", "multi_average") - _metric(run, "bin", "kd_t_a")
    assert float(adv["bin"]["advantage (pp)"]) == pytest.approx(bin_adv, abs=0.006)
    assert adv["bin"]["verdict"] == "multi-teacher better"
    assert adv["tri"]["verdict"] == "single-teacher better"
    regions = [r for r in _rows(out / "agreement_regions.csv") if r["task"] == "tri"]
    assert [r["region"] for r in regions] == ["all agree", "partial disagree", "full disagree"]
    assert sum(int(r["examples"]) for r in regions) == 60
    fails = _rows(out / "failure_categories.csv")
    for r in fails:
        assert int(r["errors"]) == sum(int(r[c]) for c in ("all teachers wrong", "transfer failure",
                                                             "error on disagreement"))
    success = json.loads((out / "success_metrics.json").read_text())
    assert success["n_multi_better"] == 1 and success["n_single_better"] == 1
    conf = _rows(out / "teacher_confidence.csv")
    assert len(conf) == 6 and all(r["split"] == "validation" for r in conf)
    assert json.loads((analyze(run, "eval") / "manifest.json").read_text())["split"] == "eval"


def test_report_contains_computed_verdict(tmp_path):
    run = build_fake_run(tmp_path)
    md_path, html_path = build_report(run)            # analyses first: no analysis/ yet
    assert (run / "analysis" / "manifest.json").is_file()
    md, page = md_path.read_text(), html_path.read_text()
    gain = _metric(run, "bin", "multi_average") - _metric(run, "bin", "kd_t_a")
    verdict = f"beats the best single-teacher student on 1 of 2 tasks, loses on 1; the largest gain is on bin ({gain:+.2f} pp"
    assert verdict in md and verdict in page
    assert "bin: 3 teachers, 1 baseline, 3 single-teacher and 2 multi-teacher students; nothing missing." in md
    assert "```yaml\nname: fake-run" in md                # config verbatim
    assert "| multi_average | multi |" in md               # master table
    for name in FIGURES:
        assert f"(analysis/{name})" in md
    assert page.count('src="data:image/png;base64,') == len(FIGURES)
    assert 'src="analysis/' not in page                    # self-contained


def test_report_says_what_is_missing(tmp_path):
    run = build_fake_run(tmp_path, drop={"bin": {"multi_average", "multi_weighted"},
                                         "tri": {"no_kd", "kd_t_c", "multi_weighted"}})
    md_path, _ = build_report(run)
    md = md_path.read_text()
    assert ("bin: 3 teachers, 1 baseline, 3 single-teacher and 0 multi-teacher students; missing: "
            "multi-teacher student 'average', multi-teacher student 'weighted'.") in md
    assert ("tri: 3 teachers, 0 baselines, 2 single-teacher and 1 multi-teacher students; missing: "
            "no-KD baseline, single-teacher student for t_c, multi-teacher student 'weighted'.") in md
    assert "beats the best single-teacher student on 0 of 1 task, loses on 1; the difference is on tri (-" in md
    assert "Advantage not computed for bin" in md
    gap = {(r["task"], r["student"]): r["gap closed (%)"] for r in _rows(run / "analysis" / "gap_closed.csv")}
    assert gap[("tri", "multi_average")] == "n/a"           # no baseline on tri
    assert gap[("bin", "kd_t_a")] != "n/a"


def test_one_teacher_run(tmp_path):
    run = build_fake_run(tmp_path, teachers=["t_a"])
    md_path, _ = build_report(run)
    regions = _rows(run / "analysis" / "agreement_regions.csv")
    assert [r["share (%)"] for r in regions if r["task"] == "bin"] == ["100.00", "0.00", "0.00"]
    assert all(r["Fleiss kappa"] == "n/a" for r in _rows(run / "analysis" / "teacher_ceilings.csv"))
    assert _rows(run / "analysis" / "teacher_pairwise_agreement.csv") == []
    assert "nothing missing" in md_path.read_text()


def test_teachers_only_run(tmp_path):
    students = {"no_kd", "kd_t_a", "kd_t_b", "kd_t_c", "multi_average", "multi_weighted"}
    run = build_fake_run(tmp_path, drop={"bin": students, "tri": students})
    md = build_report(run)[0].read_text()
    assert "cannot be computed: no task has both single- and multi-teacher students" in md
    assert "missing: no-KD baseline, single-teacher student for t_a" in md
    assert (run / "analysis" / "ranking_heatmap.png").read_bytes()[:8] == PNG_MAGIC


def test_report_reanalyses_when_eval_is_newer(tmp_path):
    run = build_fake_run(tmp_path)
    analyze(run, "eval")
    man = run / "analysis" / "manifest.json"
    old = man.stat().st_mtime
    os.utime(man, (old - 100, old - 100))
    build_report(run)                                       # eval manifests newer -> re-analysed
    assert man.stat().st_mtime > old - 100
    assert json.loads(man.read_text())["split"] == "eval"   # keeps the split chosen before
    stamp = man.stat().st_mtime_ns
    build_report(run)                                       # fresh -> not re-analysed
    assert man.stat().st_mtime_ns == stamp


def test_user_errors_are_one_line(tmp_path):
    with pytest.raises(MtkdError, match="run directory not found"):
        analyze(tmp_path / "nope")
    with pytest.raises(MtkdError, match="no evaluated task"):
        build_report(tmp_path)
    run = build_fake_run(tmp_path)
    with pytest.raises(MtkdError, match="unknown split 'test'"):
        analyze(run, "test")
    (run / "tri" / "eval" / "kd_t_a.eval.npy").unlink()
    with pytest.raises(MtkdError) as e:
        analyze(run)
    assert "kd_t_a" in str(e.value) and "\n" not in str(e.value)


def test_table_escaping():
    t = Table(["a|b", "<c>"], [["x|y", "<script>&"]])
    assert t.to_markdown().splitlines()[0] == "| a\\|b | <c> |"
    assert "&lt;script&gt;&amp;" in t.to_html() and "<script>" not in t.to_html()
