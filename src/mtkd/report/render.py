"""The report's blocks rendered as Markdown and as one self-contained HTML page.

A block is a tuple: ("h1" | "h2" | "h3", text), ("p", inline Markdown), ("md", a Markdown file's text),
("note", inline Markdown: a caption-sized paragraph), ("ul", [inline Markdown]), ("code", text), ("table", Table[, source CSV[, collapse]]) (collapse: closed
whatever its length, e.g. the numbers of the plot above it), ("img", path, figure),
("imgs", [(path, figure), ...]) (a row of small plots), ("details", summary, [blocks], link) and ("toc",).
Headings get the anchors MkDocs and GitHub give them (`slug`), listed by ("toc",). In the HTML a table of
more than LONG rows, a ("details", ...) block and the config are closed sections one click away; in the
Markdown they are a link to their file (`link`, the table's source), so both keep one order. File names
that exist in the run folder become links in both.
"""
from __future__ import annotations

import base64
import html
import re
import unicodedata
from pathlib import Path

from mtkd.tables import Table

LONG = 25   # rows: a longer table is collapsed (HTML) or linked (Markdown)
HALF = 544  # px: a plot at most this wide goes beside another (half the 1,100 px column)
CSS = ("body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;max-width:1100px;margin:.8em auto 3em;"
       "padding:0 1em;color:#222;line-height:1.4;font-size:15px}"
       "h1{font-size:24px;margin:.2em 0 .1em}h2{font-size:19px;margin:1.6em 0 .4em;padding-bottom:2px;"
       "border-bottom:1px solid #ddd}h3{font-size:16px;margin:1.2em 0 .3em}"
       "p,ul{margin:.35em 0 .6em}li{margin:.1em 0}"
       "table{border-collapse:collapse;margin:.4em 0 .9em;font-size:13px;max-width:100%}"
       "th,td{border:1px solid #bbb;padding:2px 6px;text-align:left;vertical-align:top;overflow-wrap:break-word}"
       "th{background:#eee}"
       "pre{background:#f6f6f6;padding:.8em;overflow-x:auto;font-size:12px;max-width:100%;box-sizing:border-box}"
       "code{font-size:.92em;background:#f3f3f3;padding:0 2px;overflow-wrap:anywhere}"
       "img{max-width:100%;height:auto;display:block}figure{margin:.4em 0 1em}"
       ".row{display:flex;flex-wrap:wrap;gap:0 12px}.row figure{flex:1 1 0;min-width:40%;max-width:calc(50% - 6px)}"
       ".caption{color:#555;font-size:13px}.meta{color:#555;margin:0 0 .4em}"
       "details{margin:.3em 0 .9em}summary{cursor:pointer;color:#0645ad}"
       "nav.toc ol{columns:3;column-gap:2em;font-size:14px;margin:.3em 0;padding-left:1.6em}"
       "a{color:#0645ad}h2#the-answer{margin-top:.5em}")


def slug(text: str, seen: set | None = None) -> str:
    """The anchor MkDocs (Python-Markdown's toc) gives a heading; GitHub's is the same for the report's headings
    (no double spaces or dashes). `seen`: the anchors in use, to make a repeat unique as MkDocs does (_1, _2)."""
    s = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    s = re.sub(r"[-\s]+", "-", re.sub(r"[^\w\s-]", "", s).strip().lower())
    if seen is not None:
        while s in seen or not s:
            m = re.match(r"^(.*)_([0-9]+)$", s)
            s = f"{m.group(1)}_{int(m.group(2)) + 1}" if m else f"{s}_1"
        seen.add(s)
    return s


def anchors(blocks: list[tuple]) -> list[tuple[str, str, str]]:
    """(kind, text, anchor) of every heading, in order, with unique anchors."""
    seen: set = set()
    return [(b[0], b[1], slug(b[1], seen)) for b in blocks if b[0] in ("h1", "h2", "h3")]


# ---------------------------------------------------------------- inline Markdown

LINK = re.compile(r"\[([^\]]+)\]\(([^)\s]+)\)")
SPANS = re.compile(r"(`[^`]+`|\[[^\]]+\]\([^)\s]+\))")   # code spans and links: their text is never re-linked


def link_files(text: str, files: set[str]) -> str:
    """Markdown `text` with every mention of a file of `files` (a path relative to the run folder, plain or as a
    code span) made a link to it; existing links are left as they are."""
    if not files:
        return text
    names = re.compile(r"(?<![\w/.-])(" + "|".join(re.escape(f) for f in sorted(files, key=len, reverse=True))
                       + r")(?![\w/-])")
    out = []
    for part in SPANS.split(text):
        if part.startswith("`") and part.endswith("`") and len(part) > 1:
            out.append(f"[{part}]({part[1:-1]})" if part[1:-1] in files else part)
        elif LINK.fullmatch(part):
            out.append(part)
        else:
            out.append(names.sub(lambda m: f"[{m.group(1)}]({m.group(1)})", part))
    return "".join(out)


def inline(s: str) -> str:
    """HTML of one line of inline Markdown: `code`, **bold**, *italic*, [links](url) (relative paths and web or
    mail addresses; any other scheme stays text); the rest escaped. Code spans first: nothing inside them is bold or
    a link, but bold, italic and link text may hold them."""
    def link(m: re.Match) -> str:
        scheme = re.match(r"([a-zA-Z][\w+.-]*):", html.unescape(m.group(2)))
        return m.group(0) if scheme and scheme.group(1).lower() not in ("http", "https", "mailto") \
            else f'<a href="{m.group(2)}">{m.group(1)}</a>'
    codes = []

    def hold(m: re.Match) -> str:
        codes.append(f"<code>{html.escape(m.group(1))}</code>")
        return f"\x00{len(codes) - 1}\x00"
    out = html.escape(re.sub(r"`([^`]+)`", hold, s.replace("\x00", "")))
    out = re.sub(r"\*\*([^*]+)\*\*", r"<b>\1</b>", out)
    out = re.sub(r"(?<![\w*])\*([^*\s](?:[^*]*[^*\s])?)\*(?![\w*])", r"<i>\1</i>", out)
    out = re.sub(r"\[([^\]]+)\]\(([^)\s]+)\)", link, out)
    return re.sub(r"\x00(\d+)\x00", lambda m: codes[int(m.group(1))], out)


def md_to_html(text: str) -> str:
    """The small Markdown subset of a hand-written findings file: `#` headings (one to six, then a space),
    `- ` list items (indented lines continue an item), pipe tables (`| a | b |`, a `|---|` rule after the
    header; `\\|` is a pipe inside a cell), paragraphs and the inline subset of `inline`; anything else is text."""
    out, para, items, rows = [], [], [], []

    def cells(line: str) -> list[str]:   # as in GitHub's tables, `\|` is a pipe inside a cell (code spans too)
        line = re.sub(r"^\||(?<!\\)\|$", "", line.strip())
        return [c.strip().replace("\\|", "|") for c in re.split(r"(?<!\\)\|", line)]

    def flush():
        if para:
            out.append(f"<p>{inline(' '.join(para))}</p>")
            para.clear()
        if items:
            out.append("<ul>" + "".join(f"<li>{inline(i)}</li>" for i in items) + "</ul>")
            items.clear()
        if rows:
            rule = len(rows) > 1 and all(re.fullmatch(r":?-+:?", c) for c in cells(rows[1]))
            head, body = (rows[0], rows[2:]) if rule else (None, rows)
            out.append("<table>" + (f"<tr>{''.join(f'<th>{inline(c)}</th>' for c in cells(head))}</tr>" if head else "")
                       + "".join(f"<tr>{''.join(f'<td>{inline(c)}</td>' for c in cells(r))}</tr>" for r in body)
                       + "</table>")
            rows.clear()
    for line in text.replace("\r\n", "\n").split("\n"):
        heading = re.match(r"(#{1,6}) +(.*)", line)
        if not line.strip():
            flush()
        elif heading:
            flush()
            out.append(f"<h3>{inline(heading.group(2).strip())}</h3>")
        elif line.lstrip().startswith("|"):
            if para or items:
                flush()
            rows.append(line)
        elif line.startswith(("- ", "* ")):
            if para or rows:
                flush()
            items.append(line[2:].strip())
        elif items and line.startswith(" "):
            items[-1] += " " + line.strip()
        else:
            if items or rows:
                flush()
            para.append(line.strip())
    flush()
    return "\n".join(out)


# ---------------------------------------------------------------- Markdown

def _rows_note(table: Table, source: str | None) -> str:
    n = len(table.rows)
    if not source:
        return f"{n} rows"
    md = source[:-4] + ".md" if source.endswith(".csv") else None
    return f"{n} rows: " + " · ".join(f"[{p}]({p})" for p in ([md] if md else []) + [source])


def to_markdown(blocks: list[tuple], files: set[str] = frozenset()) -> str:
    heads = iter(anchors(blocks))
    toc = [(t, a) for k, t, a in anchors(blocks) if k == "h2" and t != "Contents"]
    out = []
    for kind, *rest in blocks:
        if kind in ("h1", "h2", "h3"):
            next(heads)
            out.append({"h1": "# ", "h2": "## ", "h3": "### "}[kind] + rest[0])
        elif kind == "toc":
            out.append("\n".join(f"- [{t}](#{a})" for t, a in toc))
        elif kind in ("p", "md", "note"):
            out.append(link_files(rest[0], files))
        elif kind == "ul":
            out.append("\n".join(f"- {link_files(line, files)}" for line in rest[0]))
        elif kind == "code":
            fence = "````" if "```" in rest[0] else "```"
            out.append(f"{fence}yaml\n{rest[0].rstrip()}\n{fence}")
        elif kind == "table":
            table, source, collapse = (*rest, None, False)[:3]
            if not table.columns:
                out.append("(empty table)")
            elif (len(table.rows) > LONG or collapse) and source:
                out.append(_rows_note(table, source))
            else:
                out.append(table.to_markdown().rstrip())
        elif kind == "img":
            out.append(_md_img(*rest))
        elif kind == "imgs":
            out.append("\n\n".join(_md_img(p, f) for p, f in rest[0]))
        elif kind == "details":
            summary, inner, link = rest
            out.append(f"{summary}: [{link}]({link})" if link else to_markdown(inner, files).rstrip())
    return "\n\n".join(out) + "\n"


def _md_img(path: str, fig: dict) -> str:
    link = f"<{path}>" if re.search(r"[\s()<>]", path) else path   # a folder name with spaces
    return f"![{fig['title']}]({link})\n\n*{fig['title']}.* {fig['caption']}"


# ---------------------------------------------------------------- HTML

def _cell(text: str) -> str:
    """An escaped cell that may wrap after _ and / (long method names and paths) as well as at spaces."""
    return re.sub(r"([_/])", r"\1<wbr>", html.escape(str(text)))


def table_html(table: Table) -> str:
    head = "".join(f"<th>{_cell(c)}</th>" for c in table.columns)
    body = "".join("<tr>" + "".join(f"<td>{_cell(c)}</td>" for c in row) + "</tr>\n" for row in table.rows)
    return f"<table>\n<thead><tr>{head}</tr></thead>\n<tbody>\n{body}</tbody>\n</table>"


def _html_table(table: Table, source: str | None = None, collapse: bool = False) -> str:
    if not table.columns:
        return "<p>(empty table)</p>"
    if len(table.rows) <= LONG and not collapse:
        return table_html(table)
    where = f' — <a href="{html.escape(source)}">{html.escape(source)}</a>' if source else ""
    return (f"<details><summary>Show the table ({len(table.rows)} rows)</summary>{where and f'<p>{where[3:]}</p>'}"
            f"\n{table_html(table)}</details>")


def png_width(data: bytes) -> int:
    """The width of a PNG in pixels (0 if it is none)."""
    return int.from_bytes(data[16:20], "big") if data[:8] == b"\x89PNG\r\n\x1a\n" else 0


def _html_img(run_dir: Path, path: str, fig: dict) -> str:
    """The figure embedded, linked to its file (a figure wider than the column opens at full size in one click)."""
    data = (run_dir / path).read_bytes()
    e = html.escape
    return (f'<figure><a href="{e(path)}"><img src="data:image/png;base64,{base64.b64encode(data).decode("ascii")}" '
            f'alt="{e(fig["title"])}"></a><figcaption class="caption"><b>{e(fig["title"])}.</b> '
            f'{inline(fig["caption"])}</figcaption></figure>')


def to_html(blocks: list[tuple], run_dir: Path, files: set[str] = frozenset()) -> str:
    heads = iter(anchors(blocks))
    toc = [(t, a) for k, t, a in anchors(blocks) if k == "h2" and t != "Contents"]
    body = _html_blocks(blocks, Path(run_dir), files, heads, toc)
    title = html.escape(blocks[0][1]) if blocks and blocks[0][0] == "h1" else "mtkd report"
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1"><title>{title}</title>'
            f"<style>{CSS}</style></head>\n<body>\n" + "\n".join(body) + "\n</body></html>\n")


def _html_blocks(blocks, run_dir: Path, files: set[str], heads, toc) -> list[str]:
    e = html.escape
    body = []
    for kind, *rest in blocks:
        if kind in ("h1", "h2", "h3"):
            body.append(f'<{kind} id="{next(heads)[2]}">{e(rest[0])}</{kind}>')
        elif kind == "toc":
            body.append('<nav class="toc"><ol>' + "".join(f'<li><a href="#{a}">{e(t)}</a></li>' for t, a in toc)
                        + "</ol></nav>")
        elif kind in ("p", "note"):
            cls = ' class="caption"' if kind == "note" else ""
            body.append(f"<p{cls}>{inline(link_files(rest[0], files))}</p>")
        elif kind == "md":
            body.append(md_to_html(link_files(rest[0], files)))
        elif kind == "ul":
            body.append("<ul>" + "".join(f"<li>{inline(link_files(line, files))}</li>" for line in rest[0]) + "</ul>")
        elif kind == "code":
            body.append(f"<pre><code>{e(rest[0])}</code></pre>")
        elif kind == "table":
            body.append(_html_table(*rest))
        elif kind == "img":
            body.append(_html_img(run_dir, *rest))
        elif kind == "imgs":   # side by side when each fits half the column (HALF px), else one under another
            row = all(png_width((run_dir / p).read_bytes()) <= HALF for p, _ in rest[0])
            figs = "".join(_html_img(run_dir, p, f) for p, f in rest[0])
            body.append(f'<div class="row">{figs}</div>' if row else figs)
        elif kind == "details":
            summary, inner, link = rest
            where = f'<p><a href="{e(link)}">{e(link)}</a></p>' if link else ""
            body.append(f"<details><summary>{inline(summary)}</summary>{where}\n"
                        + "\n".join(_html_blocks(inner, run_dir, files, heads, toc)) + "</details>")
    return body
