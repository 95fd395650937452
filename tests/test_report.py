"""analyze + build_report end to end on a fake run directory (tests/_fake_run.py)."""
import csv
import json
import os
import re

import pytest

from _fake_run import build_fake_run
from mtkd.analysis import analyze
from mtkd.analysis.run import analysis_problem
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
    """What `mtkd report` does: analyse when needed (here with fewer resamples, for speed), then the report."""
    if analysis_problem(run):
        analyze(run, n_resamples=500)
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
    ci = lambda r: f"[{float(r['ci_low']):+.2f}, {float(r['ci_high']):+.2f}]"   # noqa: E731  the one CI style
    for line in ("better on 1, worse on 0, no significant difference on 1 of 2 tasks",
                 f"bin: multi-teacher better. multi_average − kd_t_a = {gain:+.2f} pp accuracy on eval, "
                 f"95% CI {ci(sig['bin'])}",
                 "tri: no significant difference.",
                 f"Average over tasks: {avg_verdict}. {float(sig['AVG']['diff_pp']):+.2f} pp accuracy, 95% CI "
                 f"{ci(sig['AVG'])}",
                 f"closes on average {success['average_gap_closed_by_best_student_pct']:.0f}% "
                 f"[{gap_ci[0]:.0f}, {gap_ci[1]:.0f}]"):
        assert line in md and line in page
    assert "## Multi-teacher vs best single-teacher student, per example" in md
    assert "bin, tri: 3 teachers, 1 baseline, 3 single-teacher and 2 multi-teacher students; nothing missing." in md
    # the config: a link in the Markdown, a closed section of the page (verbatim)
    assert "config.yaml, 22 lines: [config.yaml](config.yaml)" in md and "```yaml" not in md
    assert "<details><summary>config.yaml, 22 lines</summary>" in page and "name: fake-run" in page
    assert "| multi_average | multi |" in md               # master table
    for name in FIGURES:
        assert f"(analysis/{name})" in md
    assert "(report_files/forest.png)" in md and (run / "report_files" / "forest.png").read_bytes()[:8] == PNG_MAGIC
    assert page.count('src="data:image/png;base64,') == len(FIGURES) + 1
    assert 'src="analysis/' not in page                    # self-contained


def test_the_answer_comes_first(tmp_path):
    """The question, the answer in two sentences, the summary table (from success_metrics and significance.csv)
    and the forest plot open the report, then the contents; the headroom follows, then every table."""
    run = build_fake_run(tmp_path)
    md_path, html_path = build_report(run)
    md, page = md_path.read_text(), html_path.read_text()
    sections = [line for line in md.splitlines() if line.startswith("## ")]
    assert sections[:4] == ["## The answer", "## Contents", "## Headroom: the teachers together vs the best teacher",
                            "## Multi-teacher vs best single-teacher student, per example"]
    answer = next(line for line in md.splitlines() if line.startswith("**Answer.** "))
    assert answer.startswith("**Answer.** Partly: the best multi-teacher student is better on bin (+")
    assert "not significantly different on tri" in answer and "one seed (0)" in answer
    assert answer.count(". ") == 1 and answer.endswith(".")   # two sentences
    success = json.loads((run / "analysis" / "success_metrics.json").read_text())
    sig = {r["task"]: r for r in _rows(run / "analysis" / "significance.csv") if r["selected"] == "true"}
    head = md[md.index("| task | metric |"):].split("\n\n")[0].splitlines()
    assert len(head) == 2 + 3                                  # header, rule, bin, tri, AVG
    bin_row = [c.strip() for c in head[2].split("|")[1:-1]]
    s = success["tasks"]["bin"]
    assert bin_row[:7] == ["bin", "accuracy", f"kd_t_a {s['best_single']['value']:.2f}",
                           f"multi_average {s['best_multi']['value']:.2f}",
                           f"{float(sig['bin']['diff_pp']):+.2f} [{float(sig['bin']['ci_low']):+.2f}, "
                           f"{float(sig['bin']['ci_high']):+.2f}]", sig["bin"]["p_holm"], "multi-teacher better"]
    room = success["headroom"]["bin"]
    assert bin_row[8] == f"{room['diff_pp']:+.2f} [{room['ci_pp'][0]:+.2f}, {room['ci_pp'][1]:+.2f}] ({room['ensemble']})"
    assert head[4].startswith("| AVG | accuracy |") and "— (not in Holm)" in head[4]
    # the forest plot is right after the table; the contents link every section, with MkDocs' anchors
    assert md.index("| AVG |") < md.index("![Every strategy against the best single-teacher student]") < \
        md.index("## Contents")
    import markdown
    site = markdown.markdown(md, extensions=["toc", "tables"])
    ids = set(re.findall(r'<h[1-6] id="([^"]+)"', site))
    toc = re.findall(r"\]\(#([^)]+)\)", md)
    assert len(toc) == len(sections) - 1 and set(toc) <= ids   # every section but Contents itself
    assert all(f'id="{a}"' in page and f'href="#{a}"' in page for a in toc)


def test_long_tables_are_one_click_away(tmp_path):
    """A table of more than 25 rows is a closed section of the page and a link in the Markdown; constant columns
    are said once; one CI column; ECE in %; file names are links."""
    run = build_fake_run(tmp_path)
    (run / "findings.md").write_text("Numbers in `analysis/significance.csv` and results/master_results.csv; "
                                     "both *and* none.\n")
    md_path, html_path = build_report(run)
    md, page = md_path.read_text(), html_path.read_text()
    n = len(_rows(run / "analysis" / "students_at_teacher_worst.csv"))
    assert n > 25
    assert (f"{n} rows: [analysis/students_at_teacher_worst.md](analysis/students_at_teacher_worst.md) · "
            f"[analysis/students_at_teacher_worst.csv](analysis/students_at_teacher_worst.csv)") in md
    assert f"<details><summary>Show the table ({n} rows)</summary>" in page
    sig_md = md[md.index("## Multi-teacher vs best single-teacher student"):md.index("## Multi-teacher advantage")]
    header = next(line for line in sig_md.splitlines() if line.startswith("| task"))
    assert "| 95% CI |" in header and "ci_low" not in header and "selected_on" not in header
    assert "p_per_seed" not in header and "one seed pair per row: p_per_seed is p_value" in sig_md
    assert "the same in every row: " in sig_md and "selected_on = validation" in sig_md
    calib = md[md.index("## Calibration (eval)"):]
    assert "| ECE (%) |" in calib.splitlines()[next(i for i, l in enumerate(calib.splitlines()) if l.startswith("| "))]
    t_a = next(r for r in _rows(run / "analysis" / "calibration.csv") if r["model"] == "t_a")
    assert f"| {100 * float(t_a['ECE']):.2f} |" in calib
    assert "[`analysis/significance.csv`](analysis/significance.csv)" in md
    assert "[results/master_results.csv](results/master_results.csv)" in md
    assert '<a href="analysis/significance.csv"><code>analysis/significance.csv</code></a>' in page
    assert "<i>and</i>" in page and "*and*" not in page


def test_a_duplicate_strategy_is_flagged():
    """kl_sum trains exactly as prob_average (gap.DUPLICATE_OF): an analysis written before the duplicate_of column
    gets it in the report, and the forest plot marks it."""
    from mtkd.report.answer import forest_data
    from mtkd.report.display import shown
    cols = ["task", "method", "reference", "diff_pp", "ci_low", "ci_high", "p_value", "p_holm", "selected"]
    sig = Table(cols, [["a", "multi_prob_average", "kd_x", "1.00", "0.10", "2.00", "0.01", "0.02", "false"],
                       ["a", "multi_kl_sum", "kd_x", "1.00", "0.10", "2.00", "0.01", "0.02", "true"],
                       ["b", "multi_kl_sum", "kd_x", "0.50", "-0.10", "1.00", "0.2", "0.4", "true"]])
    table, _ = shown(sig, "significance")
    assert [dict(zip(table.columns, r))["duplicate_of"] for r in table.rows] == ["", "multi_prob_average", ""]
    data = forest_data(sig, {"tasks": {"a": {"metric": "accuracy"}, "b": {"metric": "f1"}}})
    assert [r[5] for r in data[0]["rows"]] == ["", "multi_prob_average"] and data[1]["rows"][0][5] == ""


def test_a_published_analysis_without_its_evaluation(tmp_path, capsys):
    """A folder that kept its analysis, results and config but not the evaluation (published without evidence/) is
    reported from the analysis as written, saying so; `mtkd report` does not try to analyse it."""
    import shutil
    run = build_fake_run(tmp_path)
    build_report(run)
    pub = tmp_path / "published"
    for part in ("analysis", "results"):
        shutil.copytree(run / part, pub / part)
    shutil.copy(run / "config.yaml", pub / "config.yaml")
    assert main(["report", str(pub)]) == 0
    md = (pub / "report.md").read_text()
    assert "without the evaluation it was computed from" in md and "**Answer.** Partly" in md
    assert "bin, tri: 3 teachers, 1 baseline, 3 single-teacher and 2 multi-teacher students" in md
    assert "analysing" not in capsys.readouterr().out
    (pub / "analysis" / "calibration.csv").unlink()
    with pytest.raises(MtkdError, match="calibration.csv is missing"):
        _build_report(pub)


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
    md = md_path.read_text()
    assert "nothing missing" in md and "headroom: ensemble" not in md   # one teacher: no headroom column
    assert "**Answer.** " in md and "(report_files/forest.png)" in md


def test_one_task_run(tmp_path):
    """One task: the answer has no average, the table no AVG row, the forest plot one panel; the report says what
    the config names but the run did not evaluate."""
    import shutil
    run = build_fake_run(tmp_path)
    shutil.rmtree(run / "tri")
    md = build_report(run)[0].read_text()
    answer = next(line for line in md.splitlines() if line.startswith("**Answer.** "))
    assert answer.startswith("**Answer.** Yes: on bin the best multi-teacher student is better than the best "
                             "single-teacher student (+")
    assert "One seed (0):" in answer and "Averaged" not in answer
    assert "| AVG |" not in md[:md.index("## Contents")]
    assert "tri: not evaluated" in md


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
    from mtkd.report.display import mean_sd
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


def test_a_joint_sweep_is_one_figure_per_task_on_one_scale(tmp_path, monkeypatch):
    """A T × alpha grid: per task one figure of every multi-teacher strategy and the validation-best single-teacher
    student (drawn from sweep_results.csv, one colour scale; axes in the sweep's order, which sweep.json's sorted
    keys lose and the CSV's columns keep), the sweep's own grid PNGs linked beside it."""
    from mtkd.report import plots
    from mtkd.report.build import sweep_blocks
    folder = tmp_path / "sweeps" / "grid"
    folder.mkdir(parents=True)
    rows = ["point,T,alpha,method,type,demo_acc,AVG,val_AVG,demo_gap_closed,trained_in"]
    for t in ("1", "4"):
        for a in ("0.5", "0.9"):
            for method, kind, val in (("multi_average", "multi", 70), ("kd_a", "single", 60), ("kd_b", "single", 65)):
                score = val + float(t) + float(a)
                rows.append(f"T={t}_alpha={a},{t},{a},{method},{kind},{score:.2f},{score:.2f},{score + 1:.2f},50,point")
    (folder / "sweep_results.csv").write_text("\n".join(rows) + "\n")
    (folder / "grid_demo_multi_average.png").write_bytes(PNG_MAGIC)
    (folder / "sweep.json").write_text(json.dumps({
        "base_run": str(tmp_path), "params": {"distill.alpha": ["0.5", "0.9"], "distill.temperature": ["1", "4"]},
        "outputs": ["sweep_results.csv", "grid_demo_multi_average.png"]}))
    drawn = []
    monkeypatch.setattr(plots, "sweep_grids", lambda *a: drawn.append(a) or PNG_MAGIC)
    saved = {}
    blocks = sweep_blocks(tmp_path, lambda name, png: saved.setdefault(name, png) and f"report_files/{name}")
    (title, x_name, xs, y_name, ys, grids, metric), = drawn
    assert (x_name, xs, y_name, ys, metric) == ("T", ["1", "4"], "alpha", ["0.5", "0.9"], "demo_acc")
    assert [g[0] for g in grids] == ["multi_average", "kd_b (best single, val)"]
    assert grids[0][1][1, 1] == pytest.approx(74.9) and grids[0][2] == (1, 1)   # T=4, alpha=0.9: the best cell
    assert [b[1] for b in blocks if b[0] == "img"] == ["report_files/sweep_sweeps_grid_demo.png"]
    assert any("sweeps/grid/grid_demo_multi_average.png" in b[1] for b in blocks if b[0] == "p")


def test_a_difference_that_does_not_survive_holm_is_said_so():
    """The verdict follows the interval; where that interval excludes 0 but the Holm-corrected p is 0.05 or more,
    the answer and the summary table say the difference is not significant once every comparison is counted."""
    from mtkd.report.answer import answer, summary_table
    cols = ["task", "method", "reference", "diff_pp", "ci_low", "ci_high", "p_value", "p_holm", "selected", "seeds"]
    sig = Table(cols, [["a", "m", "s", "-0.85", "-1.66", "-0.12", "0.03", "0.522", "true", "2"],
                       ["b", "m", "s", "1.50", "0.40", "2.60", "0.001", "0.004", "true", "2"],
                       ["c", "m", "s", "0.20", "-0.50", "0.90", "0.5", "1", "true", "2"]])
    gap = {"best_student": {"gap_closed_pct": None}, "best_single": {"method": "s", "value": 80.0},
           "best_multi": {"method": "m", "value": 80.5}}
    success = {"tasks": {"a": {"metric": "f1", "verdict": "multi-teacher worse", **gap},
                         "b": {"metric": "f1", "verdict": "multi-teacher better", **gap},
                         "c": {"metric": "f1", "verdict": "no significant difference", **gap}}}
    text = answer(sig, success, [42, 1])
    assert "Counting every strategy × task comparison (Holm), the difference on a is not significant." in text
    rows = {r[0]: r for r in summary_table(sig, success, None).rows}
    assert rows["a"][6] == "multi-teacher worse (not after Holm)"
    assert rows["b"][6] == "multi-teacher better" and rows["c"][6] == "no significant difference"
