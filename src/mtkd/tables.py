"""Small tables: cells are formatted once (numbers rounded, NaN shown as "n/a"), then
written as CSV and Markdown with the same basename, and read back for the report."""
from __future__ import annotations

import csv
import html
import io
import math
from dataclasses import dataclass
from pathlib import Path

from mtkd.io import atomic_write_text

NA = "n/a"


def cell(value, digits: int = 2) -> str:
    """A table cell: None/NaN -> "n/a", floats rounded to `digits`, anything else as str."""
    if value is None:
        return NA
    if isinstance(value, float):
        return NA if math.isnan(value) else f"{value:.{digits}f}"
    return str(value)


@dataclass
class Table:
    columns: list[str]
    rows: list[list[str]]

    def to_csv(self) -> str:
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(self.columns)
        writer.writerows(self.rows)
        return buf.getvalue()

    def to_markdown(self) -> str:
        def esc(s: str) -> str:
            return str(s).replace("|", "\\|").replace("\n", " ")
        lines = ["| " + " | ".join(esc(c) for c in self.columns) + " |",
                 "|" + "|".join("---" for _ in self.columns) + "|"]
        lines += ["| " + " | ".join(esc(c) for c in row) + " |" for row in self.rows]
        return "\n".join(lines) + "\n"

    def to_html(self) -> str:
        head = "".join(f"<th>{html.escape(c)}</th>" for c in self.columns)
        body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>\n"
                       for row in self.rows)
        return f"<table>\n<thead><tr>{head}</tr></thead>\n<tbody>\n{body}</tbody>\n</table>\n"

    def write(self, folder: Path, name: str) -> list[Path]:
        """Write <folder>/<name>.csv and <folder>/<name>.md; return both paths."""
        csv_path, md_path = Path(folder) / f"{name}.csv", Path(folder) / f"{name}.md"
        atomic_write_text(csv_path, self.to_csv())
        atomic_write_text(md_path, self.to_markdown())
        return [csv_path, md_path]


def read_csv(path: Path) -> Table:
    with open(path, newline="", encoding="utf-8-sig") as f:
        rows = list(csv.reader(f))
    if not rows:
        return Table([], [])
    return Table(rows[0], rows[1:])
