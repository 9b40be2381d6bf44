"""From a JAX program to a chain: each stretch between cuts becomes a priced layer.

``prepare(f, vector, others)`` cuts the program (:mod:`chainorder.backend.cuts`), then turns
each stretch into a :class:`~chainorder.Layer` whose ``fn`` maps the flattened state before
to the flattened state after, with dims the state sizes and costs from
:func:`chainorder.backend.opcount.layer_costs` (segments of the same structure are priced
once). Each segment's Jacobian pattern is found too (:func:`chainorder.backend.compressed.sparse_layer_pattern`),
and consecutive sparse segments become one layer while that stays sparse (:func:`sparse_runs`),
so that a plan can preaccumulate the run by its colors; a segment that is an affine map followed by
an elementwise one is marked explicit (:func:`chainorder.backend.explicit.has_explicit_form`). If the
program cannot be cut (it has side effects, or no valid cut), or the analysis fails, the whole function
becomes one opaque segment: still correct, just not split, and the report says why.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import scipy.sparse as scipy_sparse

from ..core.chain import Chain
from ..core.coloring import LayerPattern
from ..core.layer import OP_FAMILIES, Layer
from .compressed import sparse_layer_pattern
from .cuts import Opaque, Program, build_program, compose
from .explicit import has_explicit_form
from .opcount import family_costs, layer_costs, price_out

__all__ = ["Segment", "Traced", "prepare", "sparse_runs", "MAX_RUN_NONZEROS"]

@dataclass
class Segment:
    """A stretch of the program that became one layer."""

    index: int
    in_dim: int
    out_dim: int
    primitives: list[str]
    source: str
    tangent_cost: int = 0
    adjoint_cost: int = 0
    edges: int = 0
    colors: tuple[int, int] | None = None  # a sparse segment's column and row colors
    explicit: bool = False  # an affine map followed by an elementwise one (chainorder.backend.explicit)
    family_costs: dict[str, int] = field(default_factory=dict)  # FMAs of its convolutions, reductions

    def describe(self) -> str:
        counts: dict[str, int] = {}
        for name in self.primitives:
            counts[name] = counts.get(name, 0) + 1
        ops = ", ".join(f"{name}" + (f" x{count}" if count > 1 else "") for name, count in counts.items())
        return ops or "(no active operations)"


def _source(op: Any) -> str:
    try:
        from jax._src import source_info_util

        return source_info_util.summarize(op.equation.source_info)
    except Exception:  # pragma: no cover - private API moved
        return ""


@dataclass
class Traced:
    """Everything ``trace``/``jacobian`` know about ``f`` at one input signature."""

    chain: Chain  # layers without functions; bind() gives the functions
    segments: list[Segment]
    program: Program | None
    flat_function: Callable[..., Any]  # (v, *others) -> flat output
    notes: list[str]
    runs: list[tuple[int, int]] | None = None  # each layer's segments first..last; None: one each

    def functions(self, others: Sequence[Any]) -> list[Callable[[Any], Any]]:
        if self.program is None:
            return [functools.partial(_call_with, self.flat_function, others)]
        env = self.program.constant_env(others)
        functions = [self.program.segment_function(k, env) for k in range(len(self.segments))]
        if self.runs is None:
            return functions
        return [compose(functions[first : last + 1]) for first, last in self.runs]


def _call_with(function: Callable[..., Any], others: Sequence[Any], vector: Any) -> Any:
    return function(vector, *others)


def prepare(flat_function: Callable[..., Any], vector: Any, others: Sequence[Any]) -> Traced:
    avals = [jax.ShapeDtypeStruct(np.shape(a), jnp.result_type(a)) for a in (vector, *others)]
    notes: list[str] = []
    closed = jax.make_jaxpr(flat_function)(*avals)
    try:
        program = build_program(closed)

        def layer_info(k: int) -> Segment:
            start, stop = program.cuts[k], program.cuts[k + 1]
            active_ops = [op for op in program.ops[start:stop] if op.active]
            sources = [s for s in dict.fromkeys(_source(op) for op in active_ops) if s]
            return Segment(
                index=k,
                in_dim=program.size(program.states[k]),
                out_dim=program.size(program.states[k + 1]),
                primitives=[op.equation.primitive.name for op in active_ops],
                source="; ".join(sources[:2]) + (" ..." if len(sources) > 2 else ""),
            )

        segments = [layer_info(k) for k in range(len(program.cuts) - 1)]
        costs = _segment_costs(program, others, segments)  # counted abstractly
        # one segment: its compression is the drop-in's whole-function strategy
        patterns = _segment_patterns(program, others, segments) if len(segments) > 1 else [None]
        for segment, explicit in zip(segments, _per_segment(program, others, segments, has_explicit_form)):
            segment.explicit = explicit
        for k, segment in enumerate(segments):  # counted on the program's own equations
            active = program.ops[program.cuts[k] : program.cuts[k + 1]]
            segment.family_costs = family_costs([op.equation for op in active if op.active])
    except Opaque as reason:
        program = None
        notes.append(f"not split: {reason}; the whole function is one segment")
    except Exception as error:  # noqa: BLE001 - any failure of the analysis falls back, never errors
        program = None
        notes.append(f"not split: the analysis failed ({type(error).__name__}: {error}); one segment")
    if program is None:
        in_dim = int(math.prod(np.shape(vector)))
        out_dim = int(math.prod(jax.eval_shape(flat_function, *avals).shape))
        names = [eqn.primitive.name for eqn in closed.jaxpr.eqns]
        segments = [Segment(0, in_dim, out_dim, names, "the whole function")]
        costs = _whole_function_costs(flat_function, avals)
        patterns = [None]
    dims = [segment.in_dim for segment in segments], [segment.out_dim for segment in segments]
    costs, refused = price_out(*dims, costs)
    for direction, mode, instead in (("adjoint", "reverse", "push tangents"), ("tangent", "forward", "pull adjoints")):
        for index in refused[direction]:
            notes.append(f"segment {index} cannot run in {mode} mode (JAX refuses it); plans {instead} through it")
    for segment, (tangent, adjoint, edges), pattern in zip(segments, costs, patterns):
        segment.tangent_cost, segment.adjoint_cost, segment.edges = tangent, adjoint, edges
        if pattern is not None:
            segment.colors = (pattern.tangent_colors, pattern.adjoint_colors)
    runs = sparse_runs(segments, patterns, set(refused["tangent"]) | set(refused["adjoint"]))
    if len(runs) == 1 < len(segments):  # the whole function: its compression is the drop-in's own strategy
        runs = [(index, index, pattern) for index, pattern in enumerate(patterns)]
    notes.extend(
        f"segments {first}..{last} form one sparse layer ({pattern.tangent_colors} column colors)"
        for first, last, pattern in runs
        if last > first
    )
    layers = [_run_layer(segments[first : last + 1], pattern) for first, last, pattern in runs]
    merged = None if all(first == last for first, last, _ in runs) else [(first, last) for first, last, _ in runs]
    return Traced(Chain(layers), segments, program, flat_function, notes, merged)


def _run_layer(run: list[Segment], pattern: LayerPattern | None) -> Layer:
    """The layer of consecutive segments: their JVP and VJP costs and tapes add up."""
    first, last = run[0], run[-1]
    tangent = sum(segment.tangent_cost for segment in run)
    families = {family: sum(segment.family_costs.get(family, 0) for segment in run) for family in OP_FAMILIES}
    return Layer(
        first.in_dim,
        last.out_dim,
        edges=sum(segment.edges for segment in run),
        tangent_cost=tangent,
        adjoint_cost=sum(segment.adjoint_cost for segment in run),
        **{f"{family}_cost": min(cost, tangent) for family, cost in families.items()},
        name=f"segment {first.index}" if first is last else f"segments {first.index}..{last.index}",
        pattern=pattern,
        explicit=first is last and first.explicit,
    )


#: The most nonzeros a composed pattern of consecutive sparse segments may hold.
MAX_RUN_NONZEROS = 1 << 22


def sparse_runs(
    segments: list[Segment], patterns: list[LayerPattern | None], refusing: set[int]
) -> list[tuple[int, int, LayerPattern | None]]:
    """The layers as runs ``(first, last, pattern)`` of segments. Consecutive sparse segments form one
    layer while their composed Jacobian stays under half dense (and :data:`MAX_RUN_NONZEROS`) and no
    state inside the run is narrower than both its ends: a plan could then preaccumulate the run by
    its colors, where one layer of a thin stencil step at a time saves next to nothing; a narrow
    state inside is a split a plan may want, so it stays a layer boundary. Segments JAX refuses in a
    direction stay alone."""
    runs: list[tuple[int, int, LayerPattern | None]] = []
    index = 0
    while index < len(segments):
        last, composed = index, _matrix(patterns[index]) if index not in refusing else None
        while composed is not None and last + 1 < len(segments) and last + 1 not in refusing:
            following = _matrix(patterns[last + 1])
            if following is None:
                break
            candidate = (following @ composed).tocsr()
            candidate.data[:] = 1  # which entries, not how many paths (their counts would overflow)
            ends = min(segments[index].in_dim, segments[last + 1].out_dim)
            inside = min(segment.out_dim for segment in segments[index : last + 1])
            entries = candidate.shape[0] * candidate.shape[1]
            if inside < ends or 2 * candidate.nnz >= entries or candidate.nnz > MAX_RUN_NONZEROS:
                break
            last, composed = last + 1, candidate
        if last == index:
            runs.append((index, index, patterns[index]))
        else:
            rows, columns = composed.nonzero()
            runs.append((index, last, LayerPattern(rows, columns, composed.shape)))
        index = last + 1
    return runs


def _matrix(pattern: LayerPattern | None):
    """A pattern as a scipy CSR matrix of ones, or None."""
    if pattern is None:
        return None
    ones = np.ones(pattern.nonzeros, dtype=np.int64)
    return scipy_sparse.csr_matrix((ones, (pattern.rows, pattern.columns)), shape=pattern.shape)


def _per_segment(
    program: Program, others: Sequence[Any], segments: list[Segment], measure: Callable, by_constants: bool = False
) -> list:
    """``measure(function, input)`` of every segment (its function and an abstract input), with the
    other arguments abstract; segments of the same structure share theirs (``by_constants``: and of
    the same constants, for a measure that reads their values)."""
    found: list = []

    def probe(*values):
        env = program.constant_env(values)
        known: dict[Any, Any] = {}
        for k, segment in enumerate(segments):
            key = program.fingerprint(k, env if by_constants else None)
            if key not in known:
                vector = jax.ShapeDtypeStruct((segment.in_dim,), _state_dtype(program, k))
                known[key] = measure(program.segment_function(k, env), vector)
            found.append(known[key])
        return 0

    jax.eval_shape(probe, *[jax.ShapeDtypeStruct(np.shape(a), jnp.result_type(a)) for a in others])
    return found


def _segment_costs(program: Program, others: Sequence[Any], segments: list[Segment]) -> list[tuple[int, int, int]]:
    return _per_segment(program, others, segments, layer_costs)


def _segment_patterns(program: Program, others: Sequence[Any], segments: list[Segment]) -> list[LayerPattern | None]:
    """Each segment's Jacobian pattern and colors where it is under half dense (None elsewhere, and
    wherever finding it fails: a segment is then priced dense)."""
    def pattern(function: Callable, vector: jax.ShapeDtypeStruct) -> LayerPattern | None:
        return sparse_layer_pattern(function, vector.shape[0], vector.dtype)

    return _per_segment(program, others, segments, pattern, by_constants=True)


def _whole_function_costs(flat_function: Callable[..., Any], avals: list) -> list:
    """The costs of the whole function as one segment, the other arguments abstract."""
    found: list = []

    def probe(*others):
        found.append(layer_costs(lambda v: flat_function(v, *others), avals[0]))
        return 0

    jax.eval_shape(probe, *avals[1:])
    return found


def _state_dtype(program: Program, index: int) -> Any:
    dtypes = [program.avals[var].dtype for var in program.states[index]]
    return jnp.result_type(*dtypes)
