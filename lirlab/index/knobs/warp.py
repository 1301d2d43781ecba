"""WARP's search knobs; it builds as PLAID does (the same files), so its build knobs are PLAID's."""

from __future__ import annotations

from lirlab.index.plaid.knobs import BUILD_PARAMS
from lirlab.params import Param

#: Default ``t_prime`` as a share of the index's tokens (at least :data:`MIN_T_PRIME`).
T_PRIME_SHARE = 0.01
MIN_T_PRIME = 1000

SEARCH_PARAMS: dict[str, Param] = {
    "nprobe": Param(
        "nprobe",
        int,
        16,
        "Centroids probed per query token (their tokens are scored; the rest are imputed).",
        low=1,
        latency="up",
        quality="up",
        aliases="WARP nprobe, PLAID n_probe, Stanford ncells",
    ),
    "t_prime": Param(
        "t_prime",
        int,
        None,
        "Tokens after which, walking down a query token's best centroids, the centroid score becomes the "
        f"missing similarity imputed for unreached documents (default {T_PRIME_SHARE:.0%} of the index's "
        f"tokens, at least {MIN_T_PRIME}); larger is harsher on documents that lack a match.",
        low=1,
        quality="up",
        aliases="WARP t_prime (XTR k')",
    ),
    "bound": Param(
        "bound",
        int,
        128,
        "Best centroids per query token considered by WARP_SELECT: the probes are its first nprobe, the "
        "t_prime walk stops at its end.",
        low=1,
        latency="up",
        quality="up",
        aliases="WARP bound",
    ),
}


__all__ = ["BUILD_PARAMS", "MIN_T_PRIME", "SEARCH_PARAMS", "T_PRIME_SHARE"]
