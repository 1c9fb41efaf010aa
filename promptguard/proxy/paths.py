"""Request paths the proxy accepts: one spelling per route, nothing to normalise.

The proxy routes on the path it sees, and httpx (like most HTTP stacks) removes dot
segments before a request reaches the upstream. A path such as
`/v1/./chat/completions` therefore missed the checked route here, matched the
pass-through, and arrived upstream as `/v1/chat/completions` unchecked. Rather than
normalise (and risk disagreeing with the upstream's own normalisation), the proxy
refuses every path whose meaning could change on the way: dot segments in any
spelling (`.`, `..`, `%2e`, `%2E%2e`), empty segments (`//`, a trailing `/`),
encoded separators (`%2f`, `%5c`), backslashes, encoded percent signs (double
encoding, `%25`), NUL and other control characters, and malformed escapes. OpenAI
clients never send any of these, so a refusal costs a legitimate client nothing.
"""

from __future__ import annotations

import re

__all__ = ["path_problem", "same_route"]

# percent-escapes that can change which route a path reaches, once decoded somewhere
# between here and the upstream: '.', '/', '\\', '%' (double encoding), NUL
_RISKY_ESCAPE = re.compile(r"%(2e|2f|5c|25|00)", re.IGNORECASE)
_ANY_ESCAPE = re.compile(r"%([0-9A-Fa-f]{2})?")


def path_problem(raw_path: bytes | None, path: str) -> str | None:
    """Why this request path is refused, or None when it is fine.

    `raw_path` is the path exactly as the client sent it (ASGI `raw_path`, without the
    query string); `path` is the server's percent-decoded form. Both are checked: the
    raw form for escapes and dot segments, the decoded one for characters that no
    route contains."""
    raw = raw_path.decode("latin-1") if raw_path is not None else path
    raw = raw.split("?", 1)[0]
    if not raw.startswith("/"):
        return "the path must start with '/'"
    for text in (raw, path):
        if any(ord(c) < 0x20 or ord(c) == 0x7F for c in text):
            return "the path contains a control character"
        if "\\" in text:
            return "the path contains a backslash"
    if _RISKY_ESCAPE.search(raw):
        return "the path contains an encoded '.', '/', '\\\\', '%' or NUL"
    for m in _ANY_ESCAPE.finditer(raw):
        if m.group(1) is None:
            return "the path contains a malformed percent-escape"
    segments = raw.split("/")[1:]
    if raw == "/":
        return None
    for seg in segments:
        if seg == "":
            return "the path contains an empty segment ('//' or a trailing '/')"
        if seg in (".", ".."):
            return "the path contains a dot segment ('.' or '..')"
    return None


def same_route(a: str, b: str) -> bool:
    """Whether two route paths (without /v1/) name the same route for an upstream that
    ignores case; used so that `/v1/Chat/Completions` cannot reach the pass-through."""
    return a.strip("/").lower() == b.strip("/").lower()
