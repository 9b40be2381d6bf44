"""The sparse zoo: issue 12's functions with mostly-zero Jacobians, timed against jacfwd/jacrev.

``chainorder bench --sparse`` prints :func:`format_sparse_table` of :func:`run_sparse`;
``benchmarks/bench_sparse.py`` adds sparsejac, the dense floor, the batched autoencoder and
detection times. Each row: the detected pattern's density, the colors and their lower bound,
and jitted steady-state times (medians of interleaved rounds, float32) of ``jax.jacfwd``,
``jax.jacrev``, ``chainorder.jacobian(f, sparse=True)`` and ``chainorder.jacobian(f)`` (jax's
dense layout: it compresses where that costs fewer FMAs than the chain plan).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from ..backend.compressed import colors_and_density, compression
from ..backend.dropin import jacobian
from .zoo import median_times

__all__ = [
    "pde", "pde_by_convolution", "pde_by_matrix", "sparse_cases", "run_sparse", "format_sparse_table", "SparseResult",
]  # fmt: skip


def pde(size: int) -> tuple[Callable[[Any], Any], Any]:
    """The issue's 2-D residual on a ``size x size`` grid: a 5-point Laplacian plus a cubic term,
    zero on the boundary; and a random grid to evaluate it at."""

    def residual(u):
        inner = u[2:, 1:-1] + u[:-2, 1:-1] + u[1:-1, 2:] + u[1:-1, :-2] - 4 * u[1:-1, 1:-1]
        return jnp.pad(inner + u[1:-1, 1:-1] ** 3, 1)

    return residual, jnp.asarray(np.random.default_rng(size).standard_normal((size, size)), jnp.float32)


def sparse_cases() -> Iterator[tuple[str, Callable[[Any], Any], Any]]:
    """``(name, f, x)`` of the issue's sparse rows."""
    rng = np.random.default_rng(0)
    w1 = jnp.asarray(rng.standard_normal((64, 256)) / 8, jnp.float32)
    w2 = jnp.asarray(rng.standard_normal((256, 64)) / 16, jnp.float32)
    yield "batched MLP (32, 64), 64-256-64", lambda X: jnp.tanh(jnp.tanh(X @ w1) @ w2), jnp.asarray(
        rng.standard_normal((32, 64)), jnp.float32
    )
    yield "x sin(x) + exp(-x^2), 4096", lambda x: x * jnp.sin(x) + jnp.exp(-(x**2)), jnp.asarray(
        rng.standard_normal(4096), jnp.float32
    )
    yield ("PDE residual 40x40", *pde(40))
    yield ("PDE residual 64x64", *pde(64))
    yield ("Laplacian as a 3x3 kernel, 40x40", *pde_by_convolution(40))
    yield ("Laplacian stored dense, 40x40", *pde_by_matrix(40))


def pde_by_convolution(size: int) -> tuple[Callable[[Any], Any], Any]:
    """The residual of :func:`pde` as people also write it: the 5-point Laplacian as a 3 x 3
    convolution kernel (its corners zero), zero padding, plus the cubic term."""
    kernel = jnp.asarray([[0.0, 1.0, 0.0], [1.0, -4.0, 1.0], [0.0, 1.0, 0.0]], jnp.float32)[None, None]

    def residual(u):
        return jax.lax.conv_general_dilated(u[None, None], kernel, (1, 1), "SAME")[0, 0] + u**3

    return residual, pde(size)[1]


def pde_by_matrix(size: int) -> tuple[Callable[[Any], Any], Any]:
    """The same residual with the 2-D Laplacian as a constant dense ``size^2 x size^2`` matrix:
    ``L @ u + u^3`` (a sparse matrix stored dense; its zeros are the Jacobian's)."""
    one_d = np.diag(np.full(size, -2.0)) + np.diag(np.ones(size - 1), 1) + np.diag(np.ones(size - 1), -1)
    identity = np.eye(size)
    laplacian = jnp.asarray(np.kron(identity, one_d) + np.kron(one_d, identity), jnp.float32)
    return lambda u: (laplacian @ u.ravel()).reshape(u.shape) + u**3, pde(size)[1]


@dataclass
class SparseResult:
    name: str
    density: float
    colors: int
    lower_bound: int
    find_seconds: float
    times_ms: dict[str, float]

    @property
    def speedups(self) -> tuple[float, float]:
        """The better of jacfwd/jacrev over ours: sparse, then dense."""
        best = min(self.times_ms["jacfwd"], self.times_ms["jacrev"])
        return best / self.times_ms["sparse"], best / self.times_ms["dense"]


def run_sparse(repeat: int, only: str | None = None, progress: Callable | None = None) -> list[SparseResult]:
    """Time the sparse zoo's rows whose name contains ``only``."""
    chosen = [case for case in sparse_cases() if not only or only in case[0]]
    results = []
    for done, (name, f, x) in enumerate(chosen):
        if progress:
            progress(done, len(chosen), name)
        start = time.perf_counter()
        report = colors_and_density(compression(f, x))
        found = time.perf_counter() - start
        candidates = {
            "jacfwd": jax.jit(jax.jacfwd(f)),
            "jacrev": jax.jit(jax.jacrev(f)),
            "sparse": jax.jit(jacobian(f, sparse=True)),
            "dense": jax.jit(jacobian(f)),
        }
        times = median_times(candidates, x, repeat)
        results.append(
            SparseResult(
                name,
                report["density"],
                report["colors"],
                report["lower_bound"],
                found,
                {key: 1e3 * seconds for key, seconds in times.items()},
            )
        )
    if progress:
        progress(len(chosen), len(chosen), "done")
    return results


def format_sparse_table(results: list[SparseResult], repeat: int) -> str:
    lines = [f"jax {jax.__version__} on {jax.devices()[0].device_kind}, float32, ms (medians of {repeat})"]
    header = (
        f"{'function':<32} {'density':>7} {'colors':>6} {'bound':>5} {'find s':>6} {'jacfwd':>8} {'jacrev':>8} "
        f"{'sparse':>8} {'dense':>8} {'x sparse':>8} {'x dense':>8}"
    )
    lines += [header, "-" * len(header)]
    for result in results:
        times = result.times_ms
        sparse, dense = result.speedups
        lines.append(
            f"{result.name:<32} {result.density:>7.4f} {result.colors:>6} {result.lower_bound:>5} "
            f"{result.find_seconds:>6.2f} {times['jacfwd']:>8.3f} {times['jacrev']:>8.3f} {times['sparse']:>8.3f} "
            f"{times['dense']:>8.3f} {sparse:>7.1f}x {dense:>7.2f}x"
        )
    return "\n".join(lines)
