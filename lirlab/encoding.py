"""The one record that flows through lirlab: packed token vectors with their tokens.

An :class:`Encoding` holds the vectors of many items (queries or documents) in one ``[tokens, dim]``
matrix, cut into items by ``offsets``. Token ids travel beside the vectors, and ``vocab`` maps them to
strings, so any explanation can show tokens without encoding again.

Examples
--------
>>> import torch
>>> enc = Encoding(
...     ids=("d1", "d2"),
...     vectors=torch.eye(3),
...     token_ids=torch.tensor([5, 6, 7]),
...     offsets=torch.tensor([0, 2, 3]),
...     vocab=("a", "b", "c", "d", "e", "[D]", "cat", "dog"),
... )
>>> enc.lengths.tolist()
[2, 1]
>>> enc.tokens(0)
['[D]', 'cat']
>>> enc.item("d2").tokens(0)
['dog']

Page images (see :mod:`lirlab.page_encoder`) add where each vector lies on its page: ``regions`` holds a
box per row as fractions of the page's width and height, NaN for rows that are not image patches.

>>> nan = float("nan")
>>> page = Encoding(
...     ids=("p1",),
...     vectors=torch.eye(3),
...     token_ids=torch.tensor([0, 1, 1]),
...     offsets=torch.tensor([0, 3]),
...     vocab=("<bos>", "<image>"),
...     regions=torch.tensor([[nan, nan, nan, nan], [0.0, 0.0, 0.5, 1.0], [0.5, 0.0, 1.0, 1.0]]),
... )
>>> page.is_patch.tolist()
[False, True, True]
>>> page.regions_of(0)[2].tolist()
[0.5, 0.0, 1.0, 1.0]
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import torch


@dataclass(frozen=True)
class Encoding:
    """Packed token vectors of ``len(ids)`` items.

    Parameters
    ----------
    ids : tuple of str
        One id per item (qid or docno).
    vectors : torch.Tensor
        ``[total_tokens, dim]``, L2-normalized rows.
    token_ids : torch.Tensor
        ``[total_tokens]`` vocabulary ids, aligned with ``vectors``.
    offsets : torch.Tensor
        ``[len(ids) + 1]`` int64; item ``i`` owns rows ``offsets[i]:offsets[i+1]``.
    vocab : tuple of str
        Token string of every vocabulary id.
    truncated : tuple of bool
        Whether each item was cut at the maximum length.
    kind : str
        ``"query"`` or ``"document"``.
    mask_token_id : int
        Vocabulary id of ``[MASK]`` (query augmentation), or -1.
    texts : tuple of str
        The text of every item when known (queries keep theirs, so runs show what was asked), else ``()``.
    exact : bool
        Whether the vectors are as the encoder produced them (``False``: rebuilt by a compressed index).
    regions : torch.Tensor, optional
        Page images only: ``[total_tokens, 4]`` float32, the box of every row's image patch on its page
        as ``(x0, y0, x1, y1)`` fractions of the page image's width and height (in ``[0, 1]``, ``x``
        rightwards, ``y`` downwards); a row of NaN for a vector that is not an image patch (text and
        special tokens). ``None`` for text. The boxes are those of the page as the model's processor
        resized it, which keeps the page's proportions up to rounding to whole patches.
    global_view : torch.Tensor, optional
        Page images whose model also sees a downscaled copy of the whole page (ColModernVBert's
        Idefics3-style global image beside its tiles): ``[total_tokens]`` bool, True for the patches of
        that copy. Their ``regions`` cover the page at the copy's coarser resolution, so they overlap the
        tile patches; a heatmap draws them apart. ``None`` when no row is such a patch.
    """

    ids: tuple[str, ...]
    vectors: torch.Tensor
    token_ids: torch.Tensor
    offsets: torch.Tensor
    vocab: tuple[str, ...] = field(repr=False)
    truncated: tuple[bool, ...] = ()
    kind: str = "document"
    mask_token_id: int = -1
    texts: tuple[str, ...] = field(default=(), repr=False)
    exact: bool = True
    regions: torch.Tensor | None = field(default=None, repr=False)
    global_view: torch.Tensor | None = field(default=None, repr=False)

    def __post_init__(self):
        n = len(self.ids)
        if self.offsets.shape != (n + 1,):
            raise ValueError(
                f"offsets must have {n + 1} entries for {n} items, got {tuple(self.offsets.shape)}"
            )
        if self.vectors.shape[0] != self.token_ids.shape[0]:
            raise ValueError("vectors and token_ids must have the same number of rows")
        if n and int(self.offsets[-1]) != self.vectors.shape[0]:
            raise ValueError("offsets[-1] must equal the number of token rows")
        if not self.truncated:
            object.__setattr__(self, "truncated", (False,) * n)
        if self.texts and len(self.texts) != n:
            raise ValueError(f"texts must have one entry per item ({n}), got {len(self.texts)}")
        rows = self.vectors.shape[0]
        if self.regions is not None and tuple(self.regions.shape) != (rows, 4):
            raise ValueError(
                f"regions must be [{rows}, 4] (one box per vector), got {tuple(self.regions.shape)}"
            )
        if self.global_view is not None:
            if self.regions is None:
                raise ValueError("global_view needs regions (it marks image patches)")
            if tuple(self.global_view.shape) != (rows,) or self.global_view.dtype != torch.bool:
                raise ValueError(
                    f"global_view must be a [{rows}] bool tensor, got {self.global_view.dtype} "
                    f"{tuple(self.global_view.shape)}"
                )

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def dim(self) -> int:
        return int(self.vectors.shape[1])

    @property
    def lengths(self) -> torch.Tensor:
        return self.offsets[1:] - self.offsets[:-1]

    def position(self, item_id: str) -> int:
        """Index of ``item_id``; ``KeyError`` naming the id when absent."""
        try:
            return self.ids.index(item_id)
        except ValueError:
            raise KeyError(f"no item with id {item_id!r}") from None

    def span(self, i: int) -> slice:
        return slice(int(self.offsets[i]), int(self.offsets[i + 1]))

    def vectors_of(self, i: int) -> torch.Tensor:
        return self.vectors[self.span(i)]

    def token_ids_of(self, i: int) -> torch.Tensor:
        return self.token_ids[self.span(i)]

    def tokens(self, i: int) -> list[str]:
        return [self.vocab[t] for t in self.token_ids_of(i).tolist()]

    @property
    def is_patch(self) -> torch.Tensor:
        """``[total_tokens]`` bool: which rows are image patches (all False for text)."""
        if self.regions is None:
            return torch.zeros(self.vectors.shape[0], dtype=torch.bool, device=self.vectors.device)
        return ~self.regions.isnan().any(dim=1)

    def regions_of(self, i: int) -> torch.Tensor:
        """The ``[length, 4]`` patch boxes of item ``i`` (NaN rows for non-patches); ``ValueError`` for
        text."""
        if self.regions is None:
            raise ValueError("this encoding holds text, not page images: it has no regions")
        return self.regions[self.span(i)]

    def mask_positions(self, i: int) -> torch.Tensor:
        """Boolean vector: which tokens of item ``i`` are augmentation ``[MASK]`` tokens."""
        return self.token_ids_of(i) == self.mask_token_id

    def item(self, item_id: str) -> Encoding:
        return self.select([self.position(item_id)])

    def select(self, positions: Sequence[int]) -> Encoding:
        """A new Encoding holding the items at ``positions``, in that order."""
        positions_t = torch.as_tensor(list(positions), dtype=torch.long)
        rows = rows_of(self.offsets, positions_t)
        lengths = self.lengths[positions_t]
        return Encoding(
            ids=tuple(self.ids[int(i)] for i in positions),
            vectors=self.vectors[rows],
            token_ids=self.token_ids[rows],
            offsets=offsets_from_lengths(lengths),
            vocab=self.vocab,
            truncated=tuple(self.truncated[int(i)] for i in positions),
            kind=self.kind,
            mask_token_id=self.mask_token_id,
            texts=tuple(self.texts[int(i)] for i in positions) if self.texts else (),
            exact=self.exact,
            regions=None if self.regions is None else self.regions[rows.to(self.regions.device)],
            global_view=None
            if self.global_view is None
            else self.global_view[rows.to(self.global_view.device)],
        )

    def to(self, device: str | torch.device) -> Encoding:
        return Encoding(
            ids=self.ids,
            vectors=self.vectors.to(device),
            token_ids=self.token_ids.to(device),
            offsets=self.offsets.to(device),
            vocab=self.vocab,
            truncated=self.truncated,
            kind=self.kind,
            mask_token_id=self.mask_token_id,
            texts=self.texts,
            exact=self.exact,
            regions=None if self.regions is None else self.regions.to(device),
            global_view=None if self.global_view is None else self.global_view.to(device),
        )

    @staticmethod
    def concat(parts: Sequence[Encoding]) -> Encoding:
        """Join encodings made with the same model, keeping item order.

        Page encodings (with ``regions``) and text encodings do not mix: joining them raises
        ``ValueError`` (parts without rows are ignored in that check). ``global_view`` is kept when any
        part has it (False for the rows of parts without it).
        """
        if not parts:
            raise ValueError("nothing to concatenate")
        first = parts[0]
        has_rows = [p for p in parts if p.vectors.shape[0]]
        paged = {p.regions is not None for p in has_rows}
        if len(paged) > 1:
            raise ValueError(
                "cannot concatenate page-image encodings (with regions) and text encodings: "
                "encode them with one model"
            )
        regions = global_view = None
        if paged == {True} or (not has_rows and first.regions is not None):
            regions = torch.cat(
                [p.regions if p.regions is not None else p.vectors.new_zeros(0, 4).float() for p in parts]
            )
            if any(p.global_view is not None for p in parts):
                global_view = torch.cat(
                    [
                        p.global_view
                        if p.global_view is not None
                        else torch.zeros(p.vectors.shape[0], dtype=torch.bool, device=p.vectors.device)
                        for p in parts
                    ]
                )
        lengths = torch.cat([p.lengths for p in parts])
        return Encoding(
            ids=tuple(i for p in parts for i in p.ids),
            vectors=torch.cat([p.vectors for p in parts]),
            token_ids=torch.cat([p.token_ids for p in parts]),
            offsets=offsets_from_lengths(lengths),
            vocab=first.vocab,
            truncated=tuple(t for p in parts for t in p.truncated),
            kind=first.kind,
            mask_token_id=first.mask_token_id,
            texts=tuple(t for p in parts for t in p.texts) if all(p.texts for p in parts) else (),
            exact=all(p.exact for p in parts),
            regions=regions,
            global_view=global_view,
        )


def offsets_from_lengths(lengths: torch.Tensor) -> torch.Tensor:
    """``[0, l0, l0+l1, ...]`` as int64.

    >>> offsets_from_lengths(torch.tensor([2, 3])).tolist()
    [0, 2, 5]
    """
    return torch.cat([torch.zeros(1, dtype=torch.long), lengths.to(torch.long).cumsum(0)])


def rows_of(offsets: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
    """Row indices of the items at ``positions`` in a packed matrix cut by ``offsets``, concatenated.

    >>> rows_of(torch.tensor([0, 2, 5, 6]), torch.tensor([2, 0])).tolist()
    [5, 0, 1]
    """
    offsets = offsets.to(torch.long)
    positions = positions.to(device=offsets.device, dtype=torch.long)
    starts = offsets[positions]
    lengths = offsets[positions + 1] - starts
    if lengths.numel() == 0:
        return torch.zeros(0, dtype=torch.long, device=offsets.device)
    firsts = offsets_from_lengths(lengths)[:-1]
    return torch.repeat_interleave(starts - firsts, lengths) + torch.arange(
        int(lengths.sum()), device=offsets.device
    )
