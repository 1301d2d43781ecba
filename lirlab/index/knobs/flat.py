"""The flat index's knobs: exact MaxSim has nothing to tune at search time; building may pool tokens."""

from __future__ import annotations

from lirlab.index.knobs.pooling import POOL_FACTOR
from lirlab.params import Param

SEARCH_PARAMS: dict[str, Param] = {}

BUILD_PARAMS: dict[str, Param] = {"pool_factor": POOL_FACTOR}
