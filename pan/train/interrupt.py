"""Graceful interruption of a training run: SIGINT / SIGTERM ask the loop to stop between two steps and save."""

from __future__ import annotations

import signal
import sys
import threading
from typing import Any

__all__ = ["StopRequest"]


class StopRequest:
    """SIGINT / SIGTERM set a flag (the run stops between two steps and saves); a second SIGINT raises
    KeyboardInterrupt as usual. Handlers are installed only from the main thread."""

    def __init__(self) -> None:
        self.reason: str | None = None
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> StopRequest:
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        self.reason = signal.Signals(signum).name
        print(f"\npan train: {self.reason} received; stopping after this step and saving a checkpoint "
              "(press Ctrl-C again to abort without saving)", file=sys.stderr, flush=True)
        if signum == signal.SIGINT:
            signal.signal(signal.SIGINT, self._previous.get(signal.SIGINT, signal.default_int_handler))

    def __exit__(self, *exc: Any) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
