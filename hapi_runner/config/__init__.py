"""What a run is asked to do: TrainConfig, its layers (defaults < recipe < --config < flags), recipes and checks.

Paddle-free: importing it never imports Paddle.
"""

from .train_config import TrainConfig

__all__ = ["TrainConfig"]
