"""PLAID build memory: the k-means sample is compressed chunk by chunk, with the same index as one call."""

from __future__ import annotations

import warnings

import torch

from lirlab.index.plaid import PlaidIndex
from lirlab.index.plaid import build as build_module
from lirlab.index.plaid.storage import arrays

from .synthetic import random_encoding


def build(docs, chunk_docs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return PlaidIndex.from_encoding(docs, nbits=2, n_centroids=16, chunk_docs=chunk_docs)


def test_no_compression_call_sees_more_than_one_chunk(monkeypatch):
    docs = random_encoding(120, seed=4)  # the default sample is all 120 documents
    seen = []
    original = build_module.compress

    def counting(codec, encoded):
        seen.append(len(encoded))
        assert int(encoded.lengths.sum()) <= 50 or len(encoded) == 1
        return original(codec, encoded)

    monkeypatch.setattr(build_module, "compress", counting)
    monkeypatch.setattr(build_module, "COMPRESS_TOKENS", 50)  # documents hold 2-11 tokens
    index = build(docs, chunk_docs=4096)
    assert index.config()["kmeans"]["sample_documents"] == 120
    assert sum(seen) == 120 and max(seen) <= 25 and len(seen) >= 120 * 2 // 50, seen


def test_chunk_size_changes_nothing_in_the_index(monkeypatch):
    docs = random_encoding(90, seed=6)
    whole = build(docs, chunk_docs=4096)
    monkeypatch.setattr(build_module, "COMPRESS_TOKENS", 30)
    chunked = build(docs, chunk_docs=7)
    assert whole.docnos == chunked.docnos
    expected, got = arrays(whole), arrays(chunked)
    assert expected.keys() == got.keys()
    for name, array in expected.items():
        assert torch.equal(torch.as_tensor(array), torch.as_tensor(got[name])), name
