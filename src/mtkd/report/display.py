"""How the report shows an analysis table (the CSV itself is never changed, and is linked beside it).

- one interval style: every `<x>ci_low` / `<x>ci_high` pair is one column `<x>95% CI`, written [low, high];
- ECE in % (the calibration table's fraction, as in the master table);
- `p_per_seed` as "seed: p" pairs, left out where every row has one seed (it is then p_value);
- a student that trains exactly as another present one (gap.DUPLICATE_OF) flagged in `duplicate_of` even in an
  analysis written before that column existed;
- a column that is the same in every row is dropped and said once in a note under the table;
- master_results' `<column>_sd` folded into its column as "mean ± sd".
"""
from __future__ import annotations

import re

from mtkd.analysis.gap import DUPLICATE_OF
from mtkd.tables import NA, Table


def ci_text(low, high, digits: int = 2, sign: bool = True) -> str:
    """[low, high] (n/a when either end is missing): the report's one way of writing an interval."""
    if low in (None, "", NA) or high in (None, "", NA):
        return NA
    try:
        low, high = float(low), float(high)
    except (TypeError, ValueError):
        return NA
    return f"[{num(low, digits, sign)}, {num(high, digits, sign)}]"


def num(x, digits: int = 2, sign: bool = False) -> str:
    """A number as the report writes it (n/a for None); `sign`: a + before positive differences."""
    if x is None or x == "" or x == NA:
        return NA
    x = float(x)
    if x != x:   # NaN
        return NA
    return f"{x:+.{digits}f}" if sign else f"{x:.{digits}f}"


def shown(table: Table, name: str = "") -> tuple[Table, list[str]]:
    """The table as the report shows it, and the notes that go under it (the columns it dropped)."""
    cols, rows = list(table.columns), [list(r) for r in table.rows]
    if name == "calibration" and "ECE" in cols:
        i = cols.index("ECE")
        cols[i] = "ECE (%)"
        for r in rows:
            r[i] = num(100 * float(r[i]), 2) if _is_number(r[i]) else r[i]
    notes = []
    if "p_per_seed" in cols:
        i = cols.index("p_per_seed")
        if all(len([p for p in r[i].split(";") if p]) <= 1 for r in rows):
            cols, rows = _drop(cols, rows, i)
            notes.append("one seed pair per row: p_per_seed is p_value")
        else:
            for r in rows:
                r[i] = ", ".join(f"seed {s}: {p}" for s, _, p in (x.partition(":") for x in r[i].split(";") if x))
    if name == "significance":
        cols, rows = _flag_duplicates(cols, rows)
    for i in reversed(range(len(cols))):   # ci_low, ci_high -> one "95% CI" column
        c = cols[i]
        if c.endswith("ci_low") and c[:-3] + "high" in cols:
            j = cols.index(c[:-3] + "high")
            for r in rows:
                r[i] = ci_text(r[i], r[j], _digits(r[i]), sign=False)
            cols[i] = (c[:-6] + "95% CI").strip()
            cols, rows = _drop(cols, rows, j)
    if len(rows) > 1:
        same = [i for i, c in enumerate(cols) if len({r[i] for r in rows}) == 1]
        said = [f"{cols[i]} = {rows[0][i]}" if rows[0][i] else f"{cols[i]}: none" for i in same]
        for i in reversed(same):
            cols, rows = _drop(cols, rows, i)
        if said:
            notes.append("the same in every row: " + "; ".join(said))
    return Table(cols, rows), notes


def _is_number(s: str) -> bool:
    try:
        float(s)
        return True
    except ValueError:
        return False


def _digits(s: str) -> int:
    m = re.fullmatch(r"-?\d+(?:\.(\d+))?", s.strip())
    return len(m.group(1) or "") if m else 2


def _drop(cols: list[str], rows: list[list[str]], i: int):
    return cols[:i] + cols[i + 1:], [r[:i] + r[i + 1:] for r in rows]


def _flag_duplicates(cols: list[str], rows: list[list[str]]):
    """significance.csv of an older analysis has no duplicate_of: say it where a twin of the same task is there."""
    if "duplicate_of" in cols or not {"task", "method"} <= set(cols):
        return cols, rows
    t, m = cols.index("task"), cols.index("method")
    present = {(r[t], r[m]) for r in rows}
    return cols + ["duplicate_of"], [r + [DUPLICATE_OF[r[m]] if (r[t], DUPLICATE_OF.get(r[m])) in present else ""]
                                     for r in rows]


def mean_sd(table: Table) -> Table:
    """The master table with each `<column>_sd` folded into its column as "mean ± sd" (a model of one seed,
    e.g. a teacher trained once, keeps its plain mean)."""
    cols = table.columns
    keep = [c for c in cols if not (c.endswith("_sd") and c[:-3] in cols)]

    def value(row: dict, c: str) -> str:
        sd = row.get(f"{c}_sd", "") if f"{c}_sd" in cols else ""
        return f"{row[c]} ± {sd}" if sd and row[c] else row[c]
    rows = [dict(zip(cols, r)) for r in table.rows]
    return Table(keep, [[value(r, c) for c in keep] for r in rows])
