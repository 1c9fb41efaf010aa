"""The bundled prompt library (examples/) gets the verdicts its README states, under the
packaged default policy as the scanner applies it (`promptguard scan examples/`).

The expected verdicts are read from the README's tables (a `File` and a `Verdict`
column), so the README cannot drift from what the scanner does."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from promptguard.guard import load_guard
from promptguard.policy import load_policy
from promptguard.scanner import scan_paths

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = REPO / "examples"
README = EXAMPLES / "README.md"


def stated_verdicts() -> dict[str, str]:
    """{path relative to examples/: verdict} from the README's tables."""
    out: dict[str, str] = {}
    section = ""
    header: list[str] = []
    for line in README.read_text(encoding="utf-8").splitlines():
        m = re.match(r"^## `([^`]+)/`", line)
        if m:
            section, header = m.group(1), []
            continue
        if not line.startswith("|"):
            header = [] if not line.strip() else header
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if not header:
            header = cells
            continue
        if set("".join(cells)) <= set("-: ") or "Verdict" not in header:
            continue
        name = cells[header.index("File")].strip("`")
        out[f"{section}/{name}"] = cells[header.index("Verdict")].strip("*")
    return out


def test_the_readme_states_a_verdict_for_every_example_file():
    stated = stated_verdicts()
    files = {p.relative_to(EXAMPLES).as_posix() for p in EXAMPLES.rglob("*")
             if p.is_file() and p.parent != EXAMPLES and p.suffix != ".py"}
    assert set(stated) == files
    assert set(stated.values()) <= {"allow", "flag", "sanitize", "block"}


# The embeddings detector (in main's default policy until issue 18's classifier replaces it)
# flags the first few-shot pair of ticket_triage_chat.json ("I was charged twice for order
# #4411." → "billing"), a false alarm. Expected to fail while that detector is the default.
_EMBEDDINGS_FALSE_ALARM = {"clean/ticket_triage_chat.json"}


@pytest.fixture(scope="module")
def scanned() -> dict[str, str]:
    report = scan_paths([EXAMPLES], load_guard(load_policy(), face="scanner"))
    return {Path(f.path).relative_to(EXAMPLES).as_posix(): f.verdict for f in report.files}


@pytest.mark.parametrize("name,verdict", sorted(stated_verdicts().items()))
def test_each_example_gets_the_verdict_the_readme_states(scanned, name, verdict, request):
    if name in _EMBEDDINGS_FALSE_ALARM and "embeddings" in load_policy().enabled_detectors():
        request.applymarker(pytest.mark.xfail(
            strict=True, reason="the embeddings detector flags this clean file (issue 18 replaces it)"))
    assert scanned[name] == verdict
