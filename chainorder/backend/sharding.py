"""Seeds sharded over devices: each device computes a block of columns (or rows) of the Jacobian.

With ``D`` devices, device ``d`` computes the columns ``c_d`` of ``J`` as the
Jacobian of ``z -> f(x + E_{c_d} z)`` (or the rows ``r_d``, of ``v -> f(v)[r_d]``),
each block with its own optimal plan (:mod:`chainorder.core.blocking`: a block is
a chain narrowed to ``ceil(n / D)`` columns or ``ceil(m / D)`` rows; the orientation
of fewer FMAs wins). The blocks run under ``jax.shard_map`` over a one-axis
``jax.sharding.Mesh``, so the result is a ``jax.Array`` sharded over the devices by
columns or rows (where the device count divides that axis; otherwise, once the
padding of the last block is cut, JAX replicates it), equal to ``jax.jacobian``'s,
and everything composes with ``jax.jit``. JAX places, compiles and runs the blocks: there is no scheduler of
ours here.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from ..core.blocking import narrowed
from ..core.optimize import optimize
from .tracing import analyze_chain

__all__ = ["mesh_of", "sharded_jacobian"]

_AXIS = "seeds"


def mesh_of(devices: Sequence[Any] | Mesh) -> Mesh:
    """A one-axis mesh over ``devices`` (a list of ``jax.Device`` or a ``Mesh``, used as it is
    when it has one axis).

    Raises
    ------
    TypeError, ValueError
        For anything else, or an empty list.
    """
    if isinstance(devices, Mesh):
        if len(devices.axis_names) != 1:
            raise ValueError(f"devices= takes a Mesh with one axis, got axes {devices.axis_names}")
        return devices
    if isinstance(devices, (str, bytes)) or not isinstance(devices, Sequence):
        raise TypeError(f"devices must be a list of jax devices or a jax.sharding.Mesh, got {type(devices).__name__}")
    if not devices or not all(isinstance(device, jax.Device) for device in devices):
        raise ValueError("devices must be a non-empty list of jax devices (for example jax.devices())")
    return Mesh(np.array(devices), (_AXIS,))


def _orientation(flat: Callable, vector: jax.Array, count: int, options: dict[str, Any]) -> str:
    """Columns or rows: the blocks of fewer FMAs in all."""
    chain = analyze_chain(flat, vector, objective="fma").chain
    costs = {}
    for orientation, full in (("columns", chain.in_dim), ("rows", chain.out_dim)):
        size = math.ceil(full / count)
        costs[orientation] = count * optimize(narrowed(chain, orientation, size), **options).cost
    return min(costs, key=costs.get)


def sharded_jacobian(
    fun: Callable[[Any], Any],
    x: Any,
    devices: Sequence[Any] | Mesh,
    options: dict[str, Any],
    make_jacobian: Callable[..., Callable],
) -> jax.Array:
    """``jax.jacobian(fun)(x)`` computed in one block of columns or rows per device.

    Parameters
    ----------
    fun : callable
        One array in, one array out.
    x : array
    devices : list of jax.Device, or jax.sharding.Mesh
    options : dict
        :func:`chainorder.optimize`'s options for the blocks' plans.
    make_jacobian : callable
        :func:`chainorder.jacobian` (passed in: the drop-in imports this module).

    Returns
    -------
    jax.Array
        Of ``jax.jacobian``'s shape and dtype, sharded over the devices.
    """
    mesh = mesh_of(devices)
    count, axis_name = mesh.devices.size, mesh.axis_names[0]
    x = jnp.asarray(x)
    expected = jax.eval_shape(jax.jacobian(fun), x)
    if not isinstance(expected, jax.ShapeDtypeStruct):
        raise TypeError("devices= takes a function of one array that returns one array")
    n = x.size
    m = math.prod(expected.shape) // max(n, 1)

    def flat(v):
        return jnp.ravel(fun(v.reshape(x.shape)))

    vector = jnp.ravel(x)
    orientation = _orientation(flat, vector, count, options)
    full = n if orientation == "columns" else m
    size = math.ceil(full / count)
    index = jnp.minimum(jnp.arange(count * size), full - 1)  # the last device repeats the last index
    if orientation == "columns":
        block = make_jacobian(lambda z, base, part: flat(base.at[part].add(z)), **options)

        def local(part, base):
            return block(jnp.zeros(size, base.dtype), base, part)

        spec = PartitionSpec(None, axis_name)
    else:
        block = make_jacobian(lambda v, part: flat(v)[part], **options)

        def local(part, base):
            return block(base, part)

        spec = PartitionSpec(axis_name, None)
    # check_vma=False: the blocks' own jaxprs (segments re-evaluated by the plan's executors) mix
    # per-device and replicated values in ways shard_map's varying-axes check does not follow
    blocks = jax.shard_map(
        local, mesh=mesh, in_specs=(PartitionSpec(axis_name), PartitionSpec()), out_specs=spec, check_vma=False
    )
    index = jax.device_put(index, NamedSharding(mesh, PartitionSpec(axis_name)))
    return _cut(blocks(index, vector), orientation, m, n, expected.shape, x.ndim, mesh)


def _cut(result, orientation: str, m: int, n: int, shape: tuple[int, ...], in_ndim: int, mesh: Mesh) -> jax.Array:
    """The padded ``m x n`` blocks cut to the Jacobian's shape (``out_shape + in_shape``), kept
    sharded along the input's first axis (columns) or the output's first axis (rows) where the
    device count divides it (JAX shards evenly only; otherwise the cut result is replicated)."""
    result = (result[:, :n] if orientation == "columns" else result[:m]).reshape(shape)
    axis = len(shape) - in_ndim if orientation == "columns" else 0
    has_axis = axis < len(shape) and (orientation == "columns" or len(shape) > in_ndim)
    if not has_axis or shape[axis] % mesh.devices.size:
        return result
    spec = [None] * len(shape)
    spec[axis] = mesh.axis_names[0]
    return jax.lax.with_sharding_constraint(result, NamedSharding(mesh, PartitionSpec(*spec)))
