"""Prompt-library files → segments, with per-file errors instead of exceptions.

Shapes understood, by extension:
- `.txt`, `.md`, `.prompt`: a prompt string (few-shot blocks are split out);
- `.json`, `.yaml`, `.yml`: OpenAI messages (a list, or `{"messages": …}`), a
  completion (`{"prompt": …}`), a LangChain prompt file (`_type`), a list of any
  of these, or — failing all — every string value of 20+ characters as an
  instruction (prompt collections keyed by name);
- `.jsonl`: one of the above per line.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import yaml

from ..segments import Segment, SegmentBuilder, SegmentKind
from .completion import parse_completion
from .errors import ParseError
from .openai import parse_messages

__all__ = ["ParsedFile", "parse_file", "iter_prompt_files", "PROMPT_EXTENSIONS", "DEFAULT_MAX_BYTES"]

TEXT_EXT = {".txt", ".md", ".prompt", ".tmpl"}
STRUCT_EXT = {".json", ".yaml", ".yml"}
PROMPT_EXTENSIONS = TEXT_EXT | STRUCT_EXT | {".jsonl"}
DEFAULT_MAX_BYTES = 10 * 1024 * 1024
_MIN_LEAF = 20


@dataclass
class ParsedFile:
    path: str
    segments: list[Segment] = field(default_factory=list)
    error: str | None = None
    warnings: list[str] = field(default_factory=list)
    text: str = ""
    # per prompt group: first line of that record in the file (JSONL lines, list items)
    prompt_lines: dict[int, int] = field(default_factory=dict)
    structured: bool = False

    def line_of(self, segment: Segment, start: int = 0) -> int:
        """1-based line of a segment position in the file (best effort for JSON/YAML)."""
        if not self.text:
            return 1
        if not self.structured:
            loc = segment.locate(start, start + 1)
            if loc is not None and loc.message_index is None:
                return _line_at(self.text, loc.start)
        needle = segment.text[start : start + 40].split("\n")[0].strip()
        base = self.prompt_lines.get(segment.prompt, 1)
        if needle:
            offset = _offset_of_line(self.text, base)
            for candidate in (needle, json.dumps(needle)[1:-1]):
                k = self.text.find(candidate, offset)
                if k >= 0:
                    return _line_at(self.text, k)
        return base


def _line_at(text: str, offset: int) -> int:
    return text.count("\n", 0, offset) + 1


def _offset_of_line(text: str, line: int) -> int:
    pos = 0
    for _ in range(line - 1):
        nxt = text.find("\n", pos)
        if nxt < 0:
            break
        pos = nxt + 1
    return pos


def iter_prompt_files(paths: list[str | Path]) -> Iterator[Path]:
    """Files to scan: explicit files as given, directories walked for prompt extensions."""
    for p in map(Path, paths):
        if p.is_dir():
            for root, dirs, files in os.walk(p):
                dirs[:] = sorted(d for d in dirs if not d.startswith("."))
                for f in sorted(files):
                    if Path(f).suffix.lower() in PROMPT_EXTENSIONS:
                        yield Path(root) / f
        else:
            yield p


def _decode(path: Path, max_bytes: int) -> str:
    try:
        size = path.stat().st_size
    except OSError as e:
        raise ParseError(f"cannot read: {e.strerror or e}") from None
    if size > max_bytes:
        raise ParseError(
            f"file too large: {size / 1e6:.1f} MB over the {max_bytes / 1e6:.1f} MB limit "
            "(raise it with --max-bytes)"
        )
    try:
        data = path.read_bytes()
    except OSError as e:
        raise ParseError(f"cannot read: {e.strerror or e}") from None
    if b"\x00" in data[:8192]:
        raise ParseError("binary file (NUL bytes), not a prompt")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ParseError(f"not valid UTF-8: byte 0x{data[e.start]:02x} at offset {e.start}") from None
    return text.removeprefix("\ufeff")


def parse_file(path: str | Path, max_bytes: int = DEFAULT_MAX_BYTES) -> ParsedFile:
    path = Path(path)
    out = ParsedFile(str(path))
    try:
        text = _decode(path, max_bytes)
        out.text = text
        if not text.strip():
            out.warnings.append("empty file")
            return out
        ext = path.suffix.lower()
        b = SegmentBuilder()
        if ext == ".jsonl":
            out.structured = True
            _parse_jsonl(text, b, out)
        elif ext == ".json":
            out.structured = True
            try:
                data = json.loads(text)
            except json.JSONDecodeError as e:
                raise ParseError(f"invalid JSON at line {e.lineno}, column {e.colno}: {e.msg}") from None
            _parse_obj(data, b, out, prompt=0)
        elif ext in (".yaml", ".yml"):
            out.structured = True
            try:
                data = yaml.safe_load(text)
            except yaml.YAMLError as e:
                mark = getattr(e, "problem_mark", None)
                where = f" at line {mark.line + 1}" if mark is not None else ""
                raise ParseError(f"invalid YAML{where}: {getattr(e, 'problem', None) or e}") from None
            _parse_obj(data, b, out, prompt=0)
        else:
            parse_completion(text, b, plain_kind=SegmentKind.INSTRUCTION, source="file")
        out.segments = b.segments
        if not out.segments and not out.error:
            out.warnings.append("no prompt text found")
    except ParseError as e:
        out.error = str(e)
    except RecursionError:
        out.error = "structure nested too deeply"
    return out


def _parse_jsonl(text: str, b: SegmentBuilder, out: ParsedFile) -> None:
    bad: list[str] = []
    prompt = 0
    for lineno, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as e:
            bad.append(f"line {lineno}: invalid JSON ({e.msg})")
            continue
        out.prompt_lines[prompt] = lineno
        try:
            _parse_obj(obj, b, out, prompt=prompt, nested_lists=False)
        except ParseError as e:
            bad.append(f"line {lineno}: {e}")
        prompt += 1
    if bad:
        msg = "; ".join(bad[:5]) + (f"; and {len(bad) - 5} more" if len(bad) > 5 else "")
        if b.segments:
            out.warnings.append(msg)
        else:
            raise ParseError(msg)


def _is_messages(obj: Any) -> bool:
    return isinstance(obj, list) and bool(obj) and all(
        isinstance(m, dict) and "role" in m for m in obj
    )


def _parse_obj(obj: Any, b: SegmentBuilder, out: ParsedFile, prompt: int, nested_lists: bool = True) -> int:
    """Parse one JSON/YAML value; returns the next free prompt number."""
    if _is_messages(obj):
        parse_messages(obj, b, prompt=prompt)
        return prompt + 1
    if isinstance(obj, dict):
        if "_type" in obj:
            from .langchain import parse_langchain_prompt_obj

            parse_langchain_prompt_obj(obj, b, prompt=prompt)
            return prompt + 1
        if "messages" in obj:
            msgs = obj["messages"]
            if not _is_messages(msgs):
                raise ParseError("'messages' must be a non-empty list of {role, content} objects")
            parse_messages(msgs, b, prompt=prompt)
            return prompt + 1
        if "prompt" in obj and isinstance(obj["prompt"], (str, list)):
            prompts = [obj["prompt"]] if isinstance(obj["prompt"], str) else obj["prompt"]
            for p in prompts:
                if not isinstance(p, str):
                    raise ParseError("'prompt' must be a string or a list of strings")
                parse_completion(p, b, prompt=prompt, plain_kind=SegmentKind.INSTRUCTION, source="file")
                prompt += 1
            return prompt
    if isinstance(obj, list) and nested_lists and any(
        isinstance(x, dict) and ("messages" in x or "prompt" in x or "_type" in x) or _is_messages(x)
        for x in obj
    ):
        for x in obj:
            prompt = _parse_obj(x, b, out, prompt, nested_lists=False)
        return prompt
    # a prompt collection of unknown shape: every long string is an instruction
    found = False
    for keypath, s in _string_leaves(obj, ""):
        if len(s.strip()) >= _MIN_LEAF:
            parse_completion(s, b, prompt=prompt, plain_kind=SegmentKind.INSTRUCTION, source=keypath or "file")
            prompt += 1
            found = True
    if not found and isinstance(obj, str) and obj.strip():
        parse_completion(obj, b, prompt=prompt, plain_kind=SegmentKind.INSTRUCTION, source="file")
        prompt += 1
    return prompt


def _string_leaves(obj: Any, path: str, depth: int = 0) -> Iterator[tuple[str, str]]:
    if depth > 50:
        raise ParseError("structure nested too deeply")
    if isinstance(obj, str):
        yield path, obj
    elif isinstance(obj, dict):
        for k, v in obj.items():
            yield from _string_leaves(v, f"{path}.{k}" if path else str(k), depth + 1)
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield from _string_leaves(v, f"{path}[{i}]", depth + 1)
