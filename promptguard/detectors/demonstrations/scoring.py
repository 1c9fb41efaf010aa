"""From signals to calibrated scores: three small logistic models.

1. *step*: does demonstration i end with a backdoor step? (step signals only)
2. *trigger*: is candidate c a backdoor trigger? (candidate features, which use the
   step probabilities of the demonstrations that carry it and of those that don't)
3. *demo*: is demonstration i poisoned? (its step probability, the best trigger
   carried by its question, their product)

Two weight sets ship: ``principled`` (set by hand from what each signal means,
before looking at any data) and ``fitted`` (logistic regression on synthetic
prompts from ``benchmarks/demo_synth.py`` — never on the shared BadChain files;
refit with ``benchmarks/fit_demonstrations.py``, which rewrites ``weights.json``).
The policy option ``weights: auto|principled|fitted|<file>`` picks one (a file:
weights refitted by ``promptguard harden``); ``auto`` is the
recommended set, currently ``principled``: on our own poisoned prompts (other
triggers, steps and domains than the fitting data) the fitted set finds more but
flags more clean prompts (numbers in docs/demonstrations.md).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path

__all__ = ["DEMO_FEATURES", "NAMED", "PRINCIPLED", "STEP_FEATURES", "TRIGGER_FEATURES", "Weights", "load_weights", "logistic"]

STEP_FEATURES = (
    "transform", "unary", "reversal", "yesno_stated", "ungrounded", "novel", "echo", "echo_words",
    "not_in_choices", "unsupported", "departs", "detached", "continues", "honest_check", "prev_concluded",
    "recurring_const", "recurring_novel", "skel_x_anomaly",
)
# A span that merely looks inserted (odd, foreign, at an edge: `plaus`) is not a trigger
# by itself — clean prompts have those (an emoji, a shared instruction). It needs
# support: its carriers echo it, or end with a step their siblings lack. So plausibility
# enters only multiplied by support.
TRIGGER_FEATURES = (
    "echo_rate", "step_in", "contrast", "echo_x_plaus", "exact_echo", "step_x_plaus", "contrast_x_plaus",
    "sep_x_plaus", "template_x_plaus", "template_anomaly", "sentence_step", "lead_echo_step", "stop_frac", "single", "all_demos",
    "single_odd_step",
)
DEMO_FEATURES = ("step", "trigger", "step_x_trigger", "echo_of_trigger")

Weights = dict[str, dict[str, float]]

PRINCIPLED: Weights = {
    "step": {
        "bias": -4.5, "transform": 1.0, "unary": 2.0, "reversal": 2.0, "yesno_stated": 2.0,
        "ungrounded": 2.0, "novel": 0.3, "echo": 1.5, "echo_words": 0.5, "not_in_choices": 2.5, "unsupported": 1.5,
        "departs": 5.0, "detached": 2.0, "continues": 3.0,
        "honest_check": -2.0, "prev_concluded": 0.0, "skeleton_share": 0.0, "recurring_const": 1.5,
        "recurring_novel": 0.0, "skel_x_anomaly": 2.0,
    },
    # a trigger needs support (its carriers echo it, or end with a backdoor step that
    # their siblings lack) AND has to look inserted (odd, foreign, at an edge)
    "trigger": {
        "bias": -4.5, "echo_rate": 2.0, "step_in": 1.0, "contrast": 1.0, "stop_frac": -1.5,
        "single": -2.0, "all_demos": 0.0, "echo_x_plaus": 4.0, "exact_echo": 3.0, "step_x_plaus": 4.0, "contrast_x_plaus": 2.0,
        "sep_x_plaus": 1.0, "template_x_plaus": 1.5, "template_anomaly": 4.0, "sentence_step": 7.0, "lead_echo_step": 5.0,
        "single_odd_step": 2.5,
    },
    "demo": {"bias": -4.5, "step": 4.0, "trigger": 5.5, "step_x_trigger": 2.0, "echo_of_trigger": 1.0},
}


def logistic(weights: Mapping[str, float], x: Mapping[str, float]) -> float:
    z = weights.get("bias", 0.0) + sum(w * x.get(k, 0.0) for k, w in weights.items() if k != "bias")
    if z >= 0:
        return 1.0 / (1.0 + math.exp(-z))
    e = math.exp(z)
    return e / (1.0 + e)


WEIGHTS_FILE = Path(__file__).with_name("weights.json")


NAMED = ("auto", "principled", "fitted")


def load_weights(which: str = "auto") -> Weights:
    """`principled`, `fitted` (weights.json), `auto` (= principled), or the path of a
    weights file in the same format (``promptguard harden`` writes one per round).
    A file that is missing or malformed is an error (ValueError). Files are read once
    per path and modification time (a rewritten file is read again)."""
    if which in ("principled", "auto"):
        return PRINCIPLED
    path = WEIGHTS_FILE if which == "fitted" else Path(which)
    try:
        stamp = path.stat().st_mtime_ns
    except OSError:
        stamp = None
    return _read_weights(which, stamp)


@lru_cache(maxsize=16)
def _read_weights(which: str, stamp: int | None) -> Weights:
    path = WEIGHTS_FILE if which == "fitted" else Path(which)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        w = data["weights"]
        for part, feats in (("step", STEP_FEATURES), ("trigger", TRIGGER_FEATURES), ("demo", DEMO_FEATURES)):
            if part not in w or not all(isinstance(w[part].get(k, 0.0), (int, float)) for k in feats):
                raise ValueError(f"bad {part!r} block")
        return {p: {k: float(v) for k, v in w[p].items()} for p in ("step", "trigger", "demo")}
    except (OSError, ValueError, KeyError, TypeError) as e:
        what = "fitted weights" if which == "fitted" else f"weights file {path}"
        raise ValueError(f"{what} unavailable: {getattr(e, 'strerror', None) or e}") from None
