"""What the Dockerfile and scripts promise, checked without a Docker engine (none runs on
the CI machines): the image installs the extras the docs name and builds where only PyPI
is reachable."""

from __future__ import annotations

import re
import subprocess
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def test_image_installs_the_postgres_extra_and_takes_index_build_args():
    text = (REPO / "Dockerfile").read_text()
    extras = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert "postgres" in extras
    install = re.search(r'RUN pip install --index-url "\$\{PIP_INDEX_URL\}" "\.\[([a-z,]+)\]"', text)
    assert install and "postgres" in install.group(1).split(",")
    assert re.search(r"^ARG TORCH_INDEX_URL=", text, re.M) and re.search(r"^ARG PIP_INDEX_URL=", text, re.M)
    assert 'pip install --index-url "${TORCH_INDEX_URL}" "torch==${TORCH_VERSION}"' in text


def test_setup_says_what_it_does():
    """`scripts/setup` on an installed checkout: one line per step, with its usual duration."""
    r = subprocess.run(["bash", "-n", str(REPO / "scripts" / "setup")], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    steps = re.findall(r'^step (\d)/(\d) "([^"]+)" \\?\n?\s*"([^"]+)"', (REPO / "scripts" / "setup").read_text(), re.M)
    assert len(steps) == 5 and all(dur for *_, dur in steps)
