"""Token pooling's one knob, a build step every kind that stores token vectors can take."""

from __future__ import annotations

from lirlab.params import Param

POOL_FACTOR = Param(
    "pool_factor",
    int,
    1,
    "Token pooling at build time: each document keeps ceil(tokens / pool_factor) vectors, the "
    "re-normalized means of Ward clusters of its token vectors (1 = off); markers stay unpooled.",
    low=1,
    high=1024,
    latency="down",
    memory="down",
    quality="down",
    aliases="PyLate pool_factor, colbert-ai pool_factor (Clavié et al. 2024)",
)
