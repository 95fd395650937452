"""The Markdown/HTML report of an analysed run: `build_report(RUN)` (reads RUN/analysis only)."""
from mtkd.report.build import build_report

__all__ = ["build_report"]
