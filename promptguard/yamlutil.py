"""Load YAML into pydantic models with errors that name the file and line."""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

__all__ = ["YamlError", "load_yaml_file", "load_yaml_text", "safe_load"]

M = TypeVar("M", bound=BaseModel)

# libyaml's loader when PyYAML was built with it (several times faster), else Python's
_Loader: type = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def safe_load(text: str) -> Any:
    """`yaml.safe_load`, with libyaml when available."""
    return yaml.load(text, Loader=_Loader)  # a safe loader (SafeLoader or CSafeLoader)


class YamlError(ValueError):
    """A config file is not valid; the message names file, line and problem."""

    def __init__(self, path: str, line: int | None, problem: str):
        self.path, self.line, self.problem = path, line, problem
        where = f"{path}:{line}" if line else path
        super().__init__(f"{where}: {problem}")


def _node_at(node: yaml.Node | None, loc: tuple[Any, ...]) -> yaml.Node | None:
    """Follow a pydantic error location through the composed YAML node tree."""
    for key in loc:
        if isinstance(node, yaml.MappingNode):
            nxt = None
            for k, v in node.value:
                if getattr(k, "value", None) == str(key):
                    # a problem with the key itself ("[key]" follows) points at the key
                    nxt = v
                    break
            if nxt is None:
                return node
            node = nxt
        elif isinstance(node, yaml.SequenceNode) and isinstance(key, int):
            if key >= len(node.value):
                return node
            node = node.value[key]
        else:
            return node
    return node


def _key_node(root: yaml.Node | None, loc: tuple[Any, ...]) -> yaml.Node | None:
    """The key node for a location ending in a mapping key (errors on dict keys)."""
    if len(loc) >= 2 and loc[-1] == "[key]":
        parent = _node_at(root, loc[:-2])
        if isinstance(parent, yaml.MappingNode):
            for k, _ in parent.value:
                if getattr(k, "value", None) == str(loc[-2]):
                    return k
    return None


def _duplicate_key(node: yaml.Node | None, depth: int = 0) -> tuple[yaml.Node, str] | None:
    """The first mapping key given twice (PyYAML silently keeps the last one)."""
    if node is None or depth > 100:
        return None
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for k, v in node.value:
            kv = getattr(k, "value", None)
            if isinstance(kv, str):
                if kv in seen:
                    return k, kv
                seen.add(kv)
            found = _duplicate_key(v, depth + 1)
            if found:
                return found
    elif isinstance(node, yaml.SequenceNode):
        for v in node.value:
            found = _duplicate_key(v, depth + 1)
            if found:
                return found
    return None


def load_yaml_text(text: str, model: type[M], path: str = "<string>") -> M:
    try:
        loader = _Loader(text)
        try:
            root = loader.get_single_node()
            data = loader.construct_document(root) if root is not None else None
        finally:
            loader.dispose()
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        problem = getattr(e, "problem", None) or str(e)
        raise YamlError(path, line, f"YAML syntax error: {problem}") from None
    if data is None:
        raise YamlError(path, 1, "the file is empty; expected a mapping")
    if not isinstance(data, dict):
        raise YamlError(path, 1, f"expected a mapping at the top level, got {type(data).__name__}")
    dup = _duplicate_key(root)
    if dup is not None:
        raise YamlError(path, dup[0].start_mark.line + 1, f"key {dup[1]!r} is given twice")
    try:
        return model.model_validate(data)
    except ValidationError as e:
        err = e.errors()[0]
        loc = tuple(err["loc"])
        node = _key_node(root, loc) or _node_at(root, loc)
        line = node.start_mark.line + 1 if node is not None else None
        where = ".".join(str(x) for x in loc if x != "[key]") or "(top level)"
        more = f" (and {len(e.errors()) - 1} more)" if len(e.errors()) > 1 else ""
        msg = err["msg"].removeprefix("Value error, ")
        raise YamlError(path, line, f"{where}: {msg}{more}") from None


def load_yaml_file(path: Path, model: type[M]) -> M:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise YamlError(str(path), None, f"cannot read: {e}") from None
    return load_yaml_text(text, model, str(path))
