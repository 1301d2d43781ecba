"""lirlab: a workbench for late-interaction (ColBERT-style) retrieval.

The public API in one import: ``ColBERT`` (encoder), ``FlatIndex`` (exact search), ``explain``
(token alignment), ``evaluate`` (ir_measures) and the ``data`` loaders.

Each name is imported on first use (PEP 562), so ``import lirlab`` and ``lirlab --help`` do not load
torch or pandas.
"""

from __future__ import annotations

import importlib
import sys
import types

__version__ = "0.1.0"

#: Public name -> the module defining it, imported when the name is first used.
_EXPORTS = {
    "ColBERT": "lirlab.encoder",
    "EncoderConfig": "lirlab.encoder",
    "ModelLoadError": "lirlab.encoder",
    "NotColBERTWarning": "lirlab.encoder",
    "Encoding": "lirlab.encoding",
    "FlatIndex": "lirlab.index.flat",
    "evaluate": "lirlab.evaluate",
    "per_query_scores": "lirlab.evaluate",
    "explain": "lirlab.maxsim",
}

__all__ = sorted([*_EXPORTS, "data"])


class _Package(types.ModuleType):
    """The ``lirlab`` module object: keeps ``lirlab.evaluate`` the function.

    Importing the submodule ``lirlab.evaluate`` makes Python set the package attribute ``evaluate`` to
    that module; the public name is the function, so that assignment is not stored (the submodule
    stays in ``sys.modules`` and ``from lirlab.evaluate import ...`` works as usual).
    """

    def __setattr__(self, name, value):
        if name in _EXPORTS and isinstance(value, types.ModuleType):
            return
        super().__setattr__(name, value)


def __getattr__(name: str):
    if name == "data":
        return importlib.import_module("lirlab.data")
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'lirlab' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


sys.modules[__name__].__class__ = _Package

from lirlab import notices as _notices  # noqa: E402  (torch-free; shows lirlab's warnings on one line)

_notices.install_if_interactive()
