"""lirlab's notices show as one clean line once installed; other libraries' warnings are untouched."""

from __future__ import annotations

import sys
import types
import warnings

import pytest

from lirlab import notices
from lirlab.notices import LirlabWarning, is_lirlab_category

from .test_train import FAST, pairs, tiny, tiny_dir  # noqa: F401 (fixtures)


class ElsewhereWarning(UserWarning):
    """A warning class of another library (this test module is not a lirlab module)."""


@pytest.fixture
def installed():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        notices.install()
        try:
            yield caught
        finally:
            notices.uninstall()


def test_lirlab_categories_are_recognised_by_their_module():
    from lirlab.encoder import NotColBERTWarning
    from lirlab.index.base import EncoderMismatchWarning, FewerResultsWarning

    for category in (LirlabWarning, NotColBERTWarning, FewerResultsWarning, EncoderMismatchWarning):
        assert is_lirlab_category(category), category
    for category in (UserWarning, DeprecationWarning, ElsewhereWarning, "text", None):
        assert not is_lirlab_category(category), category


def test_a_lirlab_notice_is_one_line_without_file_or_source(installed, capsys):
    from lirlab.index.base import FewerResultsWarning

    warnings.warn("2 of 10 results:\n   the index holds 2 documents", FewerResultsWarning, stacklevel=1)
    err = capsys.readouterr().err
    assert err == "lirlab: 2 of 10 results: the index holds 2 documents\n"
    assert installed == []  # shown by lirlab, not passed on


def test_other_warnings_go_to_the_function_that_was_there(installed, capsys):
    warnings.warn("from another library", ElsewhereWarning, stacklevel=1)
    warnings.warn("deprecated thing", DeprecationWarning, stacklevel=1)
    assert [type(w.message) for w in installed] == [ElsewhereWarning, DeprecationWarning]
    assert capsys.readouterr().err == ""


def test_in_a_kernel_the_notice_is_displayed_as_one_line(installed, monkeypatch):
    shown = []
    fake_display = types.ModuleType("IPython.display")
    fake_display.display = lambda data, raw=False: shown.append((data, raw))
    monkeypatch.setitem(sys.modules, "IPython.display", fake_display)
    monkeypatch.setattr(notices, "_in_kernel", lambda: True)
    warnings.warn("model <x> is not ColBERT", LirlabWarning, stacklevel=1)
    ((data, raw),) = shown
    assert raw and data["text/plain"] == "lirlab: model <x> is not ColBERT"
    assert "&lt;x&gt;" in data["text/html"] and "\n" not in data["text/html"]


def test_install_is_idempotent_and_uninstall_restores():
    before = warnings.showwarning
    notices.install()
    notices.install()
    assert warnings.showwarning is notices._show
    notices.uninstall()
    assert warnings.showwarning is before


def test_nothing_is_installed_outside_a_kernel():
    before = warnings.showwarning
    notices.install_if_interactive()  # pytest is no IPython kernel
    assert warnings.showwarning is before


@pytest.fixture
def kernel(monkeypatch):
    """A stand-in IPython kernel: what lirlab displays in it, as (data, raw) pairs."""
    shown = []
    fake_display = types.ModuleType("IPython.display")
    fake_display.display = lambda data, raw=False: shown.append((data, raw))
    monkeypatch.setitem(sys.modules, "IPython.display", fake_display)
    monkeypatch.setattr(notices, "_in_kernel", lambda: True)
    return shown


def test_skipping_cuda_on_a_machine_without_it_is_an_amber_line_in_a_notebook(installed, kernel, monkeypatch):
    import torch

    from lirlab.analysis.sweeps import available_devices

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert available_devices(["cpu", "cuda"]) == ["cpu"]
    ((data, raw),) = kernel
    assert (
        raw and data["text/plain"] == "lirlab: CUDA is not available on this machine: skipping device 'cuda'"
    )
    assert "&#9888;" in data["text/html"] and "#7a5a00" in data["text/html"]
    assert installed == []  # shown by lirlab, never as a raw UserWarning block


def test_inform_is_a_plain_line_in_a_notebook_and_on_stderr_elsewhere(kernel, monkeypatch, capsys):
    notices.inform("trained 20 steps\n in 4.5 min")
    ((data, raw),) = kernel
    assert raw and data["text/plain"] == "lirlab: trained 20 steps in 4.5 min"
    assert "&#9888;" not in data["text/html"] and "\n" not in data["text/html"]
    assert capsys.readouterr().err == ""
    monkeypatch.setattr(notices, "_in_kernel", lambda: False)
    notices.inform("trained 20 steps")
    assert capsys.readouterr().err == "lirlab: trained 20 steps\n"


def test_training_says_how_it_ended_in_the_cell_not_on_stderr(kernel, tiny, pairs, tmp_path, capsys):  # noqa: F811
    from lirlab.train import train

    result = train(tiny, pairs, tmp_path / "run", progress=True, **{**FAST, "steps": 2})
    said = [data["text/plain"] for data, _ in kernel]
    assert said == [
        f"lirlab: trained 2 steps in {result.seconds / 60:.1f} min; checkpoint: {result.checkpoint}"
    ]
    assert "trained" not in capsys.readouterr().err
