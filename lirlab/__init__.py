"""lirlab: a workbench for late-interaction (ColBERT-style) retrieval.

The public API in one import: ``ColBERT`` (encoder), ``FlatIndex`` (exact search), ``explain``
(token alignment), ``evaluate`` (ir_measures) and the ``data`` loaders.
"""

from lirlab import data
from lirlab.encoder import ColBERT, EncoderConfig, ModelLoadError, NotColBERTWarning
from lirlab.encoding import Encoding
from lirlab.evaluate import evaluate, per_query_scores
from lirlab.index.flat import FlatIndex
from lirlab.maxsim import explain

__version__ = "0.1.0"

__all__ = [
    "ColBERT",
    "EncoderConfig",
    "Encoding",
    "FlatIndex",
    "ModelLoadError",
    "NotColBERTWarning",
    "data",
    "evaluate",
    "explain",
    "per_query_scores",
]
