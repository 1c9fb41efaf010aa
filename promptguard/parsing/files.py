"""Prompt-library files → segments, with per-file errors instead of exceptions.

Shapes understood, by extension:
- `.txt`, `.md`, `.prompt`, `.tmpl` (and files given by name with any other
  extension): a prompt string (few-shot blocks are split out);
- `.json`, `.yaml`, `.yml`: OpenAI messages (a list, or `{"messages": …}`), a
  completion (`{"prompt": …}`), a LangChain prompt file (`_type`, or the
  `"lc": 1` serialized form), a LangChain message list (`messages_to_dict`), a
  list of any of these, or — failing all — every string value of 20+ characters
  as an instruction (prompt collections keyed by name);
- `.jsonl`: one of the above per line.

Spans of segments from text files are character offsets into the file's decoded
text (a UTF-8 byte-order mark counts as one character); segments from JSON/YAML
point into the string value they came from (with its message index for chat
messages), and `ParsedFile.line_of` finds their line in the file.
"""

from __future__ import annotations

import bisect
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import yaml

from ..segments import Segment, SegmentBuilder, SegmentKind
from ..yamlutil import safe_load
from .completion import parse_completion
from .errors import ParseError
from .openai import parse_messages

__all__ = ["ParsedFile", "parse_file", "iter_prompt_files", "PROMPT_EXTENSIONS", "DEFAULT_MAX_BYTES"]

TEXT_EXT = {".txt", ".md", ".prompt", ".tmpl"}
STRUCT_EXT = {".json", ".yaml", ".yml"}
PROMPT_EXTENSIONS = TEXT_EXT | STRUCT_EXT | {".jsonl"}
DEFAULT_MAX_BYTES = 10 * 1024 * 1024
_MIN_LEAF = 20
_BOM = "\ufeff"


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
    _line_starts: list[int] | None = field(default=None, repr=False)

    def line_at(self, offset: int) -> int:
        """1-based line of a character offset into the file's text."""
        if self._line_starts is None:
            starts = [0]
            find = self.text.find
            pos = find("\n")
            while pos >= 0:
                starts.append(pos + 1)
                pos = find("\n", pos + 1)
            self._line_starts = starts
        return bisect.bisect_right(self._line_starts, offset)

    def offset_of_line(self, line: int) -> int:
        """Character offset where 1-based `line` starts."""
        self.line_at(0)
        starts = self._line_starts or [0]
        return starts[max(0, min(line, len(starts)) - 1)]

    def line_of(self, segment: Segment, start: int = 0) -> int:
        """1-based line of a segment position in the file (best effort for JSON/YAML)."""
        if not self.text:
            return 1
        if not self.structured:
            loc = segment.locate(start, start + 1)
            if loc is not None and loc.message_index is None:
                return self.line_at(loc.start)
        base = self.prompt_lines.get(segment.prompt, 1)
        if start:  # a position inside the segment: search from where the segment starts
            base = max(base, self.line_of(segment, 0))
        offset = self.offset_of_line(base)
        # the text at `start` as written in the file: raw (YAML, JSON with raw Unicode) or
        # escaped; then, for text rendered from a template (LangChain examples), the value
        # after a label ("Input: happy" → "happy")
        first = segment.text[start : start + 40].split("\n")[0].strip()
        needles = [first]
        if ": " in first:
            needles.append(first.split(": ", 1)[1].strip())
        for needle in needles:
            if len(needle) < 2:
                continue
            for candidate in dict.fromkeys(
                (needle, json.dumps(needle, ensure_ascii=False)[1:-1], json.dumps(needle)[1:-1])
            ):
                k = self.text.find(candidate, offset)
                if k >= 0:
                    return self.line_at(k)
        return base


def iter_prompt_files(paths: list[str | Path]) -> Iterator[Path]:
    """Files to scan, each once: explicit files as given, directories walked
    (recursively, hidden directories skipped) for prompt extensions."""
    seen: set[Path] = set()
    for p in map(Path, paths):
        if p.is_dir():
            for root, dirs, files in os.walk(p):
                dirs[:] = sorted(d for d in dirs if not d.startswith("."))
                for f in sorted(files):
                    if os.path.splitext(f)[1].lower() in PROMPT_EXTENSIONS:
                        fp = Path(root) / f
                        if fp not in seen:
                            seen.add(fp)
                            yield fp
        elif p not in seen:
            seen.add(p)
            yield p


def _mib(n: int) -> str:
    return f"{n / 2**20:.1f} MiB"


def _decode(path: Path, max_bytes: int) -> str:
    try:
        size = path.stat().st_size
    except OSError as e:
        raise ParseError(f"cannot read: {e.strerror or e}") from None
    if not path.is_file():
        raise ParseError("not a regular file")
    if size > max_bytes:
        raise ParseError(
            f"file too large: {_mib(size)} over the {_mib(max_bytes)} limit (raise it with --max-bytes)"
        )
    try:
        with open(path, "rb") as fh:
            data = fh.read(max_bytes + 1)
    except OSError as e:
        raise ParseError(f"cannot read: {e.strerror or e}") from None
    if len(data) > max_bytes:  # grew since stat
        raise ParseError(f"file too large: over the {_mib(max_bytes)} limit (raise it with --max-bytes)")
    if data[:2] in (b"\xff\xfe", b"\xfe\xff"):
        try:
            return data.decode("utf-16")
        except UnicodeDecodeError as e:
            raise ParseError(f"not valid UTF-16 (it starts with a UTF-16 byte-order mark): {e.reason}") from None
    if b"\x00" in data[:8192]:
        raise ParseError("binary file (NUL bytes), not a prompt")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        raise ParseError(
            f"not valid UTF-8: byte 0x{data[e.start]:02x} at offset {e.start} (line {line})"
        ) from None


def parse_file(path: str | Path, max_bytes: int = DEFAULT_MAX_BYTES) -> ParsedFile:
    """Parse one prompt file; problems become `error` (nothing raises)."""
    path = Path(path)
    out = ParsedFile(str(path))
    try:
        text = _decode(path, max_bytes)
        out.text = text
        bom = 1 if text.startswith(_BOM) else 0
        body = text[bom:]
        if not body.strip():
            out.warnings.append("empty file")
            return out
        ext = path.suffix.lower()
        b = SegmentBuilder()
        if ext == ".jsonl":
            out.structured = True
            _parse_jsonl(body, b, out, path.parent)
        elif ext == ".json":
            out.structured = True
            try:
                data = json.loads(body)
            except json.JSONDecodeError as e:
                raise ParseError(f"invalid JSON at line {e.lineno}, column {e.colno}: {e.msg}") from None
            _parse_obj(data, b, out, 0, path.parent)
        elif ext in (".yaml", ".yml"):
            out.structured = True
            try:
                data = safe_load(body)
            except yaml.YAMLError as e:
                mark = getattr(e, "problem_mark", None)
                where = f" at line {mark.line + 1}" if mark is not None else ""
                raise ParseError(f"invalid YAML{where}: {getattr(e, 'problem', None) or e}") from None
            _parse_obj(data, b, out, 0, path.parent)
        else:
            parse_completion(body, b, base=bom, plain_kind=SegmentKind.INSTRUCTION, source="file")
        out.segments = b.segments
        if not out.segments:
            out.warnings.append("no prompt text found")
    except ParseError as e:
        out.error = str(e)
    except RecursionError:
        out.error = "structure nested too deeply"
    return out


def _parse_jsonl(text: str, b: SegmentBuilder, out: ParsedFile, base_dir: Path) -> None:
    bad: list[str] = []
    prompt = 0
    for lineno, line in enumerate(text.split("\n"), 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as e:
            bad.append(f"line {lineno}: invalid JSON ({e.msg})")
            continue
        first = prompt
        try:
            prompt = _parse_obj(obj, b, out, prompt, base_dir, nested_lists=False)
        except ParseError as e:
            bad.append(f"line {lineno}: {e}")
            prompt += 1
        for p in range(first, max(prompt, first + 1)):
            out.prompt_lines[p] = lineno
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


def _is_record(x: Any) -> bool:
    from .langchain import is_langchain_message_dicts, is_langchain_serialized

    return (
        isinstance(x, dict) and ("messages" in x or "prompt" in x or "_type" in x or is_langchain_serialized(x))
    ) or _is_messages(x) or is_langchain_message_dicts(x)


def _parse_obj(obj: Any, b: SegmentBuilder, out: ParsedFile, prompt: int, base_dir: Path,
               nested_lists: bool = True) -> int:
    """Parse one JSON/YAML value; returns the next free prompt number."""
    from .langchain import (
        is_langchain_message_dicts,
        is_langchain_serialized,
        parse_langchain_messages,
        parse_langchain_prompt_obj,
        parse_langchain_serialized,
    )

    if _is_messages(obj):
        parse_messages(obj, b, prompt=prompt)
        return prompt + 1
    if is_langchain_message_dicts(obj):
        parse_langchain_messages(obj, b, prompt=prompt)
        return prompt + 1
    if isinstance(obj, dict):
        if "_type" in obj:
            parse_langchain_prompt_obj(obj, b, prompt=prompt, base_dir=base_dir)
            return prompt + 1
        if is_langchain_serialized(obj):
            parse_langchain_serialized(obj, b, prompt=prompt)
            return prompt + 1
        if "messages" in obj:
            msgs = obj["messages"]
            if is_langchain_message_dicts(msgs):
                parse_langchain_messages(msgs, b, prompt=prompt)
                return prompt + 1
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
    if isinstance(obj, list) and nested_lists and any(_is_record(x) for x in obj):
        for x in obj:
            prompt = _parse_obj(x, b, out, prompt, base_dir, nested_lists=False)
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


class PromptFile:
    """A parsed prompt file as an inspection shape. Read only: the scanner reports,
    it does not rewrite a library."""

    name = "prompt file"
    write = None

    def read(self, parsed: ParsedFile) -> list[Segment]:
        if parsed.error is not None:
            raise ParseError(parsed.error)
        return parsed.segments

    def text(self, parsed: ParsedFile) -> str:
        return parsed.text


PROMPT_FILE = PromptFile()
__all__ += ["PromptFile", "PROMPT_FILE"]
