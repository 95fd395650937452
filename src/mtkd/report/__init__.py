"""Tables, figures and the Markdown/HTML report of a run: `build_report(RUN)`."""
from mtkd.report.build import build_report

__all__ = ["build_report"]
