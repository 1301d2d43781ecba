"""Index kinds under one retriever protocol (:mod:`lirlab.index.base`).

Importing this package registers the built-in kinds, so :func:`~lirlab.index.base.load_index` and
:func:`~lirlab.index.base.index_kind` find them by name or artifact type; other kinds are imported from
``lirlab.index.<kind>`` on first use.
"""

from lirlab.index.base import Index, index_kind, load_index
from lirlab.index.flat import FlatIndex
from lirlab.index.plaid import PlaidIndex

__all__ = ["FlatIndex", "Index", "PlaidIndex", "index_kind", "load_index"]
