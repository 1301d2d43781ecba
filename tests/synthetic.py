"""Seeded random encodings for tests that need vectors, not a model."""

from __future__ import annotations

import torch

from lirlab.encoding import Encoding, offsets_from_lengths

VOCAB = ("a", "b", "c", "d", "e")


def random_encoding(
    n: int, seed: int, dim: int = 16, kind: str = "document", prefix: str = "d", vocab_size: int = 1
) -> Encoding:
    """``n`` items of 2–11 unit vectors each, token ids drawn from the first ``vocab_size`` of :data:`VOCAB`."""
    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(2, 12, (n,), generator=g)
    total = int(lengths.sum())
    return Encoding(
        ids=tuple(f"{prefix}{i}" for i in range(n)),
        vectors=torch.nn.functional.normalize(torch.randn(total, dim, generator=g), dim=1),
        token_ids=torch.randint(0, vocab_size, (total,), generator=g),
        offsets=offsets_from_lengths(lengths),
        vocab=VOCAB[:vocab_size],
        kind=kind,
    )
