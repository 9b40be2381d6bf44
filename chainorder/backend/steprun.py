"""How each step of a plan runs in JAX: the primal values of one execution, and a function per step kind.

* tangent preaccumulation / tangent step: the JVPs of the layers it goes through at
  their input, of every column of the seed (the identity, or the Jacobian accumulated
  so far, written out first: :func:`materialized`), with the seeds kept last
  (:func:`.seedslast.column_jvps`; ``vmap`` over the columns where a primitive has no
  seeds-last rule); an explicit layer's preaccumulation writes
  ``diag(s'(Wx + b)) W`` (:mod:`.explicit`), a sparse layer's pushes its colors;
* adjoint preaccumulation / adjoint step: ``jax.vjp`` of the layers it goes
  through (its tape lives for this step only), ``vmap`` of the VJP over the rows;
* product: a matmul.

A step with a ``chunk`` pushes (pulls) that many seeds at a time in a loop
(:mod:`.chunks`). :mod:`.execute` runs a whole plan with :data:`EXECUTORS`,
:mod:`.scheduled` a scheduled one.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import jax
import jax.numpy as jnp

from ..core.chain import Chain
from ..core.coloring import LayerPattern
from ..core.steps import Step, StepKind
from .chunks import identity_columns, in_chunks, seed_slice
from .compressed import compressed_preaccumulation, layer_pattern
from .cuts import compose
from .explicit import dense, explicit_jacobian
from .seedslast import column_jvps

#: tangent steps push their seeds last (:mod:`.seedslast`); False: ``vmap`` of ``jax.linearize``'s JVP
SEEDS_LAST = True

__all__ = ["EXECUTORS", "Run", "materialized"]


def materialized(seed: Any) -> Any:
    """``seed``, written out before the JVPs that take its columns read it.

    ``vmap`` over columns moves them to the front and back again. Without this, XLA folds the
    first move into the product that made the seed (a dot with a transposed output) and fuses
    the move back with the layer's last elementwise op: a transposing loop that runs about 8x
    slower than the move alone (pushing a 1024x1024 product through ``sin``: 1.89 ms against 0.25
    ms). Written out, the two moves cancel around the elementwise ops.
    """
    return jax.lax.optimization_barrier(seed)


class Run:
    """The primal values of one execution, and the layer functions to linearize."""

    def __init__(
        self,
        functions: list[Callable[[Any], Any]],
        x: Any,
        values: Mapping[int, Any] | None = None,
        chain: Chain | None = None,
    ) -> None:
        self.functions = functions
        self.chain = chain  # for the colors of layers preaccumulated by compression
        if values is not None:  # computed before: a scheduled step gets the ones it reads, by layer
            self.values = values
            return
        self.values = [x]  # each layer once; its input is where steps starting there linearize
        for function in functions:
            self.values.append(function(self.values[-1]))

    def segment(self, first: int, last: int) -> Callable[[Any], Any]:
        """Layers first..last as one function (a traced program's stretches joined: :func:`.cuts.compose`)."""
        return compose(self.functions[first : last + 1])

    def push(self, first: int, last: int, seed: Any = None, chunk: int | None = None) -> Any:
        """JVPs through layers first..last of every column of ``seed`` (None: the identity),
        ``chunk`` columns at a time (:mod:`.chunks`; None: all at once)."""
        jvps = self._jvps(first, last)
        dtype, size = self.values[first].dtype, self.values[first].shape[0]
        seed = None if seed is None else materialized(dense(seed).astype(dtype))
        count = size if seed is None else seed.shape[1]
        if chunk is None or chunk >= count:
            return jvps(self.identity(size, first) if seed is None else seed)

        def block(start, columns):
            seeds = (
                identity_columns(size, start, columns, dtype) if seed is None else seed_slice(seed, start, columns, 1)
            )
            return jvps(seeds)

        out = self.values[last + 1]
        return in_chunks(block, count, chunk, (out.shape[0], count), out.dtype, axis=1)

    def _jvps(self, first: int, last: int) -> Callable[[Any], Any]:
        """``seeds -> JVPs`` through layers first..last of the columns of ``seeds``."""
        segment, x = self.segment(first, last), self.values[first]
        if SEEDS_LAST:
            return column_jvps(segment, x)
        _, linear = jax.linearize(segment, x)
        return jax.vmap(linear, in_axes=1, out_axes=1)

    def pull(self, first: int, last: int, seed: Any = None, chunk: int | None = None) -> Any:
        """VJPs back through layers first..last of every row of ``seed`` (None: the identity),
        ``chunk`` rows at a time; the tape lives for this step only."""
        _, pullback = jax.vjp(self.segment(first, last), self.values[first])
        vjps = jax.vmap(lambda row: pullback(row)[0])
        dtype, size = self.values[last + 1].dtype, self.values[last + 1].shape[0]
        seed = None if seed is None else dense(seed).astype(dtype)
        count = size if seed is None else seed.shape[0]
        if chunk is None or chunk >= count:
            return vjps(self.identity(size, last + 1) if seed is None else seed)

        def block(start, rows):
            seeds = identity_columns(size, start, rows, dtype).T if seed is None else seed_slice(seed, start, rows, 0)
            return vjps(seeds)

        into = self.values[first]
        return in_chunks(block, count, chunk, (count, into.shape[0]), into.dtype, axis=0)

    def identity(self, size: int, at: int) -> Any:
        return jnp.eye(size, dtype=self.values[at].dtype)

    def pattern(self, layer: int, direction: str) -> LayerPattern | None:
        """The pattern to preaccumulate ``layer`` with by compression in ``direction``, or None
        (a dense layer): the layer's own, or found again from its function (its colors checked)."""
        if self.chain is None:
            return None
        spec = self.chain[layer]
        colors = spec.tangent_colors if direction == "tangent" else spec.adjoint_colors
        if colors is None:
            return None
        pattern = spec.pattern
        if pattern is None:
            pattern = layer_pattern(self.functions[layer], spec.in_dim, self.values[layer].dtype)
        found = None if pattern is None else max(pattern.coloring(direction).count, 1)
        if found is None or found > colors:
            what = "is more than half dense" if found is None else f"needs {found}"
            raise ValueError(
                f"layer {layer}: {direction}_colors is {colors}, but its Jacobian's pattern {what}: "
                "plans priced with those colors cannot run"
            )
        return pattern

    def explicit(self, layer: int) -> Any:
        """``layer``'s Jacobian written directly (an explicit layer), factored
        (:class:`~chainorder.backend.explicit.ExplicitJacobian`: products scale their other operand,
        tangent and adjoint steps write it out), or None where the plan's chain does not
        preaccumulate it so."""
        if self.chain is None or not self.chain[layer].preaccumulates_explicitly:
            return None
        try:
            return explicit_jacobian(self.functions[layer], self.values[layer])
        except ValueError as error:
            raise ValueError(f"layer {layer}: explicit is True, but {error}: plans priced so cannot run") from None


def _tangent_preaccumulation(run: Run, step: Step) -> Any:
    explicit = run.explicit(step.first)
    if explicit is not None:
        return explicit
    pattern = run.pattern(step.first, "tangent")
    if pattern is not None:
        push = lambda seeds: run.push(step.first, step.first, seeds.T).T  # noqa: E731
        return compressed_preaccumulation(push, pattern, "tangent", run.values[step.first].dtype)
    return run.push(step.first, step.first, chunk=step.chunk)


def _adjoint_preaccumulation(run: Run, step: Step) -> Any:
    pattern = run.pattern(step.first, "adjoint")
    if pattern is not None:
        pull = lambda seeds: run.pull(step.first, step.first, seeds)  # noqa: E731
        return compressed_preaccumulation(pull, pattern, "adjoint", run.values[step.first + 1].dtype)
    return run.pull(step.first, step.first, chunk=step.chunk)


def _tangent_step(run: Run, step: Step, earlier: Any) -> Any:
    return run.push(*step.layers_applied, earlier, step.chunk)  # type: ignore[misc]


def _adjoint_step(run: Run, step: Step, later: Any) -> Any:
    return run.pull(*step.layers_applied, later, step.chunk)  # type: ignore[misc]


def _product(run: Run, step: Step, later: Any, earlier: Any) -> Any:
    return later @ earlier  # either may be an ExplicitJacobian, which scales the other


#: How each kind of step runs: ``executor(run, step, *operands)``, operands in
#: :meth:`StepKind.operands` order (later before earlier).
EXECUTORS: dict[StepKind, Callable[..., Any]] = {
    StepKind.TANGENT_PREACCUMULATION: _tangent_preaccumulation,
    StepKind.ADJOINT_PREACCUMULATION: _adjoint_preaccumulation,
    StepKind.TANGENT_STEP: _tangent_step,
    StepKind.ADJOINT_STEP: _adjoint_step,
    StepKind.PRODUCT: _product,
}
