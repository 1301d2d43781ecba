"""Where :func:`lirlab.index.base.index_kind` finds the ``"bm25_rerank"`` kind by name or artifact type;
it lives in :mod:`lirlab.index.bm25`.

>>> from lirlab.index.base import index_kind
>>> index_kind("bm25_rerank").STAGES
('bm25', 'maxsim_rerank')
"""

from lirlab.index.bm25 import BM25RerankIndex

__all__ = ["BM25RerankIndex"]
