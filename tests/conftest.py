"""Shared fixtures. Tests run offline and single-threaded (2-core CI machines)."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared"

# Tests write only under temporary directories: a component that falls back to its default
# record store (`.promptguard/audit.sqlite` under the working directory) writes here instead,
# and the session fails if the checkout gained a `.promptguard/` all the same.
_TMP_STATE = Path(tempfile.mkdtemp(prefix="promptguard-tests-"))
os.environ.setdefault("PROMPTGUARD_STORE", str(_TMP_STATE / "records.sqlite"))
_CHECKOUT_STATE = REPO / ".promptguard"
_HAD_CHECKOUT_STATE = _CHECKOUT_STATE.exists()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if not _HAD_CHECKOUT_STATE and _CHECKOUT_STATE.exists():
        session.config.get_terminal_writer().line(
            f"ERROR: the tests wrote {_CHECKOUT_STATE} into the checkout; write under tmp_path instead", red=True)
        session.exitstatus = 1
    shutil.rmtree(_TMP_STATE, ignore_errors=True)


def pytest_configure(config: pytest.Config) -> None:
    try:  # only when a test already pulled torch in; never import it here
        import sys

        if "torch" in sys.modules:
            sys.modules["torch"].set_num_threads(1)
    except Exception:
        pass


@pytest.fixture(autouse=True)
def _torch_one_thread():
    import sys

    torch = sys.modules.get("torch")
    if torch is not None:
        torch.set_num_threads(1)
    yield


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """../shared beside the repo; tests that need it skip with a reason when missing."""
    if not SHARED.is_dir():
        pytest.skip(f"shared data not found at {SHARED} (it sits beside the repo in CI)")
    return SHARED


@pytest.fixture(scope="session")
def badchain_dir(shared_dir: Path) -> Path:
    d = shared_dir / "data" / "badchain"
    if not d.is_dir():
        pytest.skip(f"BadChain data missing at {d}")
    return d


@pytest.fixture(scope="session")
def llama_server(tmp_path_factory: pytest.TempPathFactory):
    """The real local LLM upstream (llama_cpp.server + SmolLM2-135M) on 127.0.0.1."""
    from tests.llm_server import start_llama_server

    try:
        server = start_llama_server(tmp_path_factory.mktemp("llama"))
    except RuntimeError as e:
        if "not installed" in str(e):
            pytest.skip(str(e))
        raise
    yield server
    server.stop()
