"""A differentiable view of a :class:`~lirlab.encoder.ColBERT` encoder, for training.

The encoder's own forward runs under ``torch.inference_mode``; :class:`TrainableColBERT` runs the same
transformer and projection layers with gradients, tokenizing exactly as the encoder does (markers,
``[MASK]`` padding, ``attend_to_mask_tokens``, ``doc_maxlen``, skiplist), so that the vectors it trains
are the vectors lirlab indexes. :func:`prepare_encoder` turns any checkpoint into a trainable one:

* a checkpoint without markers (a plain Hugging Face encoder) gets ``[unused0]``/``[unused1]`` when its
  vocabulary has them (the colbert-ai convention, their pretrained embeddings kept as they are), and
  otherwise two new tokens ``[Q]``/``[D]``, whose input embeddings start as the mean embedding of the
  word pieces of "query" and "document" (so they start distinct and meaningful);
* a checkpoint without a projection gets a bias-free ``hidden -> dim`` linear layer with orthonormal rows
  (QR of a seeded Gaussian matrix, as the workplace MiniLM-ColBERT builder does).

Examples
--------
>>> from lirlab.encoder import ColBERT
>>> encoder = prepare_encoder(ColBERT.load("minilm", device="cpu"), query_maxlen=8)  # doctest: +SKIP
>>> net = TrainableColBERT(encoder)  # doctest: +SKIP
>>> vectors, mask = net.queries(["what do bees eat"])  # doctest: +SKIP
>>> vectors.shape, mask.sum().item()  # doctest: +SKIP
(torch.Size([1, 8, 128]), 8)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import torch

from lirlab.encoder import ColBERT


def orthonormal_projection(hidden: int, dim: int, seed: int = 12345) -> torch.Tensor:
    """A ``[dim, hidden]`` matrix with orthonormal rows (orthonormal columns when ``dim > hidden``).

    The same for the same seed: QR of a seeded Gaussian matrix, signs fixed by the diagonal of R.

    >>> w = orthonormal_projection(6, 3)
    >>> torch.allclose(w @ w.T, torch.eye(3), atol=1e-6)
    True
    >>> torch.allclose(orthonormal_projection(2, 4).T @ orthonormal_projection(2, 4), torch.eye(2), atol=1e-6)
    True
    """
    generator = torch.Generator().manual_seed(seed)
    rows, cols = max(hidden, dim), min(hidden, dim)
    q, r = torch.linalg.qr(torch.randn(rows, cols, generator=generator, dtype=torch.float64))
    q = q * torch.sign(torch.diagonal(r)).unsqueeze(0)
    return (q.T if dim <= hidden else q).contiguous().float()


def _add_marker(encoder: ColBERT, token: str, word: str) -> None:
    tokenizer, model = encoder.tokenizer, encoder.model
    tokenizer.add_tokens([token], special_tokens=True)
    new_id = tokenizer.convert_tokens_to_ids(token)
    embeddings = model.get_input_embeddings()
    if new_id >= embeddings.weight.shape[0]:
        model.resize_token_embeddings(len(tokenizer), mean_resizing=False)
        embeddings = model.get_input_embeddings()
    pieces = tokenizer(word, add_special_tokens=False)["input_ids"]
    with torch.no_grad():
        rows = embeddings.weight[pieces] if pieces else embeddings.weight
        embeddings.weight[new_id] = rows.mean(dim=0)


def prepare_encoder(
    encoder: ColBERT,
    query_maxlen: int | None = None,
    query_augmentation: bool | None = None,
    attend_to_mask_tokens: bool | None = None,
    doc_maxlen: int | None = None,
    dim: int = 128,
    seed: int = 12345,
) -> ColBERT:
    """The encoder to train: markers and projection added when missing, the query/document settings applied.

    Changes ``encoder``'s model and tokenizer in place when markers are added (the returned encoder shares
    them). ``None`` keeps a setting as the checkpoint has it. See the module notes for the initialization.
    """
    vocab = encoder.tokenizer.get_vocab()
    markers = {"query_marker": encoder.config.query_marker, "doc_marker": encoder.config.doc_marker}
    for key, stanford, new, word in (
        ("query_marker", "[unused0]", "[Q]", "query"),
        ("doc_marker", "[unused1]", "[D]", "document"),
    ):
        if markers[key] is None:
            if stanford in vocab:
                markers[key] = stanford
            else:
                if new not in vocab:
                    _add_marker(encoder, new, word)
                markers[key] = new
    projections = list(encoder.projections)
    if not projections:
        hidden = int(encoder.model.config.hidden_size)
        layer = torch.nn.Linear(hidden, dim, bias=False)
        with torch.no_grad():
            layer.weight.copy_(orthonormal_projection(hidden, dim, seed))
        projections = [layer]
    overrides = {
        "query_maxlen": query_maxlen,
        "query_augmentation": query_augmentation,
        "attend_to_mask_tokens": attend_to_mask_tokens,
        "doc_maxlen": doc_maxlen,
    }
    overrides = {k: v for k, v in overrides.items() if v is not None}
    config = replace(encoder.config, **markers)
    built = ColBERT(
        encoder.model, encoder.tokenizer, projections, config, name=encoder.name, device=encoder.device
    )
    return built.with_config(**overrides) if overrides else built


class TrainableColBERT(torch.nn.Module):
    """The encoder's transformer and projections as one module, with a forward that keeps gradients.

    Parameters
    ----------
    encoder : lirlab.encoder.ColBERT
        Its settings (markers, lengths, augmentation, skiplist) decide how texts are tokenized; its model
        and projection layers are the parameters trained (shared, not copied).
    """

    def __init__(self, encoder: ColBERT):
        super().__init__()
        if not encoder.projections or encoder.config.query_marker is None:
            raise ValueError("train a prepared encoder: call lirlab.train.prepare_encoder(encoder) first")
        self.encoder = encoder
        self.model = encoder.model
        self.projections = torch.nn.ModuleList(encoder.projections)

    @property
    def device(self) -> torch.device:
        return self.encoder.device

    def _run(self, rows: list[list[int]], attend: list[list[bool]]) -> torch.Tensor:
        width = max(len(r) for r in rows)
        input_ids = torch.full((len(rows), width), self.encoder.pad_token_id, dtype=torch.long)
        attention = torch.zeros((len(rows), width), dtype=torch.long)
        for i, (row, mask) in enumerate(zip(rows, attend)):
            input_ids[i, : len(row)] = torch.tensor(row)
            attention[i, : len(row)] = torch.tensor(mask, dtype=torch.long)
        hidden = self.model(
            input_ids=input_ids.to(self.device), attention_mask=attention.to(self.device)
        ).last_hidden_state
        for projection in self.projections:
            hidden = projection(hidden)
        return torch.nn.functional.normalize(hidden.float(), dim=-1)

    def queries(self, texts: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """``[n, len, dim]`` vectors and the ``[n, len]`` mask of scored positions (``[MASK]`` included)."""
        enc = self.encoder
        ids, _ = enc._token_ids(list(texts), enc.query_marker_id, enc.config.query_maxlen)
        rows = enc._augment(ids)
        attend = [
            [True] * len(real) + [enc.config.attend_to_mask_tokens] * (len(row) - len(real))
            for real, row in zip(ids, rows)
        ]
        vectors = self._run(rows, attend)
        mask = torch.zeros(vectors.shape[:2], dtype=torch.bool, device=vectors.device)
        for i, row in enumerate(rows):
            mask[i, : len(row)] = True
        return vectors, mask

    def documents(self, texts: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """``[n, len, dim]`` vectors and the ``[n, len]`` mask of kept positions (skiplist and padding dropped)."""
        enc = self.encoder
        rows, _ = enc._token_ids(list(texts), enc.doc_marker_id, enc.config.doc_maxlen)
        vectors = self._run(rows, [[True] * len(r) for r in rows])
        mask = torch.zeros(vectors.shape[:2], dtype=torch.bool)
        for i, row in enumerate(rows):
            mask[i, : len(row)] = ~torch.isin(torch.tensor(row, dtype=torch.long), enc.skip_ids)
        return vectors, mask.to(vectors.device)
