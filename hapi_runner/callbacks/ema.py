"""ModelEMA: an exponential moving average of the network's weights, evaluated, kept as best and exported.

After every optimizer step (with gradient accumulation, only after the
batches that stepped it; see :mod:`hapi_runner.training.accumulation`) every float
tensor of the network's ``state_dict`` (parameters and buffers such as
BatchNorm's running statistics) updates its shadow copy:

    shadow = d_t * shadow + (1 - d_t) * weight,   d_t = min(decay, (1 + t) / (10 + t))

with ``t`` the number of updates before this one (the usual warm-up: early
averages forget the random start quickly). Integer tensors are copied.

The network holds the EMA weights whenever something other than training
looks at it: from ``on_eval_begin`` until the next training batch, and
after ``on_train_end``. So evaluation metrics, the ``best`` choice, an
export made from ``on_eval_end`` or ``on_train_end``, and whatever uses the
network after ``fit`` all see the EMA weights, whatever the callbacks'
order, as long as this callback comes *before* them in the list (its
``on_train_end`` must run before an export's). The training weights are
put back at ``on_epoch_begin``, ``on_train_batch_begin`` and
``on_train_begin``; :meth:`training_state_dict` gives them at any time,
which is what a checkpoint must save as the network's weights.

The shadow tensors are not JSON: :meth:`state_dict` holds the decay and the
update count, :meth:`arrays` and :meth:`load_arrays` the shadow weights,
which a checkpoint writes to a file of their own (:data:`ARRAYS_FILE`).
"""

from __future__ import annotations

import contextlib
from typing import Any, Dict, Iterator, Optional

import numpy as np
import paddle

from ..paddle_compat import accumulate_of
from ..training.accumulation import optimizer_stepped
from ..runfolder.layout import EMA_FILE
from ..config.checks import check_bool, check_number
from ..errors import HapiRunnerError
from .base import RunCallback

# The file, beside model.pdparams in a checkpoint folder, that holds the shadow weights.
ARRAYS_FILE = EMA_FILE


def ema_decay(decay: float, updates: int, warmup: bool = True) -> float:
    """The decay of update number ``updates`` (0-based): ``min(decay, (1 + t) / (10 + t))`` with warm-up."""
    return min(decay, (1.0 + updates) / (10.0 + updates)) if warmup else decay


def _is_float(tensor) -> bool:
    return bool(paddle.is_floating_point(tensor))


class ModelEMA(RunCallback):
    """Keeps the EMA of the network's parameters and buffers and swaps it in for evaluation.

    Args:
        decay: the decay, in ``(0, 1)``; 0.9998 is timm's usual for long runs.
        warmup: ramp the decay up as ``(1 + t) / (10 + t)``. Defaults to True.

    Attributes:
        updates: optimizer steps averaged so far.
        shadow: ``{name: float32 Tensor}`` for float tensors, a copy for the others; None before training.
        swapped_in: True while the network holds the EMA weights.
    """

    def __init__(self, decay: float, warmup: bool = True):
        super().__init__()
        self.decay = float(check_number("ema decay", decay, 0.0, 1.0, low_open=True, high_open=True))
        self.warmup = check_bool("ema warmup", warmup)
        self.updates = 0
        self.shadow: Optional[Dict[str, Any]] = None
        self._backup: Optional[Dict[str, Any]] = None

    @property
    def swapped_in(self) -> bool:
        return self._backup is not None

    def _network(self):
        return self.model.network

    # -- arithmetic --------------------------------------------------------
    def start(self, network) -> None:
        """Makes the shadow a copy of ``network``'s weights (a fresh run)."""
        self.shadow = {name: (t.astype("float32") if _is_float(t) else t).detach().clone()
                       for name, t in network.state_dict().items()}

    def update(self, network) -> None:
        """One EMA step towards ``network``'s current (training) weights."""
        if self.shadow is None:
            self.start(network)
        d = ema_decay(self.decay, self.updates, self.warmup)
        with paddle.no_grad():
            for name, tensor in network.state_dict().items():
                if _is_float(tensor):
                    self.shadow[name] = self.shadow[name] * d + tensor.astype("float32") * (1.0 - d)
                else:
                    self.shadow[name] = tensor.detach().clone()
        self.updates += 1

    # -- swapping ------------------------------------------------------------
    def swap_in(self) -> None:
        """Puts the EMA weights into the network, keeping the training weights aside."""
        if self.swapped_in or self.shadow is None:
            return
        state = self._network().state_dict()
        self._check_names(state)
        self._backup = {name: t.detach().clone() for name, t in state.items()}
        with paddle.no_grad():
            for name, tensor in state.items():
                tensor.set_value(self.shadow[name].astype(tensor.dtype))

    def swap_out(self) -> None:
        """Puts the training weights back."""
        if not self.swapped_in:
            return
        with paddle.no_grad():
            for name, tensor in self._network().state_dict().items():
                tensor.set_value(self._backup[name])
        self._backup = None

    @contextlib.contextmanager
    def applied(self) -> Iterator[None]:
        """The EMA weights in the network within the block, the previous ones after it."""
        was_in = self.swapped_in
        self.swap_in()
        try:
            yield
        finally:
            if not was_in:
                self.swap_out()

    def training_state_dict(self) -> Dict[str, Any]:
        """The training weights by name, wherever they are now: what a checkpoint saves as the network's."""
        return dict(self._backup) if self.swapped_in else self._network().state_dict()

    def _check_names(self, state) -> None:
        if set(state) != set(self.shadow):
            missing = sorted(set(state) ^ set(self.shadow))[:5]
            raise HapiRunnerError(f"the EMA weights do not match the network (differing names: {', '.join(missing)}); "
                                  f"resume with the network the run was started with.")

    # -- state -------------------------------------------------------------
    def state_dict(self) -> Dict[str, Any]:
        return {"decay": self.decay, "warmup": self.warmup, "updates": self.updates, "file": ARRAYS_FILE}

    def load_state_dict(self, state: Dict[str, Any]) -> bool:
        """Restores the update count (the shadow weights come from :meth:`load_arrays`)."""
        super().load_state_dict(state)
        self.updates = int(state.get("updates", 0))
        return True

    def reset(self) -> None:
        """A fresh average: no updates, no shadow (``on_train_begin`` starts it from the network)."""
        self.updates = 0
        self.shadow = None

    def arrays(self) -> Dict[str, np.ndarray]:
        """The shadow weights as numpy arrays (for ``paddle.save`` into :data:`ARRAYS_FILE`); empty before training."""
        return {name: t.numpy() for name, t in (self.shadow or {}).items()}

    def load_arrays(self, arrays: Dict[str, Any]) -> None:
        """Restores :meth:`arrays` (numpy arrays or Tensors, as ``paddle.load`` returns them); marks the callback restored."""
        self.shadow = {name: paddle.to_tensor(np.asarray(v.numpy() if hasattr(v, "numpy") else v))
                       for name, v in arrays.items()} or None
        self.restored = True

    # -- hooks -------------------------------------------------------------
    def on_train_begin(self, logs=None):
        self.swap_out()
        super().on_train_begin(logs)  # a fit that was not restored averages afresh
        if self.shadow is None:
            self.start(self._network())
        else:
            self._check_names(self._network().state_dict())

    def on_epoch_begin(self, epoch, logs=None):
        self.swap_out()
        super().on_epoch_begin(epoch, logs)

    def on_train_batch_begin(self, step, logs=None):
        self.swap_out()

    def on_train_batch_end(self, step, logs=None):
        if optimizer_stepped(step, accumulate_of(self.model), (self.params or {}).get("steps")):
            self.update(self._network())

    def on_eval_begin(self, logs=None):
        self.swap_in()

    def on_train_end(self, logs=None):
        self.swap_in()
