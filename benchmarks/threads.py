"""One thread-count setting for every contender of a benchmark (``--threads N``, default 1).

BLAS, OpenMP and XLA size their thread pools when NumPy, PyTorch and JAX are imported, so a
benchmark imports this module and calls :func:`pin_from_argv` before any of them.
"""

from __future__ import annotations

import os
import sys


def pin_from_argv() -> int:
    """The ``--threads`` value of the command line (1 if absent), applied to the environment.

    0 leaves the libraries' own defaults.
    """
    threads = 1
    for i, arg in enumerate(sys.argv):
        if arg == "--threads" and i + 1 < len(sys.argv):
            threads = int(sys.argv[i + 1])
        elif arg.startswith("--threads="):
            threads = int(arg.split("=", 1)[1])
    if threads > 0:
        for var in ("OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "OMP_NUM_THREADS"):
            os.environ[var] = str(threads)
        os.environ["XLA_FLAGS"] = (
            os.environ.get("XLA_FLAGS", "")
            + f" --xla_cpu_multi_thread_eigen={'true' if threads > 1 else 'false'}"
        )
    return threads
