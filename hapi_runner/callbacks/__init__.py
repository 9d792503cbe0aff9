"""hapi_runner's callbacks: subclasses of ``paddle.callbacks.Callback``, one per module.

All of them work in any ``paddle.Model.fit``; train.py uses them by default.
"""

from .base import MODE_TABLE, MonitorCallback, RunCallback
from .checkpoint import ModelCheckpoint
from .curves import Curves
from .early_stopping import EarlyStopping
from .ema import ModelEMA
from .static_export import ExportVerificationError, StaticExport, export_model
from .graceful_stop import GracefulStop, TrainingInterrupted
from .history import History
from .loss_mean import LossMean
from .nan_guard import NanGuard, NonFiniteLossError
from .progress import RunProgress
from .reduce_lr import ReduceLROnPlateau
from .step_lr import OptimizerStepLR
from .visualdl import VisualDLLogger

__all__ = [
    "MODE_TABLE", "MonitorCallback", "RunCallback", "ModelCheckpoint", "Curves", "EarlyStopping",
    "ExportVerificationError", "StaticExport", "export_model", "GracefulStop", "TrainingInterrupted", "History", "LossMean", "NanGuard", "NonFiniteLossError",
    "ModelEMA", "OptimizerStepLR", "ReduceLROnPlateau", "RunProgress", "VisualDLLogger",
]
