"""An ir_datasets id that cannot be downloaded fails with one message saying how to work offline."""

from __future__ import annotations

import sys
import types

import pytest

from lirlab import data


class _Unreachable:
    """An ir_datasets dataset whose download fails after printing what ir_datasets prints."""

    def has_docs(self):
        return True

    has_queries = has_qrels = has_docs

    def docs_iter(self):
        for attempt in range(3):
            print(f"[INFO] download error: Max retries exceeded (attempt {attempt})", file=sys.stderr)
        raise ConnectionError(
            "HTTPSConnectionPool(host='x', port=443): Max retries exceeded with url: /scifact.zip"
        )
        yield  # pragma: no cover


def test_offline_ir_datasets_id_gives_one_clear_message(monkeypatch, capsys):
    fake = types.ModuleType("ir_datasets")
    fake.load = lambda dataset_id: _Unreachable()
    monkeypatch.setitem(sys.modules, "ir_datasets", fake)
    with pytest.raises(RuntimeError) as raised:
        data.load("beir/scifact/test")
    message = str(raised.value)
    assert "\n" not in message and "no network connection" in message
    assert "local BEIR folder" in message and "corpus.jsonl" in message
    assert "DATASET = " in message and "--dataset" in message  # in the caller's terms, both of them
    err = capsys.readouterr().err
    assert "download error" not in err  # ir_datasets' own lines are held back
    assert err.strip().splitlines() == [
        "lirlab: reading beir/scifact/test with ir_datasets (the first use downloads it)"
    ]


def test_other_ir_datasets_failures_keep_their_cause(monkeypatch):
    class Broken(_Unreachable):
        def docs_iter(self):
            raise OSError("disk full")
            yield  # pragma: no cover

    fake = types.ModuleType("ir_datasets")
    fake.load = lambda dataset_id: Broken()
    monkeypatch.setitem(sys.modules, "ir_datasets", fake)
    with pytest.raises(RuntimeError, match="OSError: disk full"):
        data.load("beir/nfcorpus/test")
