"""Train late-interaction models with lirlab's own encoder: losses, hard negatives, the loop, checkpoints.

>>> from lirlab.train import TRAIN_KNOBS
>>> TRAIN_KNOBS["lr"].default
3e-05
"""

from lirlab.train.checkpoints import save_pylate, save_stanford
from lirlab.train.examples import TrainingData, read_teacher_scores
from lirlab.train.loop import (
    TRAIN_KNOBS,
    TrainingError,
    TrainResult,
    checkpoints,
    evaluate_encoder,
    lr_at,
    train,
)
from lirlab.train.losses import contrastive_loss, distillation_loss, maxsim_scores
from lirlab.train.model import TrainableColBERT, prepare_encoder
from lirlab.train.negatives import Negatives, mine_negatives

__all__ = [
    "TRAIN_KNOBS",
    "Negatives",
    "TrainResult",
    "TrainableColBERT",
    "TrainingData",
    "TrainingError",
    "checkpoints",
    "contrastive_loss",
    "distillation_loss",
    "evaluate_encoder",
    "lr_at",
    "maxsim_scores",
    "mine_negatives",
    "prepare_encoder",
    "read_teacher_scores",
    "save_pylate",
    "save_stanford",
    "train",
]
