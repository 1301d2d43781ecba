"""Index kinds under one retriever protocol (:mod:`lirlab.index.base`), listed by one registry
(:mod:`lirlab.index.registry`).

Each name is imported on first use (PEP 562): listing the kinds, their knobs and their help
(:mod:`lirlab.index.registry`) loads no torch.
"""

from __future__ import annotations

from lirlab.lazy import lazy_exports

#: Public name -> ``module:attribute`` defining it, imported when the name is first used.
_EXPORTS = {
    "Index": "lirlab.index.base:Index",
    "FlatIndex": "lirlab.index.flat:FlatIndex",
    "PlaidIndex": "lirlab.index.plaid:PlaidIndex",
    "index_kind": "lirlab.index.registry:kind_class",
    "load_index": "lirlab.index.registry:load_index",
}

__all__ = sorted(_EXPORTS)

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
