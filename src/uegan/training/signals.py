"""A graceful stop for a training run: the first Ctrl-C (or SIGTERM) asks the loop to save a
checkpoint after the current step and stop; a second Ctrl-C quits at once."""

from __future__ import annotations

import logging
import signal
import threading
from types import FrameType, TracebackType

log = logging.getLogger(__name__)

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class StopRequest:
    """While entered (in the main thread), SIGINT and SIGTERM set :attr:`requested` instead of
    ending the process; the previous handlers come back on exit. Elsewhere it does nothing."""

    def __init__(self) -> None:
        self.requested = False
        self.signal: int | None = None     # the first signal that asked for the stop
        self._previous: dict[int, object] = {}

    def _handle(self, signum: int, _frame: FrameType | None) -> None:
        if self.requested and signum == signal.SIGINT:
            signal.signal(signal.SIGINT, signal.default_int_handler)
            raise KeyboardInterrupt
        self.requested = True
        self.signal = self.signal or signum
        log.warning("%s: saving a checkpoint after this step, then stopping (Ctrl-C again to "
                    "quit at once)", signal.Signals(signum).name)

    def __enter__(self) -> "StopRequest":
        if threading.current_thread() is threading.main_thread():
            self._previous = {sig: signal.signal(sig, self._handle) for sig in SIGNALS}
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 traceback: TracebackType | None) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous = {}
