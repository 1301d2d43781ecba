"""The encoder's declared settings and default model, in a module that imports no torch: the command
line's ``--help`` and the docs read them without loading the encoder (:mod:`lirlab.encoder`)."""

from __future__ import annotations

from lirlab.params import Param

#: The model lirlab loads when none is named.
DEFAULT_MODEL = "answerdotai/answerai-colbert-small-v1"

#: The encoder settings a user tunes, declared once (validation, CLI flags, docs).
ENCODER_PARAMS: dict[str, Param] = {
    "query_maxlen": Param(
        "query_maxlen",
        int,
        None,
        "Query length in tokens, markers included (0: no [MASK] padding, cut at the model's limit).",
        low=0,
        high=8192,
        latency="up",
        aliases="Stanford query_maxlen, PyLate query_length",
    ),
    "doc_maxlen": Param(
        "doc_maxlen",
        int,
        None,
        "Document length in tokens, markers included; longer documents are cut (and counted).",
        low=3,
        high=8192,
        latency="up",
        memory="up",
        aliases="Stanford doc_maxlen, PyLate document_length",
    ),
    "query_augmentation": Param(
        "query_augmentation",
        bool,
        None,
        "Pad queries with [MASK] to query_maxlen (helps checkpoints trained with it, hurts others).",
        aliases="PyLate do_query_expansion",
    ),
    "attend_to_mask_tokens": Param(
        "attend_to_mask_tokens",
        bool,
        None,
        "Whether the encoder's attention sees the [MASK] padding.",
        aliases="Stanford attend_to_mask_tokens",
    ),
}
