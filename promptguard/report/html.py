"""The HTML report: one self-contained page per scan, for a reviewer who would rather look
than read.

The page holds a summary chart (files per verdict, findings per detector: inline SVG), an
index of the files with their verdicts, and per file its findings and its segments, each
segment's text shown with the findings highlighted on their spans. It loads nothing: no
script, no font, no image, no stylesheet from anywhere (a Content-Security-Policy of
`default-src 'none'` says so to the browser too), and every piece of prompt text is
escaped, so a prompt that carries `<img src=…>` or a markdown image stays text.

Highlights: each finding's span in its segment's text is marked with `<mark>` pieces
carrying `data-f` (the indices of the findings that cover the piece, in the file's
findings list); overlapping findings split the text into pieces, and a piece is coloured
by the most severe action among its findings. The first piece of finding `i` of file `n`
has the id `m-n-i`, which the findings table links to.
"""

from __future__ import annotations

import datetime as _dt
from html import escape
from itertools import pairwise

from .. import __version__
from ..scanner import FileResult, ScanReport
from .common import ACTION_RANK, VERDICTS, top_finding, where, who

__all__ = ["MAX_SEGMENT_CHARS", "to_html"]

MAX_SEGMENT_CHARS = 200_000  # text shown per segment; findings beyond it stay in the table
_RANK = {"block": 4, "sanitize": 3, "flag": 2, "error": 1, "allow": 0}

_COLOURS = {"block": "#c62828", "sanitize": "#8e24aa", "flag": "#ef8f00", "allow": "#2e7d32", "error": "#6d4c41"}
_MARK = {"block": "#ffcdd2", "sanitize": "#e1bee7", "flag": "#ffe0b2", "allow": "#e0e0e0"}

_CSS = """
:root { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: #212121; }
body { margin: 0 auto; max-width: 1200px; padding: 1rem 1.5rem 4rem; line-height: 1.45; }
h1 { font-size: 1.5rem; margin: .2rem 0; } h2 { font-size: 1.15rem; margin: 1.5rem 0 .5rem; }
.meta { color: #616161; font-size: .9rem; }
.charts { display: flex; flex-wrap: wrap; gap: 2rem; margin: 1rem 0; }
.charts figure { margin: 0; } .charts figcaption { font-size: .85rem; color: #616161; }
table { border-collapse: collapse; width: 100%; font-size: .9rem; }
th, td { text-align: left; padding: .3rem .5rem; border-bottom: 1px solid #e0e0e0; vertical-align: top; }
th { background: #fafafa; }
.badge { display: inline-block; padding: .05rem .45rem; border-radius: .6rem; color: #fff; font-size: .8rem;
         font-weight: 600; text-transform: uppercase; letter-spacing: .02em; }
""" + "".join(f".badge.{k} {{ background: {c}; }}\n" for k, c in _COLOURS.items()) + """
section.file { border: 1px solid #e0e0e0; border-radius: .4rem; margin: .8rem 0; }
section.file > details > summary { cursor: pointer; padding: .5rem .8rem; font-weight: 600; }
section.file .body { padding: 0 .8rem .8rem; }
.segment { margin: .8rem 0; border-left: 3px solid #bdbdbd; padding-left: .6rem; }
.segment.has-findings { border-left-color: #ef8f00; }
.seg-head { font-size: .8rem; color: #616161; margin-bottom: .2rem; }
pre.text { white-space: pre-wrap; word-break: break-word; background: #fafafa; padding: .5rem; margin: 0;
           font-size: .85rem; border-radius: .3rem; }
mark { border-radius: .15rem; padding: 0 .05rem; }
""" + "".join(f"mark.act-{k} {{ background: {c}; }}\n" for k, c in _MARK.items()) + """
mark:target { outline: 2px solid #1565c0; }
.warn { color: #6d4c41; font-size: .85rem; }
.truncated { color: #616161; font-style: italic; }
a { color: #1565c0; }
"""


def _bar_chart(title: str, items: list[tuple[str, int, str]], chart_id: str) -> str:
    """A horizontal bar chart as inline SVG: (label, value, colour) per bar."""
    width, bar_h, gap, label_w = 360, 20, 6, 110
    top = max([v for _, v, _ in items] + [1])
    h = len(items) * (bar_h + gap) + gap
    rows = []
    for i, (label, value, colour) in enumerate(items):
        y = gap + i * (bar_h + gap)
        w = 0 if value == 0 else max(2, round((width - label_w - 50) * value / top))
        rows.append(
            f'<text x="{label_w - 6}" y="{y + bar_h - 6}" text-anchor="end" font-size="12">{escape(label)}</text>'
            f'<rect class="bar" data-label="{escape(label)}" data-count="{value}" x="{label_w}" y="{y}" '
            f'width="{w}" height="{bar_h}" fill="{colour}" rx="3"><title>{escape(label)}: {value}</title></rect>'
            f'<text x="{label_w + w + 6}" y="{y + bar_h - 6}" font-size="12">{value}</text>')
    return (f'<figure id="{chart_id}"><svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{h}" '
            f'role="img" aria-label="{escape(title)}">{"".join(rows)}</svg>'
            f'<figcaption>{escape(title)}</figcaption></figure>')


def _highlighted(n: int, text: str, spans: list[tuple[int, int, int, str]]) -> str:
    """`text` escaped, with (start, end, finding index, action) spans marked; overlapping
    spans split into pieces that carry every finding covering them."""
    shown = text[:MAX_SEGMENT_CHARS]
    cuts = {0, len(shown)}
    inside = [(max(0, s), min(e, len(shown)), i, a) for s, e, i, a in spans if s < len(shown) and e > s]
    for s, e, _, _ in inside:
        cuts.update((s, e))
    points = sorted(cuts)
    out, first_seen = [], set()
    for a, b in pairwise(points):
        piece = escape(shown[a:b])
        cover = [(i, act) for s, e, i, act in inside if s <= a and b <= e]
        if not cover:
            out.append(piece)
            continue
        act = max((act for _, act in cover), key=lambda x: ACTION_RANK.get(x, 1))
        ids = " ".join(str(i) for i, _ in cover)
        starts = [i for i, _ in cover if i not in first_seen]
        first_seen.update(starts)
        # the first piece of a finding carries its id (more than one start here: empty anchors)
        out.extend(f'<span class="anchor" id="m-{n}-{i}"></span>' for i in starts[1:])
        anchor = f' id="m-{n}-{starts[0]}"' if starts else ""
        out.append(f'<mark class="act-{act}" data-f="{ids}"{anchor}>{piece}</mark>')
    html = "".join(out)
    if len(text) > len(shown):
        html += f'<span class="truncated">\n… {len(text) - len(shown):,} more characters not shown</span>'
    return html


def _segment_blocks(n: int, fr: FileResult) -> str:
    texts = fr.texts or []
    local = fr.local_spans or [None] * len(fr.findings)
    blocks = []
    for si, seg in enumerate(fr.segments):
        text = texts[si] if si < len(texts) else ""
        key = (seg["kind"], seg["index"], seg.get("prompt", 0))
        spans = []
        for fi, (f, sp) in enumerate(zip(fr.findings, local)):
            if (f["segment_kind"], f["segment_index"], f.get("prompt", 0)) == key and sp is not None:
                spans.append((sp[0], sp[1], fi, f.get("action", "flag")))
        head = [f"{seg['kind']}[{seg['index']}]", f"line {seg.get('line', 1)}"]
        if seg.get("message_index") is not None:
            head.append(f"message {seg['message_index']}")
        if seg.get("prompt"):
            head.append(f"prompt {seg['prompt']}")
        if seg.get("steps") is not None:
            head.append(f"{seg['steps']} steps")
        if "trusted" in seg:
            head.append("trusted" if seg["trusted"] else "untrusted")
        body = _highlighted(n, text, spans)
        cls = "segment has-findings" if spans else "segment"
        # where the segment's text starts in its source (the file, or a message's content)
        start = f' data-source-start="{seg["span"][0]}"' if seg.get("span") else ""
        blocks.append(
            f'<div class="{cls}" data-kind="{seg["kind"]}" data-index="{seg["index"]}" '
            f'data-prompt="{seg.get("prompt", 0)}"{start} id="s-{n}-{si}"><div class="seg-head">'
            f'{escape(" · ".join(head))}</div><pre class="text">{body}</pre></div>')
    return "".join(blocks)


def _findings_table(n: int, fr: FileResult) -> str:
    if not fr.findings:
        return ""
    local = fr.local_spans or [None] * len(fr.findings)
    rows = []
    for i, (f, sp) in enumerate(zip(fr.findings, local)):
        act = f.get("action", "flag")
        loc = escape(where(f))
        if sp is not None and sp[0] < MAX_SEGMENT_CHARS:
            loc = f'<a href="#m-{n}-{i}">{loc}</a>'
        rows.append(
            f'<tr class="finding" data-i="{i}" data-action="{act}"><td><span class="badge {act}">{act}</span></td>'
            f"<td>{escape(who(f))}</td><td>{f['score']:.2f}</td><td>{escape(f['message'])}</td><td>{loc}</td>"
            f"<td><code>{escape((f.get('evidence') or '')[:200])}</code></td></tr>")
    return ("<table class=\"findings\"><thead><tr><th>action</th><th>detector/rule</th><th>score</th>"
            "<th>message</th><th>where</th><th>evidence</th></tr></thead><tbody>" + "".join(rows) + "</tbody></table>")


def _file_section(n: int, fr: FileResult) -> str:
    v = fr.verdict
    shown = sum(1 for f in fr.findings if f.get("action", "flag") != "allow")
    below = len(fr.findings) - shown
    count = f"{shown} finding{'s' if shown != 1 else ''}" + (f", {below} below the flag threshold" if below else "")
    summary = (f'<summary><span class="badge {v}">{v}</span> <span class="path">{escape(fr.path)}</span> '
               f'<span class="meta">— {count}</span></summary>')
    parts = []
    if fr.error:
        parts.append(f'<p class="warn">could not be scanned: {escape(fr.error)}</p>')
    for w in fr.warnings:
        parts.append(f'<p class="warn">{escape(w)}</p>')
    parts.append(_findings_table(n, fr))
    if fr.texts is None and fr.segments:
        parts.append('<p class="warn">segment texts were not kept for this report</p>')
    else:
        parts.append(_segment_blocks(n, fr))
    is_open = " open" if v not in ("allow",) else ""
    return (f'<section class="file" id="f-{n}" data-verdict="{v}" data-path="{escape(fr.path)}">'
            f"<details{is_open}>{summary}<div class=\"body\">{''.join(parts)}</div></details></section>")


def to_html(report: ScanReport, *, title: str = "promptguard scan") -> str:
    """The report as one self-contained HTML page (see the module docstring). The report
    should come from a scan with `keep_text=True` (the CLI does that for `--format
    html`); without the texts the page lists findings but cannot show them on the text."""
    s = report.summary
    v = s["verdicts"]
    detectors: dict[str, int] = {}
    for fr in report.files:
        for f in fr.findings:
            if f.get("action", "flag") != "allow":
                detectors[f["detector"]] = detectors.get(f["detector"], 0) + 1
    charts = _bar_chart("files per verdict", [(k, v.get(k, 0), _COLOURS[k]) for k in VERDICTS], "chart-verdicts")
    if detectors:
        charts += _bar_chart("findings at or above the flag threshold, per detector",
                             [(d, c, "#1565c0") for d, c in sorted(detectors.items(), key=lambda x: -x[1])],
                             "chart-detectors")
    # the files a reviewer must look at first: block, sanitize, flag, error, then allow
    order = sorted(range(len(report.files)), key=lambda n: (-_RANK.get(report.files[n].verdict, 0), n))
    index_rows = []
    for n in order:
        fr = report.files[n]
        top = top_finding(fr)
        what = escape(fr.error) if fr.error else (
            escape(f"{who(top)}: {top['message']}") if top is not None and top.get("action") != "allow" else "")
        index_rows.append(
            f'<tr data-verdict="{fr.verdict}"><td><span class="badge {fr.verdict}">{fr.verdict}</span></td>'
            f'<td><a href="#f-{n}">{escape(fr.path)}</a></td><td>{what}</td></tr>')
    when = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    meta = (f"{s['files']} files · {s['findings']} findings · policy {escape(str(s['policy']))} · "
            f"{s['seconds']:.2f}s · promptguard {__version__} · {when}")
    counts = ", ".join(f"{v.get(k, 0)} {k}" for k in VERDICTS)
    return (
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'\">"
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
        f"<title>{escape(title)}: {s['files']} files</title><style>{_CSS}</style></head><body>"
        f"<header><h1>{escape(title)}</h1><p class=\"meta\">{meta}</p><p id=\"verdict-counts\">{counts}</p>"
        f"<div class=\"charts\">{charts}</div></header>"
        "<h2>Files</h2><table class=\"index\"><thead><tr><th>verdict</th><th>file</th><th>why</th></tr></thead>"
        f"<tbody>{''.join(index_rows)}</tbody></table>"
        f"<h2>Details</h2><main>{''.join(_file_section(n, report.files[n]) for n in order)}</main>"
        "</body></html>\n")
