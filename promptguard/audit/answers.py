"""Final-answer extraction and comparison for the answer audit.

The parser lives in `promptguard.answers`, shared with the demonstrations detector
(the value a demonstration's reasoning reached against the answer it states); this
module keeps the audit's import path.
"""

from __future__ import annotations

from ..answers import (
    NONE,
    Answer,
    AnswerKind,
    Same,
    TextSimilarity,
    answer_labels,
    answers_of,
    compare,
    expected_kind,
    extract_answer,
)

__all__ = [
    "NONE",
    "Answer",
    "AnswerKind",
    "Same",
    "TextSimilarity",
    "answer_labels",
    "answers_of",
    "compare",
    "expected_kind",
    "extract_answer",
]
