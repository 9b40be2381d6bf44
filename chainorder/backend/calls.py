"""A drop-in call's arguments: the signature that keys its analysis, the options of the transform,
and the function flattened to ``(vector, *leaves) -> flat output`` that the plans differentiate."""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from .ravel import ravel

__all__ = ["Signature", "CallOptions", "FlatCall", "reverse_else_forward", "jacobian_blocks"]


@dataclass(frozen=True)
class Signature:
    """A call's arguments: the pytree, which leaves are traced arrays (their avals), and the
    hashable values of the other leaves. Equal signatures share one analysis and program."""

    tree: Any
    dynamic: tuple[int, ...]
    avals: tuple[tuple[tuple[int, ...], Any, bool], ...]
    static: tuple[tuple[int, type, Hashable], ...]

    @classmethod
    def of(cls, leaves: list, tree: Any, numbers: tuple[int, ...]) -> Signature | None:
        """The signature of the call whose ``(args, kwargs)`` flatten to ``leaves, tree``;
        None when a leaf is neither an array nor hashable."""
        arguments = tree.children()[0].children()
        owners = [index for index, argument in enumerate(arguments) for _ in range(argument.num_leaves)]
        owners += [-1] * (len(leaves) - len(owners))
        differentiated = {number % len(arguments) for number in numbers} if arguments else set()
        dynamic, avals, static = [], [], []
        for position, (leaf, owner) in enumerate(zip(leaves, owners)):
            if (hasattr(leaf, "shape") and hasattr(leaf, "dtype")) or owner in differentiated:
                dynamic.append(position)
                avals.append((tuple(np.shape(leaf)), jnp.result_type(leaf), bool(getattr(leaf, "weak_type", False))))
            elif isinstance(leaf, Hashable):
                static.append((position, type(leaf), leaf))
            else:
                return None
        return cls(tree, tuple(dynamic), tuple(avals), tuple(static))

    def shapes(self) -> list[jax.ShapeDtypeStruct]:
        return [jax.ShapeDtypeStruct(shape, dtype, weak_type=weak) for shape, dtype, weak in self.avals]

    def rebuild(self, dynamic_leaves: Sequence[Any]) -> tuple[tuple, dict]:
        leaves: list[Any] = [None] * (len(self.dynamic) + len(self.static))
        for position, value in zip(self.dynamic, dynamic_leaves):
            leaves[position] = value
        for position, _, value in self.static:
            leaves[position] = value
        return jax.tree_util.tree_unflatten(self.tree, leaves)


@dataclass(frozen=True)
class CallOptions:
    fun: Callable[..., Any]
    numbers: tuple[int, ...]
    single: bool  # argnums was an int: the result is not wrapped in a tuple
    has_aux: bool
    holomorphic: bool
    allow_int: bool


class FlatCall:
    """The function as ``(vector, *leaves) -> flat output``: ``vector`` the differentiated
    arguments flattened, ``leaves`` the call's array leaves (held constant)."""

    def __init__(self, options: CallOptions, signature: Signature) -> None:
        self.options, self.signature = options, signature

    def chosen(self, leaves: Sequence[Any]) -> Any:
        args, _ = self.signature.rebuild(leaves)
        picked = [args[number % len(args)] for number in self.options.numbers]
        return picked[0] if self.options.single else tuple(picked)

    def vector(self, leaves: Sequence[Any]) -> Any:
        return ravel(self.chosen(leaves))[0]

    def call(self, vector: Any, leaves: Sequence[Any]) -> Any:
        """The function's output (and aux) with the differentiated arguments taken from ``vector``."""
        args, kwargs = self.signature.rebuild(leaves)
        values = ravel(self.chosen(leaves))[1](vector)
        args = list(args)
        for number, value in zip(self.options.numbers, (values,) if self.options.single else values):
            args[number % len(args)] = value
        return self.options.fun(*args, **kwargs)

    def __call__(self, vector: Any, *leaves: Any) -> Any:
        output = self.call(vector, leaves)
        output = output[0] if self.options.has_aux else output
        return ravel(jax.tree_util.tree_map(jnp.asarray, output))[0]


def reverse_else_forward(
    shaped: Callable[[Callable[..., Any]], Any], reverse: Callable[..., Any], forward: Callable[..., Any]
) -> Any:
    """``shaped(reverse)``: ``jax.jacobian``'s result as ShapeDtypeStructs, JAX raising its own errors
    for invalid uses (a TypeError: input and output dtypes, argnums, callables). Where JAX refuses
    reverse mode through the function (another error), ``shaped(forward)``, ``jax.jacfwd``'s."""
    try:
        return shaped(reverse)
    except TypeError:
        raise
    except Exception as error:  # noqa: BLE001 - perhaps only reverse mode is refused
        try:
            return shaped(forward)
        except Exception:  # noqa: BLE001 - an invalid use: JAX's own error
            raise error from None


def jacobian_blocks(
    leaves: list[Any], in_shapes: list[tuple[int, ...]]
) -> Iterator[tuple[Any, tuple, tuple, int, int]]:
    """Each block of ``jax.jacobian``'s result (its ``leaves``: output leaves by input leaves, each
    shaped ``out_shape + in_shape``) as ``(leaf, output shape, input shape, first row, first column)``
    in the flattened ``(m, n)`` Jacobian (outputs and inputs flattened and concatenated)."""
    row = 0
    for start in range(0, len(leaves), len(in_shapes)):
        group = leaves[start : start + len(in_shapes)]
        out_shape = tuple(group[0].shape[: len(group[0].shape) - len(in_shapes[0])])
        column = 0
        for leaf, in_shape in zip(group, in_shapes):
            yield leaf, out_shape, tuple(in_shape), row, column
            column += math.prod(in_shape)
        row += math.prod(out_shape)
