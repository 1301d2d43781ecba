"""Page-image retrieval models: pages in, one vector per image patch out, with each patch's place on the page.

:class:`PageEncoder` runs the ColVision models that transformers defines, through their own classes:
``ColPaliForRetrieval`` (PaliGemma), ``ColQwen2ForRetrieval`` (Qwen2-VL, and Qwen2.5-VL backbones
saved in that class) and ``ColModernVBertForRetrieval`` (ModernVBert), each with its processor. Documents
are page images and queries are text; both come out as an :class:`~lirlab.encoding.Encoding`, so every
index kind, analysis and widget takes them as it takes text.

**What each document vector stands for.** A page's sequence is its image tokens and the processor's
prompt tokens (``<bos>``, "Describe the image."...). Every position the model attends to is kept, as the model class returns it; ``token_ids``
say which is which (the processor's image token) and :attr:`Encoding.regions` gives each image token's
box on the page, as fractions of the page's width and height (NaN rows for the prompt tokens):

* **ColPali**: a fixed square grid (``image_seq_length`` tokens, 32 x 32 = 1,024 for real
  checkpoints), row-major over the page squeezed to the square input;
* **ColQwen2**: a dynamic grid, ``image_grid_thw`` divided by the 2 x 2 spatial merge, row-major: one
  vector per 28 x 28 pixels of the page resized (aspect ratio kept, to multiples of 28);
* **ColModernVBert**: Idefics3-style tiles, row-major, each a square grid of ``image_seq_len`` tokens
  (after the pixel shuffle), then a global image: the whole page squeezed to one tile. Tile patches
  are sub-boxes of their tile; the global image's patches cover the page at the coarser resolution and
  are marked in :attr:`Encoding.global_view`.

**Choices made.**

* **Preprocessing** uses the processors' PIL image processors (``backend="pil"``), never the
  torchvision ones, whose resizing differs: vectors do not depend on whether torchvision is
  installed. The same PIL classes are what transformers falls back to without torchvision.
* **ColQwen2 positions** are those ``ColQwen2ForRetrieval`` gives: it feeds the language model
  ``inputs_embeds`` without ``position_ids``, so the positions are 1-D (0, 1, 2...), where colpali-engine's
  own ColQwen2 gives Qwen2-VL's 3-D (time, row, column) rotary positions. lirlab follows the
  transformers class, the implementation the ``-hf`` checkpoints were converted for.
* **Query augmentation**: the processors append 10 "augmentation buffer" tokens to every query (the pad
  token for ColPali and ColQwen2, ``<end_of_utterance>`` for ColModernVBert), the multimodal counterpart
  of ColBERT's ``[MASK]`` padding. They are kept and named by ``Encoding.mask_token_id``, so lirlab's
  ``[MASK]`` analyses (:mod:`lirlab.analysis.masks`) run on page models: ``query_maxlen`` pads a query
  with buffers to that many tokens instead of appending 10, ``query_maxlen=0`` appends none, and
  ``attend_to_mask_tokens=False`` hides the buffers from attention (their vectors are still returned).

Examples
--------
>>> from lirlab.encoder import ColBERT
>>> encoder = ColBERT.load("tests/fixtures/pages/colpali")  # doctest: +SKIP
>>> pages = encoder.encode_documents([Image.new("RGB", (595, 842), "white")])  # doctest: +SKIP
>>> int(pages.is_patch.sum()), pages.regions[pages.is_patch][0].tolist()  # doctest: +SKIP
(16, [0.0, 0.0, 0.25, 0.25])
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from lirlab.data import Query, as_queries
from lirlab.encoding import Encoding, offsets_from_lengths


@dataclass(frozen=True)
class Family:
    """How one model family is loaded and where its image tokens lie."""

    name: str
    model_class: str
    processor_class: str


#: The families by ``model_type`` in a checkpoint's ``config.json``.
FAMILIES = {
    "colpali": Family("colpali", "ColPaliForRetrieval", "ColPaliProcessor"),
    "colqwen2": Family("colqwen2", "ColQwen2ForRetrieval", "ColQwen2Processor"),
    "colmodernvbert": Family("colmodernvbert", "ColModernVBertForRetrieval", "ColModernVBertProcessor"),
}

#: The number of augmentation buffers the processors append to a query.
QUERY_BUFFERS = 10


class PageModelError(RuntimeError):
    """A page-image model could not be loaded or used (:meth:`lirlab.encoder.ColBERT.load` raises it as a
    :class:`~lirlab.encoder.ModelLoadError`)."""


def page_family(folder: str | os.PathLike) -> str | None:
    """The family (a key of :data:`FAMILIES`) of the checkpoint in ``folder``, or None for another model.

    Read from ``config.json``'s ``model_type`` or ``architectures``.
    """
    config = Path(folder) / "config.json"
    if not config.is_file():
        return None
    try:
        settings = json.loads(config.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(settings, dict):
        return None
    if settings.get("model_type") in FAMILIES:
        return settings["model_type"]
    architectures = settings.get("architectures") or []
    for name, family in FAMILIES.items():
        if family.model_class in architectures:
            return name
    return None


@dataclass(frozen=True)
class PageEncoderConfig:
    """How queries are augmented (documents have nothing to choose).

    Attributes
    ----------
    query_augmentation : bool
        Append augmentation buffers to queries (the processors always do).
    query_maxlen : int or None
        None appends :data:`QUERY_BUFFERS` buffers, as the processors do; a number pads each query with
        buffers up to that many tokens instead (a longer query gets none and is not cut).
    attend_to_mask_tokens : bool
        Whether the model's attention sees the buffers (it does in the processors' inputs).
    checkpoint_format : str
        ``"huggingface"`` (a transformers folder or hub id).
    """

    query_augmentation: bool = True
    query_maxlen: int | None = None
    attend_to_mask_tokens: bool = True
    checkpoint_format: str = "huggingface"


class PageEncoder:
    """A late-interaction encoder of page images (documents) and texts (queries).

    Use :meth:`lirlab.encoder.ColBERT.load` (or :meth:`from_folder`). The interface is :class:`~lirlab.encoder.ColBERT`'s where analyses need it:
    :attr:`dim`, :meth:`encode_queries`, :meth:`encode_documents`, :meth:`describe`, :meth:`with_config`.
    """

    def __init__(
        self,
        model,
        processor,
        family: str,
        config: PageEncoderConfig | None = None,
        name: str = "",
        device: str | torch.device = "cpu",
    ):
        if family not in FAMILIES:
            raise ValueError(f"family must be one of {sorted(FAMILIES)}, got {family!r}")
        self.family = family
        self.name = name
        self.device = torch.device(device)
        self.model = model.to(self.device).eval()
        self.processor = processor
        self.tokenizer = processor.tokenizer
        self.config = config or PageEncoderConfig()
        self.vocab = self._vocab()
        self.image_token_id = int(self.tokenizer.convert_tokens_to_ids(processor.image_token))
        self.mask_token_id = int(self.tokenizer.convert_tokens_to_ids(processor.query_augmentation_token))
        self.query_marker_id = self.doc_marker_id = None
        if self.config.query_maxlen is not None and self.config.query_maxlen < 0:
            raise ValueError(f"query_maxlen must be >= 0 or None, got {self.config.query_maxlen}")

    # -- loading ------------------------------------------------------------------------------------

    @classmethod
    def from_folder(
        cls,
        folder: str | os.PathLike,
        device: str | torch.device | None = None,
        dtype: torch.dtype | None = None,
        trust_remote_code: bool = False,
        name: str | None = None,
        **overrides,
    ) -> PageEncoder:
        """Load the ColPali, ColQwen2 or ColModernVBert checkpoint in ``folder``.

        :meth:`lirlab.encoder.ColBERT.load` is the usual way in: it takes a hub id too (such as
        ``vidore/colpali-v1.3-hf``, ``vidore/colqwen2-v1.0-hf`` or ``ModernVBERT/colmodernvbert``), finds
        the folder and calls this.

        Parameters
        ----------
        folder : str or Path
            A folder with ``config.json`` of one of :data:`FAMILIES` and the processor's files, as
            transformers' ``save_pretrained`` or Sentence Transformers 6's ``MultiVectorEncoder.save``
            writes it.
        device : str, optional
            Default CUDA when available.
        dtype : torch.dtype, optional
            Model precision (``torch.bfloat16`` on GPU); default fp32.
        trust_remote_code : bool
            Passed to transformers; only when you trust the model's code.
        name : str, optional
            What indexes record; default the folder.
        **overrides
            Any :class:`PageEncoderConfig` field.

        Raises
        ------
        PageModelError
            The folder holds no model of these families, or it cannot be read.
        """
        folder = Path(folder)
        family = page_family(folder)
        if family is None:
            raise PageModelError(
                f"{folder}: not a page-image model (config.json's model_type must be one of {sorted(FAMILIES)})"
            )
        import transformers

        spec = FAMILIES[family]
        try:
            model = getattr(transformers, spec.model_class).from_pretrained(
                folder, dtype=dtype or torch.float32, trust_remote_code=trust_remote_code
            )
            processor = getattr(transformers, spec.processor_class).from_pretrained(
                folder, backend="pil", trust_remote_code=trust_remote_code
            )
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise PageModelError(
                f"{folder}: cannot load the {family} model ({type(e).__name__}: "
                f"{(str(e).strip().splitlines() or [''])[0]})"
            ) from None
        check_pil_image_processor(processor, folder)
        device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        try:
            config = _override(PageEncoderConfig(), overrides)
        except ValueError as e:
            raise PageModelError(str(e)) from None
        return cls(model, processor, family, config, name=name or str(folder), device=device)

    def with_config(self, **overrides) -> PageEncoder:
        """The same weights under other query settings (see :class:`PageEncoderConfig`), not reloaded.

        Takes ColBERT's spelling too: ``query_maxlen=0`` or ``query_augmentation=False`` appends no buffers.
        """
        return type(self)(
            self.model,
            self.processor,
            self.family,
            _override(self.config, overrides),
            name=self.name,
            device=self.device,
        )

    def _vocab(self) -> tuple[str, ...]:
        size = max(len(self.tokenizer), int(self.model.get_input_embeddings().weight.shape[0]))
        by_id = {i: t for t, i in self.tokenizer.get_vocab().items()}
        return tuple(by_id.get(i, f"<{i}>") for i in range(size))

    @property
    def dim(self) -> int:
        return int(self.model.config.embedding_dim)

    def describe(self) -> dict[str, Any]:
        """JSON-able description saved with indexes and benchmark results."""
        return {
            "name": self.name,
            "dim": self.dim,
            "family": self.family,
            "modality": "page",
            **asdict(self.config),
        }

    def __repr__(self) -> str:
        return f"PageEncoder({self.name!r}, family={self.family}, dim={self.dim}, device={self.device})"

    # -- the forward ----------------------------------------------------------------------------------

    def _forward(self, inputs: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """The model's projected vectors at every position, L2-normalized (before the model zeroes the
        positions its attention mask hides, so buffers hidden from attention keep their vectors)."""
        captured: list[torch.Tensor] = []
        hook = self.model.embedding_proj_layer.register_forward_hook(lambda m, i, out: captured.append(out))
        try:
            with torch.inference_mode():
                self.model(**{k: v.to(self.device) for k, v in inputs.items()})
        finally:
            hook.remove()
        return torch.nn.functional.normalize(captured[0].float(), dim=-1).cpu()

    # -- queries --------------------------------------------------------------------------------------

    def _buffers_per_query(self, texts: list[str]) -> list[int]:
        config = self.config
        if not config.query_augmentation or config.query_maxlen == 0:
            return [0] * len(texts)
        if config.query_maxlen is None:
            return [QUERY_BUFFERS] * len(texts)
        bare = self.processor.process_queries(text=texts, suffix="")
        return [max(0, config.query_maxlen - int(n)) for n in bare["attention_mask"].sum(dim=1)]

    def encode_queries(self, queries, batch_size: int = 16, progress: bool = False) -> Encoding:
        """Encode queries (strings, :class:`~lirlab.data.Query` records, a mapping or DataFrame).

        Each query is what the processor's ``process_queries`` makes of it (its prefix, the text,
        the augmentation buffers); every attended position is kept, buffers included.
        """
        records: list[Query] = as_queries(queries)
        texts = [q.text for q in records]
        buffers = self._buffers_per_query(texts) if texts else []
        token = self.processor.query_augmentation_token
        vectors: list[torch.Tensor | None] = [None] * len(texts)
        token_ids: list[torch.Tensor | None] = [None] * len(texts)
        by_count: dict[int, list[int]] = {}
        for i, n in enumerate(buffers):
            by_count.setdefault(n, []).append(i)
        for n, members in by_count.items():
            for start in range(0, len(members), batch_size):
                batch = members[start : start + batch_size]
                inputs = self.processor.process_queries(text=[texts[i] for i in batch], suffix=token * n)
                inputs = {k: v for k, v in inputs.items() if k != "labels"}
                kept = inputs["attention_mask"].bool()
                if not self.config.attend_to_mask_tokens and n:
                    inputs["attention_mask"] = inputs["attention_mask"] & ~buffer_positions(
                        inputs["input_ids"], kept, self.mask_token_id, n
                    )
                out = self._forward(inputs)
                for j, i in enumerate(batch):
                    vectors[i] = out[j][kept[j]]
                    token_ids[i] = inputs["input_ids"][j][kept[j]]
        lengths = torch.tensor([len(t) for t in token_ids], dtype=torch.long)
        return Encoding(
            ids=tuple(q.qid for q in records),
            vectors=torch.cat(vectors) if vectors else torch.zeros(0, self.dim),
            token_ids=torch.cat(token_ids) if token_ids else torch.zeros(0, dtype=torch.long),
            offsets=offsets_from_lengths(lengths),
            vocab=self.vocab,
            kind="query",
            mask_token_id=self.mask_token_id,
            texts=tuple(texts),
        )

    # -- documents ------------------------------------------------------------------------------------

    def encode_documents(self, pages, batch_size: int = 4, progress: bool = True) -> Encoding:
        """Encode page images.

        Parameters
        ----------
        pages
            A sequence of pages or a ``{docno: page}`` mapping, or a :class:`~lirlab.data.Dataset` of
            pages; a page is a :class:`lirlab.page_data.Page`, a PIL image, an image file's path, or a
            ``(pdf_path, page_number)`` pair (pages counted from 1, rendered by pypdfium2). Ids are the
            pages' docnos, the mapping's keys, else ``"0"``, ``"1"``...
        batch_size : int
            Pages per forward pass.
        progress : bool
            Show a progress bar.

        Returns
        -------
        Encoding
            Every attended position of each page's sequence, with :attr:`~Encoding.regions` (and
            :attr:`~Encoding.global_view` for ColModernVBert).
        """
        ids, specs = _page_items(pages)
        parts: list[Encoding] = []
        bar = tqdm(total=len(specs), desc="encode pages", unit="page", disable=not progress)
        for start in range(0, len(specs), batch_size):
            images = [load_page(spec) for spec in specs[start : start + batch_size]]
            parts.append(self._encode_images(ids[start : start + batch_size], images))
            bar.update(len(images))
        bar.close()
        if not parts:
            return Encoding((), torch.zeros(0, self.dim), torch.zeros(0, dtype=torch.long), torch.zeros(1, dtype=torch.long),
                            self.vocab, regions=torch.zeros(0, 4))  # fmt: skip
        return Encoding.concat(parts)

    def _encode_images(self, ids: Sequence[str], images: list) -> Encoding:
        inputs = self.processor.process_images(images=images)
        out = self._forward(inputs)
        kept = inputs["attention_mask"].bool()
        regions, global_view = self.patch_regions(inputs)
        rows = [out[j][kept[j]] for j in range(len(images))]
        lengths = torch.tensor([len(r) for r in rows], dtype=torch.long)
        return Encoding(
            ids=tuple(ids),
            vectors=torch.cat(rows),
            token_ids=inputs["input_ids"][kept],
            offsets=offsets_from_lengths(lengths),
            vocab=self.vocab,
            kind="document",
            mask_token_id=self.mask_token_id,
            regions=regions[kept],
            global_view=None if global_view is None else global_view[kept],
        )

    def patch_regions(self, inputs: Mapping[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Each position's box on its page for a batch the processor made: ``[batch, seq, 4]`` fractions
        (NaN where the position is not an image token), and for ColModernVBert the ``[batch, seq]``
        global-image mask (None for the other families)."""
        input_ids = inputs["input_ids"]
        is_image = input_ids == self.image_token_id
        regions = torch.full((*input_ids.shape, 4), float("nan"))
        global_view = (
            torch.zeros(input_ids.shape, dtype=torch.bool) if self.family == "colmodernvbert" else None
        )
        for b in range(input_ids.shape[0]):
            positions = torch.nonzero(is_image[b]).flatten()
            if self.family == "colpali":
                side = math.isqrt(positions.numel())
                regions[b, positions] = grid_boxes(side, side)
            elif self.family == "colqwen2":
                _, height, width = (int(v) for v in inputs["image_grid_thw"][b])
                merge = int(self.processor.image_processor.merge_size)
                regions[b, positions] = grid_boxes(height // merge, width // merge)
            else:
                boxes, is_global = self._tile_boxes(inputs, b, positions)
                regions[b, positions] = boxes
                global_view[b, positions] = is_global
        return regions, global_view

    def _tile_boxes(self, inputs, b: int, positions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """ColModernVBert: the boxes of item ``b``'s image tokens (tiles row-major, then the global image)."""
        input_ids = inputs["input_ids"][b].tolist()
        per_frame = int(self.processor.image_seq_len)
        side = math.isqrt(per_frame)
        tile_of = {token: divmod(k, 6) for k, token in enumerate(self.processor.row_col_ids)}
        global_id = self.processor.global_image_token_id
        # which frame each image token belongs to: the tile or global tag that precedes its run
        frames: list[tuple[int, int] | None] = []
        current: tuple[int, int] | None = None
        for position, token in enumerate(input_ids):
            if token in tile_of:
                current = tile_of[token]
            elif token == global_id:
                current = None
            elif token == self.image_token_id and (position == 0 or input_ids[position - 1] != token):
                frames.append(current)
        n_rows = max((f[0] + 1 for f in frames if f is not None), default=1)
        n_cols = max((f[1] + 1 for f in frames if f is not None), default=1)
        mask = inputs.get("pixel_attention_mask")
        boxes, is_global = [], []
        for frame_index, frame in enumerate(frames):
            within = grid_boxes(side, side)
            if mask is not None:  # a frame padded to the batch's largest: its picture is the top-left part
                real = mask[b, frame_index].bool()
                extent = torch.tensor([real.any(0).float().mean(), real.any(1).float().mean()])
                within = within / extent.repeat(2)
                within[(within[:, 0] >= 1) | (within[:, 1] >= 1)] = float("nan")
                within = within.clamp(max=1.0)
            if frame is None:
                boxes.append(within)
            else:
                row, col = frame
                offset = torch.tensor([col, row, col, row], dtype=torch.float32)
                boxes.append(
                    (within + offset) / torch.tensor([n_cols, n_rows, n_cols, n_rows], dtype=torch.float32)
                )
            is_global.append(torch.full((per_frame,), frame is None))
        if len(frames) * per_frame != positions.numel():
            raise PageModelError(
                f"{self.name}: {positions.numel()} image tokens do not make {len(frames)} frames of {per_frame}"
            )
        return torch.cat(boxes), torch.cat(is_global)


def buffer_positions(input_ids: torch.Tensor, attended: torch.Tensor, buffer_id: int, n: int) -> torch.Tensor:
    """``[batch, seq]`` bool: the last ``n`` attended occurrences of ``buffer_id`` in each row (the
    augmentation buffers the processor appended after the query text).

    >>> buffer_positions(torch.tensor([[5, 0, 0, 7, 0]]), torch.tensor([[1, 1, 1, 1, 0]]).bool(), 0, 2).tolist()
    [[False, True, True, False, False]]
    """
    hits = (input_ids == buffer_id) & attended
    from_end = hits.flip(1).cumsum(1).flip(1)
    return hits & (from_end <= n)


def grid_boxes(rows: int, cols: int) -> torch.Tensor:
    """``[rows * cols, 4]`` boxes ``(x0, y0, x1, y1)`` of a grid over the unit square, row-major.

    >>> grid_boxes(1, 2).tolist()
    [[0.0, 0.0, 0.5, 1.0], [0.5, 0.0, 1.0, 1.0]]
    """
    r, c = torch.meshgrid(torch.arange(rows), torch.arange(cols), indexing="ij")
    r, c = r.flatten().float(), c.flatten().float()
    return torch.stack([c / cols, r / rows, (c + 1) / cols, (r + 1) / rows], dim=1)


def check_pil_image_processor(processor, where) -> None:
    """Refuse a processor whose image processor is not a PIL one (results would depend on torchvision)."""
    kind = type(processor.image_processor).__name__
    if not kind.endswith("Pil"):
        raise PageModelError(
            f"{where}: lirlab needs the PIL image processor, got {kind}; load the processor with backend='pil'"
        )


def _override(config: PageEncoderConfig, overrides: dict[str, Any]) -> PageEncoderConfig:
    known = set(PageEncoderConfig.__dataclass_fields__) - {"checkpoint_format"}
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise ValueError(f"unknown page encoder setting(s) {unknown}; known: {sorted(known)}")
    return replace(config, **overrides)


def _page_items(pages) -> tuple[list[str], list]:
    """(ids, page specs) of what :meth:`PageEncoder.encode_documents` takes."""
    docs = getattr(pages, "docs", None)
    if docs is not None and not isinstance(pages, Mapping):
        pages = docs
    if isinstance(pages, Mapping):
        return [str(k) for k in pages], list(pages.values())
    if isinstance(pages, str | os.PathLike) or _is_image(pages) or _is_pdf_page(pages):
        pages = [pages]
    pages = list(pages)
    ids = [str(getattr(p, "docno", i)) for i, p in enumerate(pages)]
    return ids, pages


def _is_image(value) -> bool:
    from PIL import Image

    return isinstance(value, Image.Image)


def _is_pdf_page(value) -> bool:
    return isinstance(value, tuple) and len(value) == 2 and isinstance(value[1], int)


def load_page(spec):
    """The RGB PIL image of a page spec (see :meth:`PageEncoder.encode_documents`)."""
    from PIL import Image

    if _is_image(spec):
        return spec.convert("RGB")
    if callable(getattr(spec, "image", None)):
        return spec.image()
    if _is_pdf_page(spec):
        from lirlab.page_data import render_pdf_page

        return render_pdf_page(spec[0], spec[1])
    if isinstance(spec, str | os.PathLike):
        path = Path(spec)
        if path.suffix.lower() == ".pdf":
            raise ValueError(f"{path}: a PDF holds pages; pass ({str(path)!r}, page_number) for one of them")
        try:
            with Image.open(path) as picture:
                return picture.convert("RGB")
        except OSError as e:
            raise ValueError(f"{path}: cannot be read as an image ({e})") from None
    raise ValueError(
        f"a page is a PIL image, an image path, a (pdf, page_number) pair or a Page, got {type(spec).__name__}"
    )
