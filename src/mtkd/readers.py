"""Reading a user's data file without altering it: every cell comes back as the exact string that
was written (no NaN for "NA" / "null" / empty cells, no number or date guessing, no stripping).

- `.tsv`: tab-separated, quoting **off** (a `"` is an ordinary character, as GLUE's own files need);
- `.csv`: comma-separated, standard quoting (RFC 4180: `""` inside quotes, newlines and tabs in quoted fields);
- `.jsonl` (or a `.json` file of one object per line) and `.json` holding one array of objects;
- `.parquet`.

CSV/TSV go through `pyarrow.csv` (every column read as a string), Parquet through `pyarrow.parquet`,
JSON through the standard `json` module. A UTF-8 byte order mark is skipped. A CSV/TSV row with the
wrong number of fields cannot be parsed: it is dropped, and every dropped row is counted and named (its
line) in one warning line on stderr. Anything else wrong is refused in one line (MtkdError).
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

from .errors import MtkdError

FORMATS = {".tsv": "tsv", ".csv": "csv", ".jsonl": "jsonl", ".json": "json", ".parquet": "parquet"}
SHOWN = 5   # dropped rows named in the warning line (then "and N more")


class Table:
    """Columns of one file as lists of cells (str for CSV/TSV; JSON/Parquet values as parsed)."""

    def __init__(self, path: Path, columns: dict[str, list], dropped: list[str]):
        self.path, self.columns, self.dropped = path, columns, dropped

    def __len__(self):
        return len(next(iter(self.columns.values()), []))


def file_format(path: Path) -> str:
    """The format of a data file from its suffix, after checking it exists and is not empty (one-line errors)."""
    fmt = FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise MtkdError(f"{path}: unknown data file type '{path.suffix}'; use one of {', '.join(FORMATS)}")
    if not path.is_file():
        raise MtkdError(f"data file not found: {path}")
    if path.stat().st_size == 0:
        raise MtkdError(f"data file is empty: {path}")
    return fmt


def read_table(path, needed: list[str], header: bool = True, names: list[str] | None = None) -> Table:
    """The columns `needed` of the file at `path` (format from its suffix). `header: false` reads a
    header-less file whose columns are `names`, in order."""
    path = Path(path)
    fmt = file_format(path)
    if not header and fmt not in ("csv", "tsv"):
        raise MtkdError(f"{path}: header: false applies to CSV/TSV files only ({fmt} names its own columns)")
    if fmt in ("csv", "tsv"):
        table = _read_delimited(path, fmt, needed, header, names)
    elif fmt == "parquet":
        table = _read_parquet(path, needed)
    else:
        table = _read_json(path, needed)
    if len(table) == 0:
        raise MtkdError(f"no examples in {path}" + (f" ({len(table.dropped)} malformed row(s) skipped)" if table.dropped else ""))
    if table.dropped:
        more = f" and {len(table.dropped) - SHOWN} more" if len(table.dropped) > SHOWN else ""
        print(f"mtkd: warning: {path}: skipped {len(table.dropped)} row(s) that could not be parsed: "
              f"{'; '.join(table.dropped[:SHOWN])}{more}", file=sys.stderr)
    return table


def _missing(path, needed, found):
    missing = [c for c in dict.fromkeys(needed) if c not in found]
    if missing:
        what = f"column '{missing[0]}'" if len(missing) == 1 else f"column(s) {', '.join(missing)}"
        raise MtkdError(f"{path}: missing {what}; found {', '.join(map(str, found)) or 'none'}")


def _read_delimited(path: Path, fmt: str, needed, header: bool, names) -> Table:
    import pyarrow as pa
    import pyarrow.csv as pcsv

    if header:
        found = _header(path, fmt)
        if len(set(found)) != len(found):
            dup = next(c for c in found if found.count(c) > 1)
            raise MtkdError(f"{path}: column '{dup}' appears twice in the header")
    else:
        if not names:
            raise MtkdError(f"{path}: header: false needs columns: [...] naming every column in order")
        found = list(names)
    _missing(path, needed, found)
    dropped = []

    def invalid(row):   # a row with the wrong number of fields: dropped and named
        dropped.append(f"line {row.number} has {row.actual_columns} field(s), expected {row.expected_columns}")
        return "skip"
    parse = pcsv.ParseOptions(delimiter="\t" if fmt == "tsv" else ",", quote_char=False if fmt == "tsv" else '"',
                              newlines_in_values=fmt == "csv", ignore_empty_lines=False, invalid_row_handler=invalid)
    read = pcsv.ReadOptions(use_threads=False,   # single-threaded: the parser then knows each bad row's line
                            column_names=None if header else found, block_size=1 << 24)
    convert = pcsv.ConvertOptions(column_types={c: pa.string() for c in needed}, include_columns=list(dict.fromkeys(needed)),
                                  strings_can_be_null=False, quoted_strings_can_be_null=False)
    try:
        t = pcsv.read_csv(path, read_options=read, parse_options=parse, convert_options=convert)
    except pa.ArrowInvalid as e:
        if "UTF8" in str(e) or "utf8" in str(e).lower():
            raise MtkdError(f"{path}: not a UTF-8 text file") from None
        raise MtkdError(f"{path}: cannot be read as {fmt.upper()}: {str(e).splitlines()[0]}") from None
    cols = {c: t.column(c).to_pylist() for c in dict.fromkeys(needed)}
    # pyarrow reads a blank line as a row of empty cells: such rows (every needed cell empty) are dropped
    # and named, by their position among the parsed rows
    empty = [i for i, cells in enumerate(zip(*cols.values())) if not any(cells)]
    if empty:
        gone = set(empty)
        cols = {c: [x for i, x in enumerate(v) if i not in gone] for c, v in cols.items()}
        dropped += [f"row {i + 1} is empty" for i in empty]
    return Table(path, cols, dropped)


def _header(path: Path, fmt: str) -> list[str]:
    """The header row's cells, read with the same dialect as the data."""
    import pyarrow as pa
    import pyarrow.csv as pcsv
    parse = pcsv.ParseOptions(delimiter="\t" if fmt == "tsv" else ",", quote_char=False if fmt == "tsv" else '"',
                              newlines_in_values=fmt == "csv", invalid_row_handler=lambda row: "skip")
    try:
        with pcsv.open_csv(path, read_options=pcsv.ReadOptions(use_threads=False, block_size=1 << 20),
                           parse_options=parse,
                           convert_options=pcsv.ConvertOptions(column_types={}, strings_can_be_null=False)) as r:
            return list(r.schema.names)
    except pa.ArrowInvalid as e:
        if "utf8" in str(e).lower():
            raise MtkdError(f"{path}: not a UTF-8 text file") from None
        if "Empty CSV file" in str(e):
            raise MtkdError(f"data file is empty: {path}") from None
        raise MtkdError(f"{path}: cannot be read as {fmt.upper()}: {str(e).splitlines()[0]}") from None


def _read_parquet(path: Path, needed) -> Table:
    import pyarrow as pa
    import pyarrow.parquet as pq
    try:
        schema = pq.read_schema(path)
        _missing(path, needed, schema.names)
        t = pq.read_table(path, columns=list(dict.fromkeys(needed)))
    except (pa.ArrowInvalid, OSError) as e:
        raise MtkdError(f"{path}: not a Parquet file ({str(e).splitlines()[0]})") from None
    return Table(path, {c: t.column(c).to_pylist() for c in dict.fromkeys(needed)}, [])


def _read_json(path: Path, needed) -> Table:
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise MtkdError(f"{path}: not a UTF-8 text file") from None
    if text.lstrip().startswith("["):   # one JSON array of objects
        try:
            rows = json.loads(text)
        except json.JSONDecodeError as e:
            raise MtkdError(f"{path}:{e.lineno}: not valid JSON ({e.msg})") from None
        numbered = list(enumerate(rows, 1))
        where = "item"
    else:                               # JSON Lines: one object per line
        numbered = []
        for i, line in enumerate(text.splitlines(), 1):
            if line.strip():
                try:
                    numbered.append((i, json.loads(line)))
                except json.JSONDecodeError:
                    raise MtkdError(f"{path}:{i}: not valid JSON") from None
        where = "line"
    for i, row in numbered:
        if not isinstance(row, dict):
            raise MtkdError(f"{path}:{i}: each {where} must be a JSON object")
    if not numbered:
        raise MtkdError(f"no examples in {path}")
    _missing(path, needed, list(numbered[0][1]))
    for i, row in numbered:
        absent = [c for c in needed if c not in row]
        if absent:
            raise MtkdError(f"{path}: {where} {i} has no '{absent[0]}'")
    return Table(path, {c: [row[c] for _, row in numbered] for c in dict.fromkeys(needed)}, [])
