"""Prompt-library files: every supported shape, directory walking, and malformed
input that must become a clear per-file error (never an exception)."""

from __future__ import annotations

import json
import time

import pytest

from promptguard.parsing.files import DEFAULT_MAX_BYTES, iter_prompt_files, parse_file
from promptguard.sanitize import message_text


def kinds(segs):
    return [(s.prompt, s.kind.value) for s in segs]


def write(tmp_path, name, content, mode="w"):
    p = tmp_path / name
    p.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, bytes):
        p.write_bytes(content)
    else:
        p.write_text(content, encoding="utf-8", newline="")
    return p


MESSAGES = [{"role": "system", "content": "Be concise."},
            {"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"},
            {"role": "user", "content": "Translate 'cat' to French."}]


def test_text_and_markdown_files_are_prompts_with_file_offsets(tmp_path):
    text = "You are a tutor.\n\nQuestion: 1+1?\nOne plus one is two.\nThe answer is 2.\n\nQuestion: {q}\n"
    for name in ("p.txt", "p.md", "p.prompt", "p.tmpl", "NOTES"):
        pf = parse_file(write(tmp_path, name, text))
        assert kinds(pf.segments) == [(0, "instruction"), (0, "demonstration"), (0, "query")], name
        for s in pf.segments:
            a = s.anchors[0]
            assert pf.text[a.source_start : a.source_start + a.length] == s.text
        assert [pf.line_of(s) for s in pf.segments] == [1, 3, 7]
    # a plain system prompt file is one instruction
    assert kinds(parse_file(write(tmp_path, "sys.txt", "Be kind.\nBe brief.\n")).segments) == [(0, "instruction")]


def test_json_shapes(tmp_path):
    cases = {
        "list.json": MESSAGES,
        "obj.json": {"model": "m", "messages": MESSAGES},
        "prompt.json": {"prompt": "Q: a?\nA: 1\n\nQ: b?\nA:"},
        "prompts.json": {"prompt": ["first prompt", "second prompt"]},
        "records.json": [{"messages": MESSAGES}, {"prompt": "plain one"}],
        "collection.json": {"agents": {"writer": {"system": "You write friendly release notes for users."},
                                       "short": "too short"}},
        "string.json": "You are a helpful assistant.",
    }
    got = {name: kinds(parse_file(write(tmp_path, name, json.dumps(obj))).segments) for name, obj in cases.items()}
    chat = [(0, "instruction"), (0, "example"), (0, "query")]
    assert got["list.json"] == chat and got["obj.json"] == chat
    assert got["prompt.json"] == [(0, "example"), (0, "query")]
    assert got["prompts.json"] == [(0, "instruction"), (1, "instruction")]
    assert got["records.json"] == chat + [(1, "instruction")]
    assert got["collection.json"] == [(0, "instruction")]
    assert got["string.json"] == [(0, "instruction")]
    pf = parse_file(tmp_path / "collection.json")
    assert pf.segments[0].source == "agents.writer.system"


def test_chat_segment_offsets_point_into_the_message_content(tmp_path):
    pf = parse_file(write(tmp_path, "c.json", json.dumps({"messages": MESSAGES}, indent=2)))
    for s in pf.segments:
        for a in s.anchors:
            src = message_text(MESSAGES[a.message_index])
            assert src[a.source_start : a.source_start + a.length] == s.text[a.offset : a.offset + a.length]
    lines = pf.text.splitlines()
    q = pf.segments[-1]
    assert "Translate 'cat'" in lines[pf.line_of(q) - 1]


def test_jsonl_one_prompt_per_line_with_bad_lines_as_warnings(tmp_path):
    body = "\n".join([json.dumps({"messages": MESSAGES}), "", "{broken", json.dumps({"prompt": "Say hi to the user please."}),
                      json.dumps({"messages": "nope"})]) + "\n"
    pf = parse_file(write(tmp_path, "d.jsonl", body))
    assert pf.error is None
    assert [k for k in kinds(pf.segments)] == [(0, "instruction"), (0, "example"), (0, "query"), (1, "instruction")]
    assert pf.prompt_lines[0] == 1 and pf.prompt_lines[1] == 4
    assert "line 3: invalid JSON" in pf.warnings[0] and "line 5" in pf.warnings[0]
    assert pf.line_of(pf.segments[-1]) == 4
    only_bad = parse_file(write(tmp_path, "bad.jsonl", "{\n[\n"))
    assert only_bad.error and "line 1: invalid JSON" in only_bad.error


def test_yaml_files(tmp_path):
    y = ("messages:\n  - role: system\n    content: You are a poet.\n"
         "  - role: user\n    content: |\n      Write a haiku\n      about rain.\n")
    pf = parse_file(write(tmp_path, "chat.yml", y))
    assert kinds(pf.segments) == [(0, "instruction"), (0, "query")]
    assert pf.line_of(pf.segments[1]) == 6
    coll = parse_file(write(tmp_path, "c.yaml", "a: |\n  A long enough instruction for the model.\nb: short\n"))
    assert kinds(coll.segments) == [(0, "instruction")]


def test_directories_are_walked_recursively(tmp_path):
    for name in ("a.txt", "sub/b.json", "sub/deeper/c.yaml", "sub/d.jsonl", "e.md", "skip.py", ".hidden/f.txt", "img.png"):
        write(tmp_path, name, "x")
    found = [p.relative_to(tmp_path).as_posix() for p in iter_prompt_files([tmp_path, tmp_path / "a.txt"])]
    assert found == ["a.txt", "e.md", "sub/b.json", "sub/d.jsonl", "sub/deeper/c.yaml"]
    # a file named explicitly is scanned whatever its extension
    assert list(iter_prompt_files([tmp_path / "skip.py"])) == [tmp_path / "skip.py"]


# -- malformed input ----------------------------------------------------------

@pytest.mark.parametrize("name, content, error", [
    ("bin.txt", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "binary file"),
    ("latin1.txt", "caf\xe9 au lait\n".encode("latin-1"), "not valid UTF-8: byte 0xe9 at offset 3 (line 1)"),
    ("broken.json", '{"messages": [{"role": "user", "content": "hi"}\n', "invalid JSON at line 2"),
    ("broken.yaml", "messages:\n  - role: user\n   content: [unclosed\n", "invalid YAML at line"),
    ("wrong.json", '{"messages": [{"role": "robot", "content": "hi"}]}', "messages[0].role"),
    ("notmsgs.json", '{"messages": "hello"}', "'messages' must be a non-empty list"),
    ("deep.json", "[" * 100000 + "]" * 100000, "nested too deeply"),
])
def test_malformed_files_give_a_clear_error(tmp_path, name, content, error):
    pf = parse_file(write(tmp_path, name, content))
    assert pf.segments == []
    assert pf.error is not None and error in pf.error, pf.error


def test_empty_and_whitespace_files_are_warnings_not_errors(tmp_path):
    for name, content in [("e.txt", ""), ("w.md", " \n\n\t"), ("e.json", ""), ("bom.txt", "\ufeff\n")]:
        pf = parse_file(write(tmp_path, name, content))
        assert pf.error is None and pf.segments == [] and pf.warnings == ["empty file"], name
    pf = parse_file(write(tmp_path, "nums.json", "[1, 2, 3]"))
    assert pf.error is None and pf.warnings == ["no prompt text found"]


def test_missing_file_and_directory_as_file(tmp_path):
    assert "cannot read" in parse_file(tmp_path / "nope.txt").error
    (tmp_path / "dir.txt").mkdir()
    assert "not a regular file" in parse_file(tmp_path / "dir.txt").error


def test_a_50_mb_file_is_refused_quickly_as_too_large(tmp_path):
    big = tmp_path / "huge.txt"
    chunk = ("Question: what is 2 + 2?\nTwo plus two is four.\nThe answer is 4.\n\n" * 1000).encode()
    with open(big, "wb") as fh:
        while fh.tell() < 50 * 1024 * 1024:
            fh.write(chunk)
    t0 = time.perf_counter()
    pf = parse_file(big)
    assert time.perf_counter() - t0 < 0.5
    assert pf.error is not None and pf.error.startswith("file too large: 50.0 MiB over the 10.0 MiB limit") and "--max-bytes" in pf.error
    assert DEFAULT_MAX_BYTES == 10 * 1024 * 1024


def test_byte_order_marks(tmp_path):
    pf = parse_file(write(tmp_path, "bom.txt", "\ufeffQ: a?\nA: 1\n\nQ: b?\nA:"))
    assert [s.kind.value for s in pf.segments] == ["example", "query"]
    a = pf.segments[0].anchors[0]
    assert a.source_start == 1 and pf.text[a.source_start : a.source_start + a.length] == pf.segments[0].text
    js = parse_file(write(tmp_path, "bom.json", "\ufeff" + json.dumps({"prompt": "hello there, model"})))
    assert js.error is None and js.segments[0].text == "hello there, model"
    u16 = parse_file(write(tmp_path, "u16.txt", "Be nice to users.".encode("utf-16")))
    assert u16.error is None and u16.segments[0].text == "Be nice to users."
