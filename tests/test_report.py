"""analyze + build_report end to end on a fake run directory (tests/_fake_run.py)."""
import csv
import json
import os

import pytest

from _fake_run import build_fake_run
from mtkd.analysis import analyze
from mtkd.analysis.run import ensure_analysis
from mtkd.cli import main
from mtkd.errors import MtkdError
from mtkd.report import build_report as _build_report
from mtkd.tables import Table

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
TABLES = ["significance", "advantage", "gap_closed", "ranking", "agreement_regions", "agreement_accuracy", "worst_slices",
          "students_at_teacher_worst", "failure_categories",
          "teacher_confidence", "teacher_pairwise_agreement", "teacher_ceilings", "calibration"]
FIGURES = ["gap_analysis.png", "agreement_breakdown.png", "failure_categories.png", "ranking_heatmap.png",
           "reliability_bin.png", "reliability_tri.png"]


def _metric(run, task, method):
    man = json.loads((run / task / "eval" / "manifest.json").read_text())
    return next(m["metrics"]["accuracy"] for m in man["models"] if m["method"] == method)


def build_report(run):
    """What `mtkd report` does: analyse when needed, then the report."""
    ensure_analysis(run)
    return _build_report(run)


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
    assert adv["bin"]["verdict"] == "multi-teacher better"        # +10 pp on 400 examples: CI above 0
    assert adv["tri"]["verdict"] == "no significant difference"   # -5.75 pp: CI contains 0
    # AVG: the mean of the two tasks' bests and of their differences, with the significance table's CI
    assert float(adv["AVG"]["advantage (pp)"]) == pytest.approx(
        (float(adv["bin"]["advantage (pp)"]) + float(adv["tri"]["advantage (pp)"])) / 2, abs=0.006)
    assert float(adv["AVG"]["multi eval (%)"]) == pytest.approx(
        (float(adv["bin"]["multi eval (%)"]) + float(adv["tri"]["multi eval (%)"])) / 2, abs=0.006)
    sig = _rows(out / "significance.csv")
    assert [(r["task"], r["method"], r["reference"], r["selected"]) for r in sig] == [
        ("bin", "multi_average", "kd_t_a", "true"), ("bin", "multi_weighted", "kd_t_a", "false"),
        ("tri", "multi_average", "kd_t_a", "true"), ("tri", "multi_weighted", "kd_t_a", "false"),
        ("AVG", "best multi (per task)", "best single (per task)", "true")]
    assert all(r["selected_on"] == "validation" for r in sig)
    for r in sig[:4]:   # the difference is the manifests', inside its CI; Holm never lowers a p-value
        assert float(r["diff_pp"]) == pytest.approx(_metric(run, r["task"], r["method"])
                                                    - _metric(run, r["task"], r["reference"]), abs=0.006)
        assert float(r["ci_low"]) <= float(r["diff_pp"]) <= float(r["ci_high"])
        assert float(r["p_holm"]) >= float(r["p_value"])
    assert float(sig[0]["ci_low"]) > 0 and float(sig[2]["ci_low"]) < 0 < float(sig[2]["ci_high"])
    assert (adv["AVG"]["ci_low"], adv["AVG"]["ci_high"]) == (sig[4]["ci_low"], sig[4]["ci_high"])
    lo, hi = float(sig[4]["ci_low"]), float(sig[4]["ci_high"])
    assert adv["AVG"]["verdict"] == ("multi-teacher better" if lo > 0 else "multi-teacher worse" if hi < 0
                                     else "no significant difference")
    regions = [r for r in _rows(out / "agreement_regions.csv") if r["task"] == "tri"]
    assert [r["region"] for r in regions] == ["all agree", "partial disagree", "full disagree"]
    assert sum(int(r["examples"]) for r in regions) == 400
    fails = _rows(out / "failure_categories.csv")
    for r in fails:
        assert int(r["errors"]) == sum(int(r[c]) for c in ("all teachers wrong", "transfer failure",
                                                             "error on disagreement"))
    success = json.loads((out / "success_metrics.json").read_text())
    assert success["n_multi_better"] == 1 and success["n_no_significant_difference"] == 1
    assert success["selected_on"] == "validation"
    conf = _rows(out / "teacher_confidence.csv")
    assert [r["split"] for r in conf] == ["validation"] * 3 + ["train"] * 3 + ["validation"] * 3 + ["train"] * 3
    assert json.loads((analyze(run, "eval") / "manifest.json").read_text())["split"] == "eval"


def test_report_contains_computed_verdict(tmp_path):
    run = build_fake_run(tmp_path)
    md_path, html_path = build_report(run)            # analyses first: no analysis/ yet
    assert (run / "analysis" / "manifest.json").is_file()
    md, page = md_path.read_text(), html_path.read_text()
    gain = _metric(run, "bin", "multi_average") - _metric(run, "bin", "kd_t_a")
    sig = {r["task"]: r for r in _rows(run / "analysis" / "significance.csv") if r["selected"] == "true"}
    success = json.loads((run / "analysis" / "success_metrics.json").read_text())
    avg_verdict, gap_ci = success["average_verdict"], success["average_gap_closed_ci_pct"]
    lo, hi = float(sig["AVG"]["ci_low"]), float(sig["AVG"]["ci_high"])
    assert avg_verdict == ("multi-teacher better" if lo > 0 else "multi-teacher worse" if hi < 0
                           else "no significant difference")
    assert gap_ci[0] <= success["average_gap_closed_by_best_student_pct"] <= gap_ci[1]
    for line in ("better on 1, worse on 0, no significant difference on 1 of 2 tasks",
                 f"bin: multi-teacher better. multi_average − kd_t_a = {gain:+.2f} pp accuracy on eval, "
                 f"95% CI [{sig['bin']['ci_low']}, {sig['bin']['ci_high']}]",
                 "tri: no significant difference.",
                 f"Average over tasks: {avg_verdict}. {float(sig['AVG']['diff_pp']):+.2f} pp, 95% CI "
                 f"[{sig['AVG']['ci_low']}, {sig['AVG']['ci_high']}]",
                 f"closes on average {success['average_gap_closed_by_best_student_pct']:.0f}% (95% CI "
                 f"{gap_ci[0]:.0f} to {gap_ci[1]:.0f}%)"):
        assert line in md and line in page
    assert "## Multi-teacher vs best single-teacher student, per example" in md
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
    assert "no significant difference on 1 of 1 task" in md and "tri: no significant difference." in md
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
    assert _rows(run / "analysis" / "significance.csv") == []
    assert "missing: no-KD baseline, single-teacher student for t_a" in md
    assert (run / "analysis" / "ranking_heatmap.png").read_bytes()[:8] == PNG_MAGIC


def test_report_reads_a_current_analysis_only(tmp_path, capsys):
    """Data flows one way: build_report never analyses; it refuses a missing or stale analysis in one line,
    and `mtkd report` re-analyses visibly (keeping the split chosen before) only when needed."""
    run = build_fake_run(tmp_path)
    with pytest.raises(MtkdError, match=r"analysis is missing or unfinished: run `mtkd analyze .*` first"):
        _build_report(run)
    analyze(run, "eval")
    man = run / "analysis" / "manifest.json"
    old = man.stat().st_mtime
    os.utime(man, (old - 100, old - 100))
    with pytest.raises(MtkdError, match="older than the run's evaluation"):
        _build_report(run)
    capsys.readouterr()
    assert main(["report", str(run)]) == 0
    assert "older than the run's evaluation: analysing the run" in capsys.readouterr().out
    assert man.stat().st_mtime > old - 100
    assert json.loads(man.read_text())["split"] == "eval"   # keeps the split chosen before
    stamp = man.stat().st_mtime_ns
    assert main(["report", str(run)]) == 0                   # current -> not re-analysed
    assert man.stat().st_mtime_ns == stamp and "analysing" not in capsys.readouterr().out
    data = json.loads(man.read_text())
    older = {k: v for k, v in data.items() if k != "format"}                 # written before formats existed
    for old in (older, {**data, "format": data["format"] - 1}):
        man.write_text(json.dumps(old))
        assert main(["report", str(run)]) == 0
        assert "another version of the analysis" in capsys.readouterr().out
        assert json.loads(man.read_text())["format"] == data["format"]


def test_analysis_does_not_import_the_report():
    """Guards the one-way data flow: importing the analysis (and running it) never loads mtkd.report."""
    import subprocess
    import sys
    code = "import sys, mtkd.analysis, mtkd.analysis.run, mtkd.sweeps; " \
           "print(sorted(m for m in sys.modules if m.startswith('mtkd.report')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


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


def test_master_table_in_the_report_is_mean_and_sd():
    """The report folds every `<column>_sd` of master_results.csv into its column ("mean ± sd"); a model of
    one seed keeps its plain mean, a column without an sd stays as it is."""
    from mtkd.report.build import mean_sd
    t = mean_sd(Table(["method", "type", "a_acc", "a_acc_sd", "AVG", "AVG_sd", "transfer"],
                      [["t", "teacher", "50.00", "", "50.00", "", ""], ["s", "multi", "31.25", "26.52", "31.25", "26.52", "a"]]))
    assert t.columns == ["method", "type", "a_acc", "AVG", "transfer"]
    assert t.rows == [["t", "teacher", "50.00", "50.00", ""], ["s", "multi", "31.25 ± 26.52", "31.25 ± 26.52", "a"]]



def test_average_gap_closed_ci_is_the_mean_of_the_tasks_bootstraps(tmp_path):
    """success_metrics' average_gap_closed_ci_pct: the percentile interval of the mean of the two tasks'
    gap-closed bootstrap distributions (each task's best student), not either task's own interval."""
    import numpy as np
    from mtkd.analysis import significance, stats
    from mtkd.analysis.load import load_task
    run = build_fake_run(tmp_path)
    out = analyze(run)
    tasks = [load_task(run / t / "eval" / "manifest.json") for t in ("bin", "tri")]
    sigs, average = significance.significance(tasks)   # the analysis's resamples (seeded per task)
    want = stats.percentile_ci(np.mean([sigs[t]["gap_samples"] for t in ("bin", "tri")], axis=0))
    assert average["gap_closed_ci_pct"] == pytest.approx(want)
    for t in ("bin", "tri"):   # not one task's interval
        assert stats.percentile_ci(sigs[t]["gap_samples"]) != pytest.approx(want)
    got = json.loads((out / "success_metrics.json").read_text())["average_gap_closed_ci_pct"]
    assert got == pytest.approx(list(want), abs=1e-4)


def test_verdict_lines_take_the_verdict_from_the_unrounded_ci():
    """A CI of (0.003, 1.2) is above 0 although significance.csv shows 0.00: the verdict lines follow
    success_metrics.json (computed from the unrounded CI), per task and on AVG."""
    from mtkd.report.build import verdict_lines
    cols = ["task", "method", "reference", "diff_pp", "ci_low", "ci_high", "p_value", "p_holm", "selected", "seeds"]
    sig = Table(cols, [["a", "m", "s", "0.60", "0.00", "1.20", "0.04", "0.04", "true", "3"],
                       ["b", "m", "s", "0.50", "0.00", "1.00", "0.05", "0.05", "true", "3"],
                       ["AVG", "best multi (per task)", "best single (per task)", "0.55", "0.00", "1.10", "n/a",
                        "n/a", "true", ""]])
    gap = {"best_student": {"gap_closed_pct": None}}
    success = {"tasks": {"a": {"metric": "accuracy", "verdict": "multi-teacher better", **gap},
                         "b": {"metric": "accuracy", "verdict": "no significant difference", **gap}},
               "average_verdict": "multi-teacher better"}
    lines = verdict_lines(sig, success)
    assert "better on 1, worse on 0, no significant difference on 1 of 2 tasks" in lines[0]
    assert lines[1].startswith("a: multi-teacher better.") and lines[2].startswith("b: no significant difference.")
    assert lines[3].startswith("Average over tasks: multi-teacher better. +0.55 pp")


def test_a_ci_and_a_p_value_that_disagree_are_worded_so():
    """The verdict follows the interval; where the permutation p points the other way the line says so."""
    from mtkd.report.build import _disagreement
    assert "interval contains 0" in _disagreement("no significant difference", 0.03)
    assert _disagreement("no significant difference", 0.3) == ""
    assert "borderline" in _disagreement("multi-teacher worse", 0.08)
    assert _disagreement("multi-teacher better", 0.01) == ""
