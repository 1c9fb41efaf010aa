"""Final-answer extraction and comparison (on answers written for these tests)."""

from __future__ import annotations

import pytest

from promptguard.audit.answers import AnswerKind, Same, compare, expected_kind, extract_answer


@pytest.mark.parametrize("text, kind, shown", [
    ("Step one: 4 + 5 = 9.\nSo the answer is 9.", "number", "9"),
    ("The total comes to 3 crates. The answer is 12 crates.", "number", "12 crates"),
    ("Answer: $1,250.50", "number", "1250.5 $"),
    ("The final answer is 2.5 * 4 = 10.", "number", "10"),
    ("It works out to \\boxed{\\frac{3}{8}}", "number", "0.375"),
    ("#### 64", "number", "64"),
    ("The answer is -7.", "number", "-7"),
    ("The answer is 40%.", "number", "40 %"),
    ("Answer: (D)", "choice", "D"),
    ("The answer is C.", "choice", "C"),
    ("Yes, because owls hunt at night.", "yesno", "yes"),
    ("The answer is no.", "yesno", "no"),
    ("The answer is \"kcab\".", "string", "kcab"),
    ("Lisbon", "string", "lisbon"),
    ("42 marbles", "number", "42 marbles"),
])
def test_extract(text, kind, shown):
    a = extract_answer(text)
    assert a.kind.value == kind and a.show() == shown


def test_empty_and_truncated_have_no_answer():
    assert not extract_answer("").ok and not extract_answer("   \n").ok and not extract_answer(None).ok
    # cut off mid-reasoning: its last number is an intermediate, not the answer
    assert not extract_answer("First 3 + 4 = 7, then 7 * 2", truncated=True).ok
    # but an explicit statement survives truncation
    assert extract_answer("The answer is 14. Also", truncated=True).value == 14


def test_expected_kind_steers_extraction():
    long = "We compare the options carefully and the one that fits best is (B) because of the river."
    assert extract_answer(long, AnswerKind.CHOICE).value == "B"
    assert extract_answer("Well I think that it is mostly yes given the facts", "yesno").value == "yes"
    assert extract_answer("He had 5 then bought 3 more so in total there were 8", "number").value == 8
    assert extract_answer("The answer is A dog.").kind is AnswerKind.STRING  # not choice A
    assert expected_kind(["The answer is 12.", "The answer is 3.5.", None]) is AnswerKind.NUMBER
    assert expected_kind(["The answer is yes.", "The answer is no.", "The answer is 4."]) is AnswerKind.YESNO
    assert expected_kind(["The answer is yes.", "The answer is 4."]) is None
    assert expected_kind([], "Which? Answer Choices: (A) red (B) blue") is AnswerKind.CHOICE


def test_compare():
    e = extract_answer
    assert compare(e("The answer is 42."), e("42.0")) is Same.SAME
    assert compare(e("The answer is 42."), e("The answer is 88.2.")) is Same.DIFFERENT
    assert compare(e("The answer is 25%."), e("The answer is 0.25")) is Same.SAME
    assert compare(e("Answer: (B)"), e("The answer is B.")) is Same.SAME
    assert compare(e("Answer: (B)"), e("The answer is C.")) is Same.DIFFERENT
    assert compare(e("yes"), e("The answer is no.")) is Same.DIFFERENT
    assert compare(e("The answer is the Nile."), e("The answer is Nile")) is Same.SAME
    assert compare(e(""), e("1")) is Same.UNKNOWN


@pytest.mark.slow
def test_free_text_by_embedding_similarity():
    e = extract_answer
    a = e("Photosynthesis lets plants turn sunlight, water and carbon dioxide into sugar and oxygen.")
    b = e("Plants use sunlight, water and carbon dioxide to make sugar and release oxygen; that is photosynthesis.")
    c = e("The stock market fell sharply on Tuesday after the central bank raised interest rates.")
    assert a.kind is AnswerKind.TEXT
    assert compare(a, b, text_threshold=0.8) is Same.SAME
    assert compare(a, c, text_threshold=0.8) is Same.DIFFERENT


# -- answer types beyond numbers (shared with the demonstrations detector) ---------------------

from promptguard.answers import (
    answer_labels,
    canonical_date,
    canonical_time,
    parse_answer,
    values_in,
)


@pytest.mark.parametrize("text, kind, value", [
    ("The answer is 2024-03-05.", "date", "2024-03-05"),
    ("The answer is March 5, 2024.", "date", "2024-03-05"),
    ("Answer: 5th of March 2024", "date", "2024-03-05"),
    ("The answer is 5:15 pm.", "time", "17:15"),
    ("The answer is 17:15.", "time", "17:15"),
    ("The answer is [3, 2, 1].", "code", "[3,2,1]"),
    ("The answer is ['a', 'b'].", "code", "['a','b']"),
    ("The answer is True.", "yesno", "yes"),
])
def test_extract_typed(text, kind, value):
    a = extract_answer(text)
    assert a.kind.value == kind and a.value == value


def test_a_date_is_not_its_year():
    """Before dates were a type, "2024-03-05" and "2024-03-12" both read as the number 2024."""
    e = extract_answer
    assert compare(e("The answer is 2024-03-05."), e("The answer is 2024-03-12.")) is Same.DIFFERENT
    assert compare(e("The answer is 2024-03-05."), e("The answer is March 5, 2024.")) is Same.SAME
    assert compare(e("The answer is 5:15 pm."), e("It arrives at 17:15.", "time")) is Same.SAME
    assert compare(e("The answer is [1, 2]."), e("The answer is [2, 1].")) is Same.DIFFERENT


def test_labels_from_the_demonstrations():
    answers = ["The answer is positive.", "The answer is negative.", "The answer is positive."]
    assert answer_labels(answers) == ("negative", "positive")
    assert expected_kind(answers) is AnswerKind.LABEL
    # with the label set a label is found in a sentence; without it, only a short answer is one
    a = extract_answer("Overall the reviewer sounds negative about it.", AnswerKind.LABEL, labels=("positive", "negative"))
    assert a.kind is AnswerKind.LABEL and a.value == "negative"
    assert compare(a, extract_answer("The answer is negative.", AnswerKind.LABEL)) is Same.SAME
    assert compare(a, extract_answer("positive", AnswerKind.LABEL)) is Same.DIFFERENT
    # weekdays are a closed set of their own; numbers, letters and distinct strings are not labels
    assert answer_labels(["Thursday", "Monday"]) != ()
    assert answer_labels(["The answer is 4.", "The answer is 4.", "The answer is 5."]) == ()
    assert answer_labels(["The answer is window.", "The answer is house.", "The answer is tree."]) == ()


def test_canonical_forms():
    assert canonical_date("03/05/2024") == "2024-03-05"  # month/day/year
    assert canonical_date("Mar. 5") == "XXXX-03-05"
    assert canonical_date("not a date") is None
    assert canonical_time("9:05am") == "09:05" and canonical_time("12:00 am") == "00:00"
    assert canonical_time("25:00") is None


def test_values_in_a_reasoning_line():
    """The detector's view: every typed value with its span, strings case and all."""
    line = "On March 12, 2025 at 5:15 pm, 'cndl' became 'CNDL' and [1, 3] was printed; (B) fits, no doubt."
    vals = values_in(line, labels=("doubt",))
    kinds = [(v.kind, v.key) for v in vals]
    assert ("date", "2025-03-12") in kinds and ("time", "17:15") in kinds
    assert ("quoted", "cndl") in kinds and ("quoted", "CNDL") in kinds
    assert ("list", "[1,3]") in kinds and ("letter", "B") in kinds
    assert ("yesno", "no") not in kinds  # "no doubt": a determiner, not a verdict
    assert ("label", "doubt") in kinds
    for v in vals:
        assert line[v.start : v.end]
    assert parse_answer("The answer is sadness.", labels=("joy", "sadness")).kind == "label"
    assert parse_answer("The answer is Thursday.").kind == "label"
    assert parse_answer("The answer is PLNT.").key == "PLNT"
