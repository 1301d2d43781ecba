"""Train late-interaction models with lirlab's own encoder: losses, hard negatives, the loop, checkpoints.

Each name is imported on first use (PEP 562), so ``lirlab train --help`` reads the knobs
(:mod:`lirlab.train.knobs`) without loading torch.

>>> from lirlab.train import TRAIN_KNOBS
>>> TRAIN_KNOBS["lr"].default
3e-05
"""

from __future__ import annotations

import sys
import types

from lirlab.lazy import lazy_exports

#: Public name -> the module of this package defining it, imported when the name is first used.
_EXPORTS = {
    "save_pylate": "checkpoints",
    "save_stanford": "checkpoints",
    "TrainingData": "examples",
    "read_teacher_scores": "examples",
    "TRAIN_KNOBS": "knobs",
    "TrainingError": "loop",
    "TrainResult": "loop",
    "checkpoints": "loop",
    "evaluate_encoder": "loop",
    "lr_at": "loop",
    "train": "loop",
    "contrastive_loss": "losses",
    "distillation_loss": "losses",
    "maxsim_scores": "losses",
    "xtr_scores": "losses",
    "TrainableColBERT": "model",
    "prepare_encoder": "model",
    "Negatives": "negatives",
    "mine_negatives": "negatives",
}

__all__ = sorted(_EXPORTS)

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)


class _Package(types.ModuleType):
    """The ``lirlab.train`` module object: keeps ``lirlab.train.checkpoints`` the function.

    Importing the submodule ``lirlab.train.checkpoints`` makes Python set the package attribute of that
    name to the module; the public name is the loop's function that lists a run's checkpoints, so that
    assignment is not stored (``from lirlab.train.checkpoints import ...`` works as usual).
    """

    def __setattr__(self, name, value):
        if name in _EXPORTS and isinstance(value, types.ModuleType):
            return
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package
