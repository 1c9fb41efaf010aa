#!/usr/bin/env bash
# Create the separate virtualenv that holds the competitors for
# benchmarks/rules_side_by_side.py: LLM Guard (BanSubstrings, Regex, InvisibleText)
# and LlamaFirewall (REGEX, HIDDEN_ASCII scanners).
#
# They pin their own transformers (llm-guard: transformers==4.51.3), so they never
# go into promptguard's environment. The venv lives OUTSIDE the repository:
#   $SIDEBYSIDE_VENV  (default /work/venvs/sidebyside)
#
# torch is installed first, pinned to the CPU build (a local wheel is used when
# PIP_FIND_LINKS points at one, e.g. /opt/wheels); otherwise pip would resolve
# torch from PyPI and pull a multi-GB CUDA build.
#
# Usage:  bash benchmarks/setup_sidebyside_venv.sh
set -euo pipefail

VENV="${SIDEBYSIDE_VENV:-/work/venvs/sidebyside}"
PYTHON="${PYTHON:-python3.11}"
command -v "$PYTHON" >/dev/null 2>&1 || PYTHON=python3
TORCH_VERSION="${TORCH_VERSION:-2.13.0}"
LLM_GUARD_VERSION="${LLM_GUARD_VERSION:-0.3.16}"
LLAMAFIREWALL_VERSION="${LLAMAFIREWALL_VERSION:-1.0.3}"

if [ ! -x "$VENV/bin/python" ]; then
  echo "creating $VENV with $PYTHON"
  mkdir -p "$(dirname "$VENV")"
  "$PYTHON" -m venv "$VENV"
fi
PIP=("$VENV/bin/python" -m pip install -q --disable-pip-version-check)

"${PIP[@]}" --upgrade pip wheel setuptools

# 1. CPU torch first: a local wheel if PIP_FIND_LINKS has one, else the CPU index.
if ! "$VENV/bin/python" -c "import torch" >/dev/null 2>&1; then
  wheel=""
  for d in ${PIP_FIND_LINKS:-}; do
    for w in "$d"/torch-"${TORCH_VERSION}"+cpu-*.whl; do
      [ -f "$w" ] && wheel="$w" && break 2
    done
  done
  if [ -n "$wheel" ]; then
    echo "installing torch from $wheel"
    "${PIP[@]}" "$wheel"
  else
    "${PIP[@]}" --index-url https://download.pytorch.org/whl/cpu "torch==${TORCH_VERSION}"
  fi
fi

# 2. The competitors; the constraint keeps pip from swapping the CPU torch out.
CONSTRAINT="$(mktemp)"
trap 'rm -f "$CONSTRAINT"' EXIT
echo "torch==${TORCH_VERSION}" >"$CONSTRAINT"
# Keep any site-wide constraint file in force as well.
"${PIP[@]}" -c "$CONSTRAINT" "llm-guard==${LLM_GUARD_VERSION}" "llamafirewall==${LLAMAFIREWALL_VERSION}"

"$VENV/bin/python" - <<'PY'
import importlib.metadata as md
import torch
for p in ("llm-guard", "llamafirewall", "transformers"):
    print(f"{p}=={md.version(p)}")
print(f"torch=={torch.__version__} (cuda build: {torch.version.cuda is not None})")
from llm_guard.input_scanners import BanSubstrings, InvisibleText, Regex  # noqa: F401
from llamafirewall import LlamaFirewall  # noqa: F401
print("ok: competitors importable")
PY
echo "side-by-side venv ready: $VENV"
