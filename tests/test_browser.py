"""The report as a reader sees it: rendered by headless Chromium at 1,400 × 900 (Debian's `chromium`; skipped
with a reason where it is absent), with a probe script that measures the page and writes what it found into the
DOM, read back with --dump-dom. What is checked (`problems`):

- the first screen (900 px) holds the answer: the summary table and the forest plot end above its fold;
- every link of the table of contents, and every in-page link, has its target;
- no element is wider than the 1,100 px column or reaches past the window, with every collapsed section closed
  and again with every one of them open;
- every image loads, and none is shown smaller than 90% of its size (the figures' smallest text, 8 pt at 100 dpi,
  is 11 px: at 90% it stays above 10 px); no page text is below 10 px;
- every relative link points at a file that exists beside the report;
- the main flow (collapsed sections closed) is under 15,000 px for the published study.

The report these tests replaced fails them: `python tests/test_browser.py OLD.html` on
`git show 22bfd66:docs/results/study_cpu/report.html` (the study report before issue 32) says: no table of
contents, 687 elements past the 1,100 px column (the page scrolls sideways to 1,594 px: the 52-row per-example
table), three figures shown at 43-84% of their size, no answer table or forest plot on the first screen (its first
900 px are the 72-row headroom table), links to files that are not there, and a page 44,260 px tall.
test_the_old_report_fails keeps a small page with the same faults to show that the checks catch them.
"""
from __future__ import annotations

import base64
import json
import re
import shutil
import subprocess
from pathlib import Path
from urllib.parse import unquote

import pytest

from _fake_run import build_fake_run
from mtkd.analysis import analyze
from mtkd.report import build_report

ROOT = Path(__file__).resolve().parents[1]
STUDY = ROOT / "docs" / "results" / "study_cpu" / "report.html"
BROWSER = next((b for b in ("chromium", "chromium-browser", "google-chrome") if shutil.which(b)), None)
pytestmark = pytest.mark.skipif(BROWSER is None, reason="no headless Chromium on this machine "
                                                        "(Debian: apt-get install chromium)")
WIDTH, HEIGHT, COLUMN, MAX_FLOW = 1400, 900, 1100, 15_000

PROBE = """<script>
window.addEventListener('load', () => {
  const de = document.documentElement, vw = de.clientWidth;
  const col = document.body.getBoundingClientRect().width - 2 * parseFloat(getComputedStyle(document.body).paddingLeft);
  const wide = () => [...document.querySelectorAll('body *')].filter(e => {
      const r = e.getBoundingClientRect();
      return r.width > 0 && (r.right > vw + 1 || r.width > col + 1);
    }).map(e => e.tagName + ': ' + (e.textContent || '').slice(0, 60));
  const fold = sel => { const e = document.querySelector(sel); return e ? e.getBoundingClientRect().bottom + scrollY : null; };
  const out = {viewport: [innerWidth, innerHeight], column: col, height: de.scrollHeight,
    scroll_width: de.scrollWidth, client_width: vw, wide_closed: wide(),
    toc: [...document.querySelectorAll('nav.toc a')].map(a => a.getAttribute('href')),
    anchors: [...document.querySelectorAll('a[href^="#"]')].map(a => a.getAttribute('href').slice(1))
      .filter(id => !document.getElementById(decodeURIComponent(id))),
    links: [...document.querySelectorAll('a[href]')].map(a => a.getAttribute('href')),
    answer_table: fold('#the-answer ~ table'), forest: fold('#the-answer ~ figure img'),
    small_text: [...document.querySelectorAll('body *')].filter(e => e.childNodes.length && [...e.childNodes]
      .some(n => n.nodeType === 3 && n.textContent.trim()) && parseFloat(getComputedStyle(e).fontSize) < 10)
      .map(e => e.tagName).slice(0, 5)};
  document.querySelectorAll('details').forEach(d => d.open = true);
  out.wide_open = wide();
  out.images = [...document.images].map(i => ({ok: i.complete && i.naturalWidth > 0, natural: i.naturalWidth,
    shown: i.getBoundingClientRect().width, alt: i.alt}));
  const pre = document.createElement('pre'); pre.id = 'mtkd-probe'; pre.textContent = JSON.stringify(out);
  document.body.appendChild(pre);
});
</script>"""


def measure(html_path: Path, tmp: Path) -> dict:
    """Open the page in headless Chromium at WIDTH × HEIGHT with PROBE added; return what PROBE measured."""
    page = html_path.read_text(encoding="utf-8")   # its images are data: URIs; its file links are checked in Python
    probed = tmp / f"probe_{html_path.name}"
    probed.write_text(page.replace("</body>", PROBE + "</body>") if "</body>" in page else page + PROBE,
                      encoding="utf-8")
    try:
        out = subprocess.run([BROWSER, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                              f"--user-data-dir={tmp / 'chromium-profile'}", f"--window-size={WIDTH},{HEIGHT}",
                              "--virtual-time-budget=20000", "--dump-dom", probed.as_uri()],
                             capture_output=True, text=True, timeout=180).stdout
    finally:
        probed.unlink()
    found = re.search(r'<pre id="mtkd-probe">(.*?)</pre>', out, re.S)
    assert found, f"the probe did not run in {BROWSER}: {out[-500:]}"
    import html
    return json.loads(html.unescape(found.group(1)))


def problems(m: dict, report: Path, max_flow: int | None = None) -> list[str]:
    """What a reader would trip over, in words (empty: none)."""
    out = []
    if len(m["toc"]) < 3:
        out.append(f"no table of contents ({len(m['toc'])} links)")
    if m["anchors"]:
        out.append(f"in-page links without a target: {m['anchors'][:5]}")
    for state in ("closed", "open"):
        if m[f"wide_{state}"]:
            out.append(f"{len(m[f'wide_{state}'])} elements wider than the {COLUMN} px column or the window "
                       f"(collapsed sections {state}), e.g. {m[f'wide_{state}'][:3]}")
    if m["scroll_width"] > m["client_width"]:
        out.append(f"the page scrolls sideways ({m['scroll_width']} > {m['client_width']} px)")
    if round(m["column"]) > COLUMN:
        out.append(f"the column is {m['column']:.0f} px wide")
    bad = [i["alt"] for i in m["images"] if not i["ok"]]
    if bad:
        out.append(f"images that do not load: {bad}")
    shrunk = [(i["alt"], round(i["shown"] / i["natural"], 2)) for i in m["images"] if i["ok"]
              and i["shown"] < 0.9 * i["natural"]]
    if shrunk:
        out.append(f"images shown below 90% of their size (their text under 10 px): {shrunk[:4]}")
    if m["small_text"]:
        out.append(f"text under 10 px in {m['small_text']}")
    fold = HEIGHT   # the first screen of a 1,400 × 900 window (headless Chromium's own viewport may be shorter)
    for key, what in (("answer_table", "the answer table"), ("forest", "the forest plot")):
        if m[key] is None or m[key] > fold:
            out.append(f"{what} is not on the first screen (ends at {m[key]} px, the fold at {fold})")
    missing = [h for h in m["links"] if not re.match(r"#|[a-z]+:", h) and not (report.parent / unquote(h)).exists()]
    if missing:
        out.append(f"links to files that do not exist: {missing[:5]}")
    if max_flow and m["height"] > max_flow:
        out.append(f"the main flow is {m['height']} px tall (over {max_flow})")
    return out


def test_a_small_runs_report_reads_well(tmp_path):
    run = build_fake_run(tmp_path)
    analyze(run, n_resamples=300)
    _, page = build_report(run)
    m = measure(page, tmp_path)
    assert problems(m, page) == []
    assert m["viewport"][0] == WIDTH
    assert len(m["images"]) == 7 and len(m["toc"]) >= 15   # the forest plot and the analysis's six


def test_the_published_study_report_reads_well(tmp_path):
    """The republished study: the answer on the first screen, the main flow under 15,000 px (its height is quoted
    in docs/analysis.md)."""
    m = measure(STUDY, tmp_path)
    assert problems(m, STUDY, MAX_FLOW) == []


def test_the_old_report_fails(tmp_path):
    """A page with the old report's faults (no contents, a table wider than the column, a 52-row table and no
    answer on the first screen, a shrunk figure) fails every matching check."""
    rows = "".join(f"<tr>{''.join(f'<td>42:0.0861;1:0.382;2:0.365_{i}_{j}</td>' for j in range(9))}</tr>"
                   for i in range(52))
    from matplotlib.figure import Figure
    from mtkd.analysis.figures import _png
    png = "data:image/png;base64," + base64.b64encode(_png(Figure(figsize=(24, 2)))).decode()   # 2,400 px wide
    page = tmp_path / "old.html"
    page.write_text(f'<!DOCTYPE html><html><head><style>body{{max-width:1100px;margin:auto}}'
                    f'img{{max-width:100%}}</style></head><body><h1>mtkd report</h1><h2 id="the-answer">Verdict</h2>'
                    f'<table>{rows}</table><figure><img src="{png}" alt="big"></figure>'
                    f'<a href="#nowhere">x</a> <a href="timing.md">timing.md</a></body></html>')
    found = "\n".join(problems(measure(page, tmp_path), page, MAX_FLOW))
    for phrase in ("no table of contents", "in-page links without a target", "wider than the 1100 px column",
                   "images shown below 90%", "the answer table is not on the first screen",
                   "links to files that do not exist: ['timing.md']"):
        assert phrase in found, (phrase, found)


if __name__ == "__main__":   # python tests/test_browser.py REPORT.html: its main-flow height and what a reader trips over
    import sys
    import tempfile
    if BROWSER is None:
        sys.exit("no headless Chromium (Debian: apt-get install chromium)")
    for arg in sys.argv[1:]:
        with tempfile.TemporaryDirectory() as tmp:
            m = measure(Path(arg).resolve(), Path(tmp))
        print(f"{arg}: main flow {m['height']} px at {WIDTH} px wide (collapsed sections closed); "
              f"answer table ends at {m['answer_table']} px, forest plot at {m['forest']} px")
        for p in problems(m, Path(arg).resolve(), MAX_FLOW):
            print(f"  - {p}")
