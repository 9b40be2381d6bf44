"""A pytree of arrays as one flat vector, the one rule every flattened function of the backend uses."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import jax.numpy as jnp
from jax.flatten_util import ravel_pytree

__all__ = ["ravel"]


def ravel(tree: Any) -> tuple[Any, Callable[[Any], Any]]:
    """Like ``jax.flatten_util.ravel_pytree``, but a lone array is only reshaped (no split or
    concatenate ends up in the jaxpr)."""
    if hasattr(tree, "shape") and hasattr(tree, "dtype") and not isinstance(tree, (list, tuple, dict)):
        shape = tuple(tree.shape)
        return jnp.reshape(tree, (-1,)), functools.partial(jnp.reshape, shape=shape)
    return ravel_pytree(tree)
