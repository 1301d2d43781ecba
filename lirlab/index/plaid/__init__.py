"""ColBERTv2-compressed index searched with PLAID, one module per concern.

Every document token vector is stored as the code of its nearest centroid plus its residual quantized
to ``nbits`` per dimension (:class:`~lirlab.index.codec.ResidualCodec`). An inverted file lists, for
every centroid, the documents holding at least one token assigned to it.

==========================  ===================================================================
module                      holds
==========================  ===================================================================
:mod:`.knobs`               :data:`SEARCH_PARAMS`, :data:`BUILD_PARAMS`, the defaults derived from ``k``
:mod:`.compressed`          :class:`CompressedDocs`: codes, residuals, token ids, offsets, deletions
:mod:`.ivf`                 :class:`IVF`: the inverted lists, built and merged
:mod:`.stages`              the search, one function per stage of :data:`STAGES`, in order
:mod:`.kernels`             the stages' compute kernels: numba, with the torch reference beside
:mod:`.build`               k-means on a sample, the codec, compression chunk by chunk
:mod:`.updates`             ``add``, ``delete``, ``compact``
:mod:`.storage`             the index folder: ``save`` and ``load``
:mod:`.index`               :class:`PlaidIndex`, the retriever protocol over the parts above
==========================  ===================================================================

Search (Santhanam et al., *PLAID*, 2022) runs six timed stages (:mod:`.stages`): ``centroid_scoring``,
``candidate_generation`` (the paper's stage 1), ``pruning`` (stage 2), ``centroid_interaction``
(stage 3), ``decompression`` and ``exact_maxsim`` (stage 4). A search never returns fewer than ``k``
documents while the index holds ``k`` live ones.

Examples
--------
>>> import torch, tempfile
>>> from lirlab.index.plaid import PlaidIndex
>>> from lirlab.encoding import Encoding, offsets_from_lengths
>>> g = torch.Generator().manual_seed(0)
>>> docs = Encoding(
...     ids=tuple(f"d{i}" for i in range(40)),
...     vectors=torch.nn.functional.normalize(torch.randn(400, 16, generator=g), dim=1),
...     token_ids=torch.zeros(400, dtype=torch.long),
...     offsets=offsets_from_lengths(torch.full((40,), 10)),
...     vocab=("tok",),
... )
>>> index = PlaidIndex.from_encoding(docs, nbits=2, n_centroids=16)
>>> index
PlaidIndex(40 documents, 400 tokens, 16 centroids, nbits=2, 5 bytes/vector)
>>> run = index.search(docs.select([7]), k=3)
>>> run.docno.tolist()[0], len(run)
('d7', 3)
>>> folder = tempfile.mkdtemp() + "/plaid"
>>> index.save(folder)
>>> PlaidIndex.load(folder).search(docs.select([7]), k=3).docno.tolist() == run.docno.tolist()
True
>>> PlaidIndex.from_encoding(docs, n_probe=2)
Traceback (most recent call last):
...
lirlab.index.base.UnknownKnobError: building a plaid index takes nbits, n_centroids, kmeans_iterations, kmeans_sample, kmeans_points_per_centroid, seed, centroid_dtype, pool_factor, got 'n_probe'
"""

from lirlab.lazy import lazy_exports

#: Public name -> the module of this package defining it, imported on first use (PEP 562), so that
#: reading :mod:`.knobs` (the command line's help, the registry) loads no torch.
_EXPORTS = {
    "DRIFT_QUANTILE": "build",
    "CompressedDocs": "compressed",
    "PlaidIndex": "index",
    "IVF": "ivf",
    "BUILD_PARAMS": "knobs",
    "CHUNK_DOCS": "knobs",
    "DEFAULT_CHUNK_DOCS": "knobs",
    "SEARCH_PARAMS": "knobs",
    "default_search_params": "knobs",
    "PRUNED_FLOOR": "stages",
    "SCORE_BUDGET": "stages",
    "STAGES": "stages",
    "DRIFT_WARNING_LEVEL": "updates",
    "AddReport": "updates",
    "DriftWarning": "updates",
}

__all__ = sorted(_EXPORTS)

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
