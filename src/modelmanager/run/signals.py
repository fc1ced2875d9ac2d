"""SIGTERM handled like Ctrl-C, so a run stopped either way ends recorded (CONVENTIONS).

Python turns SIGINT into :class:`KeyboardInterrupt`; SIGTERM's default kills the
process on the spot, skipping every ``finally``: no final status, no manifest, a
lease held until it expires, a Triton server left running. Inside
:func:`sigterm_as_interrupt` SIGTERM raises ``KeyboardInterrupt`` too, and the
runner records the run ``interrupted``.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

__all__ = ["sigterm_as_interrupt"]


@contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """Within the block, SIGTERM raises ``KeyboardInterrupt`` in the main thread.

    Outside the main thread (where Python cannot install handlers) it changes nothing.
    The previous handler comes back when the block ends.

    >>> with sigterm_as_interrupt():  # doctest: +SKIP
    ...     runner.run(components, inputs)
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt(signal.Signals(signum).name)

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
