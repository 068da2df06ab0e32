"""One way for long core computations to end early when the user presses Stop.

A long call takes ``should_stop: Callable[[], bool] | None`` and calls ``check_stop`` between
units of work (one Hessian-vector product, one training step); when the callback returns True
it raises ``Stopped``, which the caller (a ui runner) catches to keep what finished and show
that the run was stopped. It subclasses Exception, not KeyboardInterrupt, so ordinary cleanup
(``finally``, context managers) runs and nothing else in the process is interrupted.

>>> check_stop(lambda: False)          # nothing happens
>>> check_stop(None)                   # no callback: never stops
>>> try:
...     check_stop(lambda: True, "Hessian-vector products")
... except Stopped as stop:
...     print(stop)
Stopped by request during Hessian-vector products.
"""
from __future__ import annotations

from typing import Callable

ShouldStop = Callable[[], bool]


class Stopped(Exception):
    """Raised by a long computation when its ``should_stop()`` callback returned True."""


def check_stop(should_stop: ShouldStop | None, what: str = "the computation") -> None:
    """Raise ``Stopped`` if ``should_stop`` is given and returns True; otherwise do nothing."""
    if should_stop is not None and should_stop():
        raise Stopped(f"Stopped by request during {what}.")
