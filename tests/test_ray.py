"""Encoding on Ray: the same vectors as the plain encoder, shards in corpus order; one line without Ray."""

from __future__ import annotations

import sys

import pytest
import torch

from lirlab import data
from lirlab.integrations import ray as lray

from .synthetic import random_encoding


def test_without_ray_one_line_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray now raises ImportError
    with pytest.raises(
        lray.RayNotInstalledError, match=r"^Ray is not installed: pip install 'lirlab\[ray\]'$"
    ):
        lray.RayEncoder("minilm")
    assert lray.ray_available() is False


class _RayThatDoesNotStart:
    """Stands in for the ``ray`` module: every ``init`` fails as a starved node does."""

    def __init__(self):
        self.inits: list[dict] = []
        self.shutdowns = 0

    def is_initialized(self) -> bool:
        return False

    def init(self, **options):
        self.inits.append(options)
        raise Exception("The current node timed out during startup. This could happen because ...")

    def shutdown(self) -> None:
        self.shutdowns += 1


def test_a_local_runtime_that_does_not_start_is_retried_then_named(monkeypatch):
    fake = _RayThatDoesNotStart()
    monkeypatch.setitem(sys.modules, "ray", fake)
    monkeypatch.setattr(lray.time, "sleep", lambda s: None)
    with pytest.raises(
        lray.RayStartError, match=r"did not start after 3 attempt\(s\) \(The current node timed out"
    ):
        lray.RayEncoder("minilm", num_workers=2, start_attempts=3)
    assert len(fake.inits) == 3 and fake.shutdowns == 3, "every failed start is retried and cleaned up"
    options = fake.inits[0]
    assert options["num_cpus"] == 2 and options["include_dashboard"] is False
    assert 75 * 2**20 <= options["object_store_memory"] <= 2**30, "a small object store, not 30% of memory"
    with pytest.raises(ValueError, match="start_attempts must be >= 1"):
        lray.RayEncoder("minilm", start_attempts=0)


def test_concat_packs_shards_in_order():
    whole = random_encoding(9, seed=3, vocab_size=5)
    shards = (whole.select(range(i, min(i + 4, 9))) for i in range(0, 9, 4))
    packed = lray.concat(shards, expected_docs=2)  # a short estimate: the buffer grows
    assert packed.ids == whole.ids
    assert torch.equal(packed.vectors, whole.vectors) and torch.equal(packed.offsets, whole.offsets)
    assert torch.equal(packed.token_ids, whole.token_ids)
    with pytest.raises(ValueError, match="nothing to concatenate"):
        lray.concat(iter([]))


@pytest.mark.skipif(not lray.ray_available(), reason="Ray is not installed (pip install 'lirlab[ray]')")
def test_ray_encoder_yields_the_plain_encoders_vectors(plain):
    docs = list(data.load("demo").docs)[:7]
    expected = plain.encode_documents(docs, progress=False)
    try:  # a local runtime of 2 one-CPU workers, no dashboard, a 128 MiB object store
        encoder = lray.RayEncoder(plain, num_workers=2, cpus_per_worker=1)
    except lray.RayStartError as e:  # a machine too loaded for Ray's fixed start-up timeouts, twice
        pytest.skip(str(e))
    with encoder:
        shards = list(encoder.encode_chunks(docs, shard_size=3, progress=False))
    assert [len(s) for s in shards] == [3, 3, 1]
    got = lray.concat(shards)
    assert got.ids == expected.ids and got.vocab == expected.vocab
    assert torch.equal(got.offsets, expected.offsets) and torch.equal(got.token_ids, expected.token_ids)
    assert got.truncated == expected.truncated and got.mask_token_id == expected.mask_token_id
    # the same weights on the same CPU; only batch composition (padding) differs between the two runs
    torch.testing.assert_close(got.vectors, expected.vectors, rtol=0, atol=1e-5)
