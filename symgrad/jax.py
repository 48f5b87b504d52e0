"""Running symgrad's JAX target on several devices: batch arrays sharded over a 1-D mesh.

Functions compiled with ``backend="jax"`` are jitted JAX code, so they follow their inputs'
shardings: give them a batch array sharded along its batch axis (:func:`shard`) and XLA splits
every elementwise statement across the devices; per-sample outputs come back sharded the same
way, and ``reduce="mean"`` becomes a per-device partial sum plus one cross-device reduction.
The same code runs on CPU devices (``XLA_FLAGS=--xla_force_host_platform_device_count=4``,
set before JAX is imported), GPUs or TPUs.

>>> import numpy as np, sympy as sp
>>> from symgrad import value_and_grad
>>> x, w = sp.symbols("x w")
>>> f = value_and_grad((w * x - 1) ** 2, w, [x, w], backend="jax", reduce="mean")
>>> xs = shard(np.linspace(0, 1, 8, dtype=np.float32))
>>> value, slope = f(xs, np.float32(2.0))
>>> round(float(value), 4), round(float(slope), 4)
(0.4286, 0.4286)
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .codegen.jax import import_jax
from .errors import InputTypeError, OptionError, ShapeError
from .inputs import describe

__all__ = ["mesh", "shard"]

AXIS = "batch"  # the name of the mesh axis that batch arrays are split along


def mesh(devices: Any = None) -> Any:
    """A 1-D ``jax.sharding.Mesh`` over ``devices`` (default: every device JAX sees).

    >>> mesh().axis_names
    ('batch',)
    """
    jax = import_jax()
    if devices is None:
        devices = jax.devices()
    elif not (
        isinstance(devices, (list, tuple))
        and devices
        and all(isinstance(d, jax.Device) for d in devices)
    ):
        raise InputTypeError(
            f"devices must be a non-empty list of JAX devices (e.g. jax.devices()[:2]), got "
            f"{describe(devices)}"
        )
    return jax.sharding.Mesh(np.array(devices), (AXIS,))


def shard(array: Any, axis: int = -1, devices: Any = None) -> Any:
    """``array`` placed on ``devices``, split along ``axis`` (a ``NamedSharding``).

    Args:
        array: a NumPy or JAX array (a batch: symgrad's batch axes come last, so the default
            ``axis=-1`` splits the samples; a vector argument's first axis stays whole).
        axis: the axis to split; its length must be a multiple of the number of devices.
        devices: the devices (default: all of ``jax.devices()``).

    Returns:
        A ``jax.Array`` whose shards live on the devices.

    Raises:
        ShapeError: the axis does not divide evenly over the devices.

    >>> shard(np.zeros((2, 4), np.float32)).shape
    (2, 4)
    """
    jax = import_jax()
    m = mesh(devices)
    kind = getattr(getattr(array, "dtype", None), "kind", None)
    if not hasattr(array, "shape") or kind not in tuple("biufc"):
        raise InputTypeError(f"shard needs a numeric NumPy or JAX array, got {describe(array)}")
    ndim = np.ndim(array)
    if ndim == 0:
        raise ShapeError("shard needs an array with a batch axis, got a scalar")
    if isinstance(axis, bool) or not isinstance(axis, int) or not -ndim <= axis < ndim:
        raise OptionError(f"axis must be an integer in [-{ndim}, {ndim}), got {describe(axis)}")
    axis = axis % ndim
    n = m.devices.size
    length = np.shape(array)[axis]
    if length % n:
        raise ShapeError(
            f"axis {axis} has {length} entries, not a multiple of the {n} devices; pad the batch "
            f"to a multiple of {n} (or pass fewer devices)"
        )
    spec = jax.sharding.PartitionSpec(*[AXIS if k == axis else None for k in range(ndim)])
    return jax.device_put(array, jax.sharding.NamedSharding(m, spec))
