"""The drop-in's other ways to compute: out of core (``out=``), sharded (``devices=``), and in blocks
on the device when no plan of the whole fits ``memory_limit``.

Each needs one differentiated array argument (``argnums`` an int) and none of ``has_aux``,
``holomorphic``, ``allow_int`` or ``plan=``; the function is then seen as a function of that
argument alone (:func:`of_one`). :func:`chainorder.jacobian` is passed in (``make_jacobian``):
the drop-in imports this module.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Hashable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from .blocks import jacobian_into
from .compressed import compression
from .patterns import PatternTooDense, pattern_coordinates
from .perexample import PerExample, batched_bcoo_function, per_example
from .sharding import mesh_of, sharded_jacobian
from .sparseresult import expected_jacobian, sparse_result_function

__all__ = [
    "ARRAY_TYPES",
    "block_key",
    "blockable",
    "of_one",
    "out_of_core_function",
    "sharded_function",
    "sparse_function",
]

ARRAY_TYPES = {type(jnp.zeros(())), np.ndarray}


def _one_argument_problem(name: str, argnums: Any, unsupported: tuple) -> str | None:
    """Why ``name=`` cannot apply (None when it can); ``unsupported``: has_aux, holomorphic, allow_int, plan."""
    if not _is_int(argnums):
        return f"{name}= takes one differentiated argument (argnums an int), got argnums={argnums!r}"
    return _options_problem(name, unsupported)


def _options_problem(name: str, unsupported: tuple) -> str | None:
    if any(unsupported[:3]) or unsupported[3] is not None:
        return f"{name}= does not combine with has_aux, holomorphic, allow_int or plan="
    return None


def _is_int(number: Any) -> bool:
    return isinstance(number, int) and not isinstance(number, bool)


def _check_one_argument(name: str, argnums: Any, unsupported: tuple) -> None:
    problem = _one_argument_problem(name, argnums, unsupported)
    if problem is not None:
        raise TypeError(problem)


def block_key(args: tuple, kwargs: dict) -> Hashable:
    """The shape and dtype of a call's only argument (None for any other call)."""
    if len(args) != 1 or kwargs or type(args[0]) not in ARRAY_TYPES:
        return None
    return (args[0].shape, str(args[0].dtype))


def blockable(argnums: Any, unsupported: tuple, args: tuple) -> bool:
    """Whether a call no plan fits can run in blocks: one differentiated array argument,
    concrete (not under ``jax.jit``), and none of the unsupported options."""
    if _one_argument_problem("blocks", argnums, unsupported) is not None or not -len(args) <= argnums < len(args):
        return False
    return not isinstance(args[argnums], jax.core.Tracer) and hasattr(args[argnums], "shape")


def of_one(fun: Callable, argnums: int, args: tuple, kwargs: dict) -> Callable:
    """``fun`` as a function of its argument ``argnums`` alone, the others fixed."""

    def of_one_argument(value):
        given = list(args)
        given[argnums] = value
        return fun(*given, **kwargs)

    return of_one_argument


def sharded_function(
    fun: Callable, argnums: Any, unsupported: tuple, devices: Any, options: dict[str, Any], make_jacobian: Callable
) -> Callable:
    """``jacobian(fun, devices=...)``: one block of seeds per device, the result sharded."""
    _check_one_argument("devices", argnums, unsupported)
    mesh = mesh_of(devices)

    @functools.wraps(fun)
    def sharded(*args: Any, **kwargs: Any) -> Any:
        return sharded_jacobian(of_one(fun, argnums, args, kwargs), args[argnums], mesh, options, make_jacobian)

    return sharded


def out_of_core_function(
    fun: Callable, argnums: Any, unsupported: tuple, out: Any, options: dict[str, Any], make_jacobian: Callable
) -> Callable:
    """``jacobian(fun, out=...)``: the call writes the Jacobian into ``out`` block by block."""
    _check_one_argument("out", argnums, unsupported)

    @functools.wraps(fun)
    def jacobian_into_out(*args: Any, **kwargs: Any) -> np.ndarray:
        if not -len(args) <= argnums < len(args):
            raise TypeError(f"argnums {argnums} is out of range for {len(args)} positional arguments")
        return jacobian_into(of_one(fun, argnums, args, kwargs), args[argnums], out, options, make_jacobian)

    return jacobian_into_out


def sparse_function(fun: Callable, argnums: Any, unsupported: tuple, make_jacobian: Callable) -> Callable:
    """``jacobian(fun, sparse=True)``: ``jax.jacobian``'s result as BCOOs in its layout. For a
    batch-separable function of one array whose examples' Jacobians are dense, the blocks of
    per-example plans as a batched BCOO (:mod:`chainorder.backend.perexample`); otherwise by
    compression, one BCOO per block (:mod:`chainorder.backend.sparseresult`); ``argnums`` a tuple
    differentiates the tuple of those arguments, as ``jax.jacobian`` does. Found once per signature
    of a call whose every argument is differentiated."""
    problem = _options_problem("sparse", unsupported)
    single = _is_int(argnums)
    if problem is None and not single and not _all_ints(argnums):
        problem = f"sparse= takes argnums an int or a sequence of ints, got argnums={argnums!r}"
    if problem is not None:
        raise TypeError(problem)
    numbers = (argnums,) if single else tuple(argnums)
    found: dict[Hashable, Any] = {}
    prepared: dict[Hashable, Callable] = {}

    @functools.wraps(fun)
    def sparse_jacobian_of_fun(*args: Any, **kwargs: Any) -> Any:
        for number in numbers:
            if not -len(args) <= number < len(args):
                raise TypeError(f"argnums {number} is out of range for {len(args)} positional arguments")
        positions = [number % len(args) for number in numbers]
        one, x = _of_chosen(fun, positions, single, args, kwargs)
        key = _pattern_key(x, positions, args, kwargs)  # nothing else shapes the pattern
        how = found.get(key) if key is not None else None
        if how is None:  # a new signature: its result's shapes, then the strategy and the program
            expected = expected_jacobian(one, x)  # JAX's errors for invalid uses, before any analysis
            how = _sparse_strategy(one, x, make_jacobian)
            if isinstance(how, PerExample):
                program = batched_bcoo_function(how)
            else:
                program = sparse_result_function(one, x, how, expected)
            if key is None:  # other arguments are part of `one` (or `x` is traced): for this call only
                return program(x)
            found[key], prepared[key] = how, program
        return prepared[key](x)

    sparse_jacobian_of_fun.compression = found  # type: ignore[attr-defined]
    return sparse_jacobian_of_fun


def _all_ints(argnums: Any) -> bool:
    try:
        return len(argnums) > 0 and all(_is_int(number) for number in argnums)
    except TypeError:
        return False


def _of_chosen(fun: Callable, positions: list[int], single: bool, args: tuple, kwargs: dict) -> tuple[Callable, Any]:
    """``fun`` as a function of the argument at ``positions[0]`` (``single``) or of the tuple of those at
    ``positions``, the others fixed; and that argument (or tuple)."""
    if single:
        return of_one(fun, positions[0], args, kwargs), args[positions[0]]

    def of_chosen_arguments(values):
        given = list(args)
        for position, value in zip(positions, values):
            given[position] = value
        return fun(*given, **kwargs)

    return of_chosen_arguments, tuple(args[position] for position in positions)


def _pattern_key(x: Any, positions: list[int], args: tuple, kwargs: dict) -> Hashable:
    """The tree, shapes and dtypes of ``x``, a pytree of arrays, where it is every argument of the
    call (None for any other call)."""
    if kwargs or sorted(positions) != list(range(len(args))):
        return None
    leaves, tree = jax.tree_util.tree_flatten(x)
    if not leaves or any(type(leaf) not in ARRAY_TYPES for leaf in leaves):
        return None
    return tree, tuple((leaf.shape, str(leaf.dtype)) for leaf in leaves)


def _sparse_strategy(one: Callable, x: Any, make_jacobian: Callable) -> Any:
    """Per-example plans where ``x`` is one array, the function is batch-separable and one example's
    Jacobian is dense (its pattern more than half full); compression (its pattern and colors)
    otherwise."""
    split = per_example(one, x, [], make_jacobian) if type(x) in ARRAY_TYPES or isinstance(x, jax.core.Tracer) else None
    if split is not None:
        example = jax.ShapeDtypeStruct(split.found.in_shape[1:], jnp.result_type(x))
        try:
            pattern_coordinates(split.found.per_example, example, jnp.int32(0), budget=_half(split.found))
        except PatternTooDense:
            return split
    return compression(one, x)


def _half(found: Any) -> int:
    """Half the entries of one example's Jacobian: a denser pattern is dense."""
    return max(1, math.prod(found.out_shape) * math.prod(found.in_shape) // found.batch**2 // 2)
