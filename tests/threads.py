"""Running one function on several threads at once, for the tests of thread safety."""

from __future__ import annotations

import threading
from collections.abc import Callable


def run_threads(target: Callable[[int], object], n: int) -> None:
    """Call ``target(k)`` for k in range(n), each on a thread of its own, and wait for all."""
    threads = [threading.Thread(target=target, args=(k,)) for k in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
