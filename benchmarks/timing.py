"""Side-by-side timing for a shared machine: interleaved runs, wall and CPU time, paired ratios.

Every repetition runs each contender once, in a fresh random order (a contender that always
followed the same one would always find the same cache state). Each run records the wall clock
(``time.perf_counter``) and the process's CPU time (``time.process_time``, all threads): when
other jobs take the core away, the wall time grows but the CPU time does not, so on a shared
machine the CPU-time medians are the steadier measure. A ratio of two contenders is the median
of the per-repetition ratios, so drift between repetitions cancels.
"""

from __future__ import annotations

import resource
import statistics
import time

import numpy as np


def interleave(contenders: dict, reps: int, *, sample: float = 0.0, warmup: int = 3) -> dict:
    """``{name: {"wall": [...], "cpu": [...], "faults": [...]}}``, per call, one per repetition.

    Times are in seconds; ``faults`` counts minor page faults (memory the allocator had to get
    from the system again: the cost of temporaries that outlive their use).

    A contender faster than ``sample`` seconds is called that many times per measurement
    (timer resolution and the clocks' own cost stay negligible).
    """
    number = {}
    for k, fn in contenders.items():
        for _ in range(warmup):  # JIT compilation, caches, allocator state
            fn()
        t = time.perf_counter()
        fn()
        number[k] = max(1, int(sample / max(time.perf_counter() - t, 1e-9)))
    times = {k: {"wall": [], "cpu": [], "faults": []} for k in contenders}
    order = np.random.default_rng(0)
    for _ in range(reps):
        for k in order.permutation(list(contenders)):
            fn, n = contenders[k], number[k]
            f = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
            w, c = time.perf_counter(), time.process_time()
            for _ in range(n):
                fn()
            c, w = time.process_time() - c, time.perf_counter() - w
            f = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - f
            times[k]["wall"].append(w / n)
            times[k]["cpu"].append(c / n)
            times[k]["faults"].append(f / n)
    return times


def median(times: dict, name: str, clock: str = "cpu") -> float:
    return statistics.median(times[name][clock])


def ratio(times: dict, a: str, b: str, clock: str = "cpu") -> float:
    """Median over repetitions of ``a``'s time over ``b``'s in the same repetition."""
    pairs = zip(times[a][clock], times[b][clock], strict=True)
    return statistics.median(x / y for x, y in pairs if y > 0)
