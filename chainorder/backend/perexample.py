"""Per-example plans: a batch-separable function's Jacobian as ``jax.vmap`` of one example's plan.

:func:`chainorder.backend.batching.separate` splits the function into examples; one example's
Jacobian gets its own optimal plan (``chainorder.jacobian`` of the per-example function, mixed
where that pays), and ``jax.vmap`` runs it for all ``B`` examples: ``B`` times the per-example
cost, not the block-diagonal whole's. The blocks then go into ``jax.jacobian``'s dense layout
(:func:`block_diagonal`, zeros between examples) or into a batched BCOO that holds only them
(:func:`batched_bcoo_function`).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.experimental import sparse as jax_sparse

from .batching import Separable, separate

__all__ = ["PerExample", "per_example", "block_diagonal", "batched_bcoo_function"]


class PerExample:
    """A batch-separable function with its per-example Jacobian function and plan.

    Attributes
    ----------
    found : Separable
    plan : Plan
        One example's plan.
    how : str
        How one example's Jacobian is computed (``"plan"``, a compression, ...).
    cost : int
        ``B`` times one example's cost (FMAs).
    """

    def __init__(self, found: Separable, jacobian_of_example: Callable, plan: Any, how: str, cost: int) -> None:
        self.found, self.jacobian_of_example, self.plan, self.how = found, jacobian_of_example, plan, how
        self.cost = found.batch * cost

    def describe(self) -> str:
        how = f"{self.plan.mode} plan" if self.how == "plan" else self.how
        return (
            f"per-example plan: {self.found.batch} x one example's {how} "
            f"({self.cost // self.found.batch:,} FMAs each, {self.cost:,} in all), vmapped"
        )

    def blocks(self, x: Any, *rest: Any) -> Any:
        return self.found.blocks(self.jacobian_of_example, x, *rest)


def per_example(fun: Callable[..., Any], x: Any, rest: list, make_jacobian: Callable) -> PerExample | None:
    """``fun(x, *rest)`` split into examples along ``x``'s axis 0 with one example's plan, or None
    (not batch-separable, or one example's Jacobian runs as ``jax.jacobian`` itself).

    ``make_jacobian`` is :func:`chainorder.jacobian` (passed in: this module sits below it)."""
    found = separate(fun, x, *rest)
    if found is None:
        return None
    jacobian_of_example = make_jacobian(found.per_example)
    example = jax.ShapeDtypeStruct(found.in_shape[1:], jnp.result_type(x))
    jax.eval_shape(jacobian_of_example, example, jnp.int32(0), *rest)
    (signature,) = jacobian_of_example.plans
    plan, cost = jacobian_of_example.plans[signature], jacobian_of_example.costs[signature]
    if plan is None or cost is None:
        return None
    return PerExample(found, jacobian_of_example, plan, jacobian_of_example.strategies[signature], cost)


def block_diagonal(blocks: Any, found: Separable) -> Any:
    """``jax.jacobian``'s dense layout (``out_shape + in_shape``) of the per-example ``blocks``:
    zero between examples."""
    batch = found.batch
    out_rank, in_rank = len(found.out_shape) - 1, len(found.in_shape) - 1
    expanded = jnp.expand_dims(blocks, 1 + out_rank)  # (B, *out', 1, *in')
    eye = jnp.eye(batch, dtype=blocks.dtype).reshape((batch,) + (1,) * out_rank + (batch,) + (1,) * in_rank)
    return jnp.moveaxis(expanded * eye, 0, found.out_axis)


def batched_bcoo_function(split: PerExample) -> Callable[[Any], jax_sparse.BCOO]:
    """``x ->`` the Jacobian in ``jax.jacobian``'s layout (``out_shape + in_shape``) as a batched
    BCOO that holds the blocks alone, prepared once: the blocks jitted (one dispatch when called
    eagerly), the indices on the device.

    Batch dimensions: the output's, up to its batch axis; sparse: the output's dimensions after
    it and the input's batch axis (each stored entry names the example's own); dense: the
    input's other dimensions. With the batch axis first (``jax.vmap``'s), ``data`` is the blocks
    themselves, not a copy; ``indices`` holds ``B`` x (the entries of one example's output).
    """
    found = split.found
    indices = jnp.asarray(_batched_indices(found))
    data = jax.jit(lambda x: _batched_data(split.blocks(x), found))
    return lambda x: _bcoo(data(x), indices, found)


def _bcoo(data: Any, indices: Any, found: Separable) -> jax_sparse.BCOO:
    shape = found.out_shape + found.in_shape
    return jax_sparse.BCOO((data, indices), shape=shape, indices_sorted=True, unique_indices=True)


def _batched_data(blocks: Any, found: Separable) -> Any:
    axis = found.out_axis
    before, after = found.out_shape[:axis], found.out_shape[axis + 1 :]
    data = jnp.moveaxis(blocks, 0, axis) if axis else blocks
    return data.reshape(before + (found.batch, math.prod(after)) + found.in_shape[1:])


def _batched_indices(found: Separable) -> np.ndarray:
    axis, batch = found.out_axis, found.batch
    before, after = found.out_shape[:axis], found.out_shape[axis + 1 :]
    entries = math.prod(after)
    indices = np.empty((batch, entries, len(after) + 1), np.int32)
    indices[:, :, :-1] = np.indices(after).reshape(len(after), entries).T
    indices[:, :, -1] = np.arange(batch)[:, None]
    return indices.reshape((1,) * len(before) + indices.shape)
