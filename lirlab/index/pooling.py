"""Token pooling: fewer vectors per document by merging similar tokens at index time.

Clavié, Chaffin and Adams (2024, arXiv 2409.14683) cluster each document's token vectors
hierarchically and keep one vector per cluster, the re-normalized mean of its members: a pool factor
of 2 halves the vectors a document stores, 3 keeps a third. Queries are untouched, so any index kind
(flat, PLAID...) searches pooled documents as it searches others; ``pool_factor`` is a build step, not
a new search.

The clustering is Ward's (each merge is the one that least increases the within-cluster sum of
squared distances), computed by :func:`scipy.cluster.hierarchy.linkage` on the unit vectors, where
squared Euclidean distance is ``2 - 2 cos``. scipy's implementation is the well-kept reference (the
nearest-neighbour chain algorithm, O(n²) per document, a few milliseconds at 180 tokens); the tree is
cut here at exactly ``ceil(n / pool_factor)`` clusters by replaying its first merges (``fcluster``'s
``maxclust`` may return fewer clusters when merge heights tie).

Marker tokens (``[CLS]``, the ``[D]`` marker, ``[SEP]``) can be protected: each keeps its own
vector, and only the other tokens are clustered, into ``ceil(n_other / pool_factor)`` clusters.

Page images keep their geometry: a pooled vector's region is the bounding box of the image patches it
merges (NaN when it merges none), and :attr:`Pooling.original_regions` keeps every original patch's
box, so a heatmap can show which patches each pooled vector stands for.

Examples
--------
>>> import torch
>>> from lirlab.encoding import Encoding
>>> vectors = torch.nn.functional.normalize(torch.tensor(
...     [[1.0, 0.0], [1.0, 0.1], [0.0, 1.0], [0.1, 1.0], [1.0, 1.0]]), dim=1)
>>> docs = Encoding(ids=("d",), vectors=vectors, token_ids=torch.tensor([0, 1, 2, 3, 4]),
...                 offsets=torch.tensor([0, 5]), vocab=("[CLS]", "cat", "dog", "pup", "[SEP]"))
>>> pooled, pooling = pool_encoding(docs, 2, protect=())
>>> pooled.lengths.tolist(), pooling.groups(0)
([3], [[0, 1], [2, 3], [4]])
>>> pooled, pooling = pool_encoding(docs, 2)  # [CLS] and [SEP] keep their own vectors
>>> pooled.lengths.tolist(), pooling.groups(0), pooling.group_tokens(0)
([4], [[0], [1], [2, 3], [4]], [['[CLS]'], ['cat'], ['dog', 'pup'], ['[SEP]']])
>>> pool_encoding(docs, 0)
Traceback (most recent call last):
...
ValueError: pool_factor must be >= 1, got 0
"""

from __future__ import annotations

import math
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field, replace

import numpy as np
import torch
from tqdm.auto import tqdm

from lirlab.encoding import Encoding, offsets_from_lengths
from lirlab.index.knobs.pooling import POOL_FACTOR

#: Token strings kept unpooled by default: ``[CLS]``, ``[SEP]``, and the document marker under its
#: PyLate (``[D]``) and Stanford (``[unused1]``) spellings.
MARKERS = ("[CLS]", "[SEP]", "[D]", "[unused1]")


@dataclass(frozen=True)
class Pooling:
    """Which original tokens each pooled vector stands for.

    Attributes
    ----------
    assignment : torch.Tensor
        ``[original_tokens]`` int64: the pooled row (in the pooled :class:`Encoding`) each original
        token row was merged into.
    original_offsets : torch.Tensor
        ``[n_docs + 1]`` offsets of the original documents.
    original_token_ids : torch.Tensor
        ``[original_tokens]`` vocabulary ids of the original tokens.
    pooled_offsets : torch.Tensor
        ``[n_docs + 1]`` offsets of the pooled documents.
    vocab : tuple of str
        Token strings by vocabulary id.
    pool_factor : int
        The factor used.
    original_regions : torch.Tensor, optional
        Page images: ``[original_tokens, 4]`` boxes of the original rows
        (see :attr:`lirlab.encoding.Encoding.regions`); ``None`` for text.
    """

    assignment: torch.Tensor
    original_offsets: torch.Tensor
    original_token_ids: torch.Tensor
    pooled_offsets: torch.Tensor
    vocab: tuple[str, ...] = field(repr=False)
    pool_factor: int = 1
    original_regions: torch.Tensor | None = field(default=None, repr=False)

    def __len__(self) -> int:
        return int(self.original_offsets.shape[0]) - 1

    @property
    def vectors_removed(self) -> float:
        """Share of the original vectors pooling removed."""
        before, after = int(self.original_offsets[-1]), int(self.pooled_offsets[-1])
        return 1.0 - after / before if before else 0.0

    def groups(self, doc: int) -> list[list[int]]:
        """For each pooled vector of document ``doc``, the positions (within the original document) of
        the tokens it stands for."""
        start, stop = int(self.original_offsets[doc]), int(self.original_offsets[doc + 1])
        first = int(self.pooled_offsets[doc])
        out: list[list[int]] = [[] for _ in range(int(self.pooled_offsets[doc + 1]) - first)]
        for position, row in enumerate(self.assignment[start:stop].tolist()):
            out[row - first].append(position)
        return out

    def group_regions(self, doc: int) -> list[torch.Tensor]:
        """Page images: for each pooled vector of document ``doc``, the ``[members, 4]`` boxes of the
        original rows it stands for (NaN rows for members that are not patches)."""
        if self.original_regions is None:
            raise ValueError("this pooling was built on text, not page images: it has no regions")
        start = int(self.original_offsets[doc])
        return [self.original_regions[start + torch.tensor(g, dtype=torch.long)] for g in self.groups(doc)]

    def group_tokens(self, doc: int) -> list[list[str]]:
        """:meth:`groups` as token strings."""
        start = int(self.original_offsets[doc])
        ids = self.original_token_ids.tolist()
        return [[self.vocab[ids[start + p]] for p in group] for group in self.groups(doc)]

    def frame(self, doc: int):
        """One row per pooled vector of document ``doc``: how many original tokens it stands for, their
        positions and their text (what a student looks at to see what pooling merged).

        >>> import torch
        >>> p = Pooling(torch.tensor([0, 1, 1]), torch.tensor([0, 3]), torch.tensor([0, 1, 2]),
        ...             torch.tensor([0, 2]), ("[CLS]", "bee", "bees"), 2)
        >>> p.frame(0).values.tolist()
        [[0, 1, '0', '[CLS]'], [1, 2, '1 2', 'bee · bees']]
        """
        import pandas as pd

        groups, tokens = self.groups(doc), self.group_tokens(doc)
        return pd.DataFrame(
            {
                "pooled_vector": range(len(groups)),
                "n_tokens": [len(g) for g in groups],
                "positions": [" ".join(map(str, g)) for g in groups],
                "tokens": [" · ".join(t) for t in tokens],
            }
        )

    def select(self, positions) -> Pooling:
        """The mapping of the documents at ``positions`` only (pooled rows renumbered)."""
        from lirlab.encoding import rows_of

        positions = torch.as_tensor(list(positions), dtype=torch.long)
        rows = rows_of(self.original_offsets, positions)
        pooled_lengths = (self.pooled_offsets[1:] - self.pooled_offsets[:-1])[positions]
        pooled_offsets = offsets_from_lengths(pooled_lengths)
        doc_of_row = torch.repeat_interleave(
            torch.arange(positions.numel()),
            (self.original_offsets[1:] - self.original_offsets[:-1])[positions],
        )
        shift = self.pooled_offsets[positions][doc_of_row] - pooled_offsets[:-1][doc_of_row]
        return Pooling(
            self.assignment[rows] - shift,
            offsets_from_lengths((self.original_offsets[1:] - self.original_offsets[:-1])[positions]),
            self.original_token_ids[rows],
            pooled_offsets,
            self.vocab,
            self.pool_factor,
            None if self.original_regions is None else self.original_regions[rows],
        )

    @staticmethod
    def concat(parts: Sequence[Pooling]) -> Pooling:
        """The mappings of consecutive document batches as one (pooled rows renumbered).

        >>> a = Pooling(torch.tensor([0, 0]), torch.tensor([0, 2]), torch.tensor([1, 2]), torch.tensor([0, 1]), ("x", "y", "z"), 2)
        >>> both = Pooling.concat([a, a])
        >>> both.assignment.tolist(), both.pooled_offsets.tolist(), both.group_tokens(1)
        ([0, 0, 1, 1], [0, 1, 2], [['y', 'z']])
        """
        if not parts:
            raise ValueError("nothing to concatenate")
        shifts = torch.tensor([0] + [int(p.pooled_offsets[-1]) for p in parts[:-1]]).cumsum(0)
        lengths = lambda offsets: offsets[1:] - offsets[:-1]  # noqa: E731
        return Pooling(
            torch.cat([p.assignment + int(shift) for p, shift in zip(parts, shifts)]),
            offsets_from_lengths(torch.cat([lengths(p.original_offsets) for p in parts])),
            torch.cat([p.original_token_ids for p in parts]),
            offsets_from_lengths(torch.cat([lengths(p.pooled_offsets) for p in parts])),
            parts[0].vocab,
            parts[0].pool_factor,
            torch.cat([p.original_regions for p in parts])
            if all(p.original_regions is not None for p in parts)
            else None,
        )

    def arrays(self) -> dict[str, np.ndarray]:
        """What an index saves to keep the mapping (open formats: ``.npy``); page images add the
        original boxes as ``pool_original_regions``."""
        arrays = {
            "pool_assignment": self.assignment.cpu().numpy().astype(np.int64),
            "pool_original_offsets": self.original_offsets.cpu().numpy().astype(np.int64),
            "pool_original_token_ids": self.original_token_ids.cpu().numpy().astype(np.int32),
        }
        if self.original_regions is not None:
            arrays["pool_original_regions"] = self.original_regions.cpu().numpy().astype(np.float32)
        return arrays

    @classmethod
    def from_arrays(cls, arrays: dict, pooled_offsets, vocab, pool_factor: int) -> Pooling:
        """Inverse of :meth:`arrays`."""
        regions = arrays.get("pool_original_regions")
        return cls(
            torch.as_tensor(np.asarray(arrays["pool_assignment"]), dtype=torch.long),
            torch.as_tensor(np.asarray(arrays["pool_original_offsets"]), dtype=torch.long),
            torch.as_tensor(np.asarray(arrays["pool_original_token_ids"]), dtype=torch.long),
            torch.as_tensor(pooled_offsets, dtype=torch.long).cpu(),
            tuple(vocab),
            int(pool_factor),
            None if regions is None else torch.as_tensor(np.asarray(regions), dtype=torch.float32),
        )


def ward_clusters(vectors: np.ndarray, n_clusters: int) -> np.ndarray:
    """Labels ``0..n_clusters-1`` of a Ward clustering of the rows of ``vectors``, numbered by first row.

    The linkage tree is cut by replaying its first ``len(vectors) - n_clusters`` merges, so exactly
    ``n_clusters`` clusters come out (ties in merge height cannot lose one).

    >>> ward_clusters(np.array([[0.0, 0.0], [0.0, 0.1], [5.0, 5.0], [0.0, 0.3]]), 2).tolist()
    [0, 0, 1, 0]
    """
    from scipy.cluster.hierarchy import linkage

    n = int(vectors.shape[0])
    n_clusters = max(1, min(n_clusters, n))
    if n_clusters == n:
        return np.arange(n)
    tree = linkage(np.asarray(vectors, dtype=np.float64), method="ward")
    parent = list(range(2 * n - 1))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for step in range(n - n_clusters):
        a, b = int(tree[step, 0]), int(tree[step, 1])
        parent[root(a)] = n + step
        parent[root(b)] = n + step
    roots = [root(i) for i in range(n)]
    labels: dict[int, int] = {}
    return np.array([labels.setdefault(r, len(labels)) for r in roots])


def pool_encoding(
    docs: Encoding,
    pool_factor: int,
    protect: Collection[str] | None = MARKERS,
    progress: bool = False,
    check_length: bool = True,
) -> tuple[Encoding, Pooling]:
    """Pool every document's token vectors by Ward clustering.

    Parameters
    ----------
    docs : Encoding
        Encoded documents (unit vectors).
    pool_factor : int
        Each document keeps ``ceil(n / pool_factor)`` vectors for its ``n`` unprotected tokens (plus its
        protected ones); 1 returns the documents unchanged.
    protect : collection of str, optional
        Token strings kept as their own vectors (default :data:`MARKERS`); ``()`` or ``None`` pools
        every token.
    progress : bool
        Show a progress bar over documents.
    check_length : bool
        Refuse a ``pool_factor`` above the longest document's length (a batch of a larger corpus may
        skip the check: there such documents keep one vector).

    Returns
    -------
    (Encoding, Pooling)
        The pooled documents (same ids and order; each pooled vector the normalized mean of its cluster,
        carrying the token id of the member closest to it; pooled vectors ordered by their first member)
        and the mapping from pooled vectors to original tokens. Empty documents stay empty. For page
        images, a pooled vector's region is the bounding box of the patches it merges (NaN if none) and
        it is a ``global_view`` patch when all the patches it merges are.

    Raises
    ------
    ValueError
        ``pool_factor`` is not a whole number in 1..1024, or exceeds the longest document's length.
    """
    pool_factor = POOL_FACTOR.validate(pool_factor)
    if not isinstance(docs, Encoding):
        raise ValueError(f"pool_encoding needs an Encoding of documents, got {type(docs).__name__}")
    lengths = docs.lengths.cpu()
    longest = int(lengths.max()) if len(docs) else 0
    if check_length and longest and pool_factor > longest:
        raise ValueError(
            f"pool_factor={pool_factor} exceeds the longest document ({longest} tokens); "
            f"choose pool_factor in 1..{longest}"
        )
    protected_ids = {i for i, s in enumerate(docs.vocab) if s in set(protect or ())}
    vectors = docs.vectors.detach().float().cpu()
    token_ids = docs.token_ids.cpu()
    offsets = docs.offsets.cpu().tolist()
    regions = None if docs.regions is None else docs.regions.detach().float().cpu()
    if pool_factor == 1:
        identity = torch.arange(int(docs.vectors.shape[0]))
        return docs, Pooling(
            identity, docs.offsets.cpu(), token_ids, docs.offsets.cpu(), docs.vocab, 1, regions
        )

    out_vectors, out_ids, out_lengths, assignment, out_regions, out_global = [], [], [], [], [], []
    protected_mask = (
        torch.isin(token_ids, torch.tensor(sorted(protected_ids), dtype=token_ids.dtype))
        if protected_ids
        else torch.zeros(token_ids.shape[0], dtype=torch.bool)
    )
    n_pooled = 0
    for d in tqdm(range(len(docs)), desc="token pooling", unit="doc", disable=not progress):
        start, stop = offsets[d], offsets[d + 1]
        n = stop - start
        labels = np.zeros(n, dtype=np.int64)
        keep = protected_mask[start:stop].numpy()
        free = np.flatnonzero(~keep)
        if free.size:
            labels[free] = ward_clusters(
                vectors[start:stop][free].numpy(), math.ceil(free.size / pool_factor)
            )
        # protected tokens get clusters of their own; then clusters are numbered by their first member
        n_free = int(labels[free].max()) + 1 if free.size else 0
        kept = np.flatnonzero(keep)
        labels[kept] = n_free + np.arange(kept.size)
        _, first_rows, labels = np.unique(labels, return_index=True, return_inverse=True)
        order = np.argsort(first_rows, kind="stable")
        labels = np.argsort(order)[labels].astype(np.int64)
        n_groups = int(first_rows.size)
        label_t = torch.from_numpy(labels)
        sums = torch.zeros(n_groups, docs.dim).index_add_(0, label_t, vectors[start:stop])
        pooled = torch.nn.functional.normalize(sums, dim=1)
        # each pooled vector carries the token id of its member closest to it (ties: the first)
        cosines = (vectors[start:stop] * pooled[label_t]).sum(dim=1).numpy()
        by_group = np.lexsort((np.arange(n), -cosines, labels))
        group_starts = np.searchsorted(labels[by_group], np.arange(n_groups))
        representative = torch.from_numpy(by_group[group_starts])
        out_vectors.append(pooled)
        out_ids.append(token_ids[start:stop][representative] if n else token_ids[start:stop])
        out_lengths.append(n_groups)
        assignment.append(label_t + n_pooled)
        if regions is not None:
            out_regions.append(bounding_boxes(regions[start:stop], label_t, n_groups))
            if docs.global_view is not None:
                not_global = (docs.is_patch.cpu() & ~docs.global_view.cpu())[start:stop]
                tile_members = torch.zeros(n_groups, dtype=torch.long).index_add_(
                    0, label_t, not_global.long()
                )
                has_patch = ~out_regions[-1].isnan().any(dim=1)
                out_global.append(has_patch & (tile_members == 0))
        n_pooled += n_groups
    pooled_offsets = offsets_from_lengths(torch.tensor(out_lengths, dtype=torch.long))
    pooled = replace(
        docs,
        vectors=(torch.cat(out_vectors) if out_vectors else docs.vectors[:0].float()).to(docs.vectors.dtype),
        token_ids=torch.cat(out_ids) if out_ids else token_ids[:0],
        offsets=pooled_offsets,
        exact=False,
        regions=None
        if regions is None
        else (torch.cat(out_regions) if out_regions else regions[:0]).to(docs.regions.device),
        global_view=None
        if docs.global_view is None
        else (torch.cat(out_global) if out_global else docs.global_view[:0].cpu()).to(
            docs.global_view.device
        ),
    )
    pooling = Pooling(
        torch.cat(assignment) if assignment else torch.zeros(0, dtype=torch.long),
        docs.offsets.cpu(),
        token_ids,
        pooled_offsets,
        docs.vocab,
        pool_factor,
        regions,
    )
    return pooled, pooling


def bounding_boxes(regions: torch.Tensor, labels: torch.Tensor, n_groups: int) -> torch.Tensor:
    """The ``[n_groups, 4]`` bounding box of the patch boxes in each group (NaN rows ignored; a group
    without patches gets a NaN row).

    >>> nan = float("nan")
    >>> boxes = torch.tensor([[0.0, 0.0, 0.5, 0.5], [0.5, 0.5, 1.0, 1.0], [nan, nan, nan, nan]])
    >>> bounding_boxes(boxes, torch.tensor([0, 0, 1]), 2).tolist()
    [[0.0, 0.0, 1.0, 1.0], [nan, nan, nan, nan]]
    """
    patch = ~regions.isnan().any(dim=1)
    index = labels[:, None].expand(-1, 2)
    low = torch.full((n_groups, 2), float("inf")).scatter_reduce(0, index[patch], regions[patch, :2], "amin")
    high = torch.full((n_groups, 2), float("-inf")).scatter_reduce(
        0, index[patch], regions[patch, 2:], "amax"
    )
    boxes = torch.cat([low, high], dim=1)
    boxes[~torch.isfinite(boxes).all(dim=1)] = float("nan")
    return boxes


def pool_if_asked(
    docs: Encoding, pool_factor: int, progress: bool = False, check_length: bool = True
) -> tuple[Encoding, Pooling | None]:
    """``docs`` pooled at ``pool_factor`` with its mapping, or ``docs`` and None when the factor is 1."""
    if pool_factor == 1:
        return docs, None
    return pool_encoding(docs, pool_factor, progress=progress, check_length=check_length)


def save_pooling(writer, pooling: Pooling | None) -> None:
    """Write a pooled index's mapping into the index folder being written (nothing when unpooled)."""
    if pooling is None:
        return
    for name, values in pooling.arrays().items():
        writer.save_array(name, values)


def load_pooling(artifact, pool_factor: int, pooled_offsets, vocab) -> Pooling | None:
    """The mapping :func:`save_pooling` wrote, with its structure checked (an
    :class:`~lirlab.storage.ArtifactError` names the file), or None for an unpooled index."""
    from lirlab.storage import ArtifactError, check_offsets

    if pool_factor == 1:
        return None
    pooled_offsets = np.asarray(pooled_offsets)
    n_docs, pooled_rows = len(pooled_offsets) - 1, int(pooled_offsets[-1])
    original_offsets = artifact.checked_array("pool_original_offsets", "iu", 1, (n_docs + 1,))
    n_original = int(original_offsets[-1])
    check_offsets(original_offsets, n_original, artifact.path / "pool_original_offsets.npy")
    assignment = artifact.checked_array("pool_assignment", "iu", 1, (n_original,))
    token_ids = artifact.checked_array("pool_original_token_ids", "iu", 1, (n_original,))
    regions = (
        artifact.checked_array("pool_original_regions", "f", 2, (n_original, 4))
        if "pool_original_regions.npy" in (artifact.metadata.get("files") or {})
        else None
    )
    if assignment.size and (int(assignment.min()) < 0 or int(assignment.max()) >= pooled_rows):
        raise ArtifactError(
            f"{artifact.path / 'pool_assignment.npy'}: rows outside the {pooled_rows} pooled vectors"
        )
    if vocab and token_ids.size and int(token_ids.max()) >= len(vocab):
        raise ArtifactError(
            f"{artifact.path / 'pool_original_token_ids.npy'}: token ids outside the vocabulary"
        )
    return Pooling.from_arrays(
        {
            "pool_assignment": assignment,
            "pool_original_offsets": original_offsets,
            "pool_original_token_ids": token_ids,
        }
        | ({} if regions is None else {"pool_original_regions": regions}),
        pooled_offsets,
        vocab,
        pool_factor,
    )
