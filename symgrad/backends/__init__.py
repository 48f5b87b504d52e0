"""Native kernels for compiled functions (layer 3: imports only errors, graph and inputs).

A backend here turns a flat list of output expressions over a flat list of input symbols into
a *kernel*: a callable that evaluates every output for a whole batch of float64 inputs.
:func:`symgrad.lambdify` (layer 4) keeps argument handling, output nesting and the pure-Python
scalar fast path, and hands the batch work to a kernel when ``backend="c"`` (or ``"auto"``)
is chosen.

>>> from symgrad.backends import c_available
>>> isinstance(c_available(), bool)
True
"""

from .c import CKernel, build_c_kernel, c_available

__all__ = ["CKernel", "build_c_kernel", "c_available"]
