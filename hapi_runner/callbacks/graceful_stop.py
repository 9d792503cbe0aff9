"""GracefulStop: Ctrl-C and SIGTERM end training at the next batch, leaving the checkpoints whole.

A signal only sets a flag; the training loop notices it after the batch in
progress (never halfway through writing a checkpoint, which happens between
batches) and raises :class:`TrainingInterrupted`. The last checkpoint written
at an epoch's end is the safe point a ``--resume`` continues from. A second
Ctrl-C while stopping is not intercepted.
"""

from __future__ import annotations

import signal
import threading
from typing import Callable, Optional, Union

from ..errors import TrainingInterrupted
from .base import RunCallback

EXIT_CODES = {signal.SIGINT: 130, signal.SIGTERM: 143}


class GracefulStop(RunCallback):
    """Turns SIGINT and SIGTERM into a clean stop after the current batch.

    Handlers are installed at ``on_train_begin`` and the previous ones put
    back at ``on_train_end`` (and by :meth:`uninstall`, which the Runner calls
    in a ``finally``). Outside the main thread nothing is installed, as
    Python only delivers signals there.

    Args:
        resume_hint: what to tell the user, e.g. the command that resumes,
            or a function returning it, called when the signal is acted on
            (what is true then depends on the checkpoints written by then).
            Defaults to ``"resume with --resume"``.

    Attributes:
        signum: the signal received, or None.
    """

    def __init__(self, resume_hint: Union[str, Callable[[], str]] = "resume with --resume"):
        super().__init__()
        self.resume_hint = resume_hint
        self.signum: Optional[int] = None
        self._previous = {}

    # -- handlers --------------------------------------------------------
    def install(self) -> None:
        if threading.current_thread() is not threading.main_thread() or self._previous:
            return
        for signum in EXIT_CODES:
            self._previous[signum] = signal.signal(signum, self._handle)

    def uninstall(self) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous = {}

    def _handle(self, signum, frame) -> None:
        self.signum = signum
        # Let a second Ctrl-C through at once, for a user who cannot wait.
        signal.signal(signum, self._previous.get(signum, signal.SIG_DFL))

    # -- hooks -----------------------------------------------------------
    def on_train_begin(self, logs=None):
        super().on_train_begin(logs)
        self.signum = None
        self.install()

    def on_train_end(self, logs=None):
        self.uninstall()

    def on_train_batch_end(self, step, logs=None):
        self._check(f"epoch {self.epoch}, step {step + 1}")

    def on_eval_batch_end(self, step, logs=None):
        self._check(f"the evaluation after epoch {self.epoch}")

    def _check(self, where: str) -> None:
        if self.signum is None:
            return
        name = signal.Signals(self.signum).name
        hint = self.resume_hint() if callable(self.resume_hint) else self.resume_hint
        raise TrainingInterrupted(f"stopped by {name} at {where}; {hint}", self.signum)  # no full stop: the hint may end in a command to copy
