"""Sparse Jacobians by compression against jax.jacfwd / jax.jacrev and sparsejac (issue 12's table).

Run: python benchmarks/bench_sparse.py [--repeat 30] [--plot sparsity.png]   (sparsejac: pip install sparsejac)

For each function: the detected pattern's density, the colors (and the lower bound, the densest
row or column), the detection + coloring time, and steady-state times, jitted, medians of
interleaved rounds in random order, float32: jax.jacfwd, jax.jacrev, sparsejac (the better of
its jacfwd/jacrev, handed the true pattern: jax.jacobian's nonzeros), chainorder.jacobian(f,
sparse=True) (a BCOO), chainorder.jacobian(f) (the dense result in jax's layout: it compresses
where that costs fewer FMAs than the chain plan) and the floor of a dense result (writing a
fresh array of the Jacobian's shape). "x best": the better of jacfwd/jacrev over ours (sparse,
then dense); "x sj": sparsejac over ours (sparse).

Then the batched autoencoder X (16, 1024), rows 1024-512-16-512-1024, against the better of
jax.vmap(jax.jacfwd(row)) / jax.vmap(jax.jacrev(row)), and the detection and coloring times of
patterns with about 10^5 and 10^6 nonzeros.
"""

from __future__ import annotations

import argparse
import time

import jax
import jax.experimental.sparse
import jax.numpy as jnp
import numpy as np

import chainorder
from chainorder.backend.compressed import colors_and_density, compression
from chainorder.front.sparsezoo import pde, sparse_cases
from chainorder.front.zoo import composed, dense_chain, fresh_array, median_times

try:
    import sparsejac
except ImportError:  # pragma: no cover - optional
    sparsejac = None


def flat(f, shape):
    return lambda v: jnp.ravel(f(v.reshape(shape)))


def sparsejac_function(f, x):
    """sparsejac's better mode, handed the true pattern (jax.jacobian's nonzeros at x)."""
    g = flat(f, x.shape)
    vector = jnp.ravel(x)
    dense = np.asarray(jax.jacobian(g)(vector)) != 0
    pattern = jax.experimental.sparse.BCOO.fromdense(jnp.asarray(dense, jnp.float32))
    return {
        "sparsejac fwd": jax.jit(sparsejac.jacfwd(g, pattern)),
        "sparsejac rev": jax.jit(sparsejac.jacrev(g, pattern)),
    }


def table(repeat: int) -> None:
    print(f"jax {jax.__version__} on {jax.devices()[0].device_kind}, float32, ms (medians of {repeat})")
    header = (
        f"{'function':<32} {'density':>7} {'colors':>6} {'bound':>5} {'find s':>6} {'jacfwd':>8} {'jacrev':>8} "
        f"{'sparsejac':>9} {'sparse':>8} {'dense':>8} {'floor':>7} {'x best':>7} {'dense x':>7} {'x sj':>5}"
    )
    print(header)
    for name, f, x in sparse_cases():
        start = time.perf_counter()
        report = colors_and_density(compression(f, x))
        found = time.perf_counter() - start
        sparse = chainorder.jacobian(f, sparse=True)
        m, n = jax.eval_shape(f, x).size, x.size
        candidates = {
            "jacfwd": jax.jit(jax.jacfwd(f)),
            "jacrev": jax.jit(jax.jacrev(f)),
            "sparse": jax.jit(sparse),
            "dense": jax.jit(chainorder.jacobian(f)),
            "floor": fresh_array((m, n)),
        }
        if sparsejac is not None:
            for key, function in sparsejac_function(f, x).items():
                candidates[key] = lambda v, function=function: function(jnp.ravel(v))
        times = median_times(candidates, x, repeat)
        best = min(times["jacfwd"], times["jacrev"])
        theirs = min(times.get("sparsejac fwd", np.nan), times.get("sparsejac rev", np.nan))
        print(
            f"{name:<32} {report['density']:>7.4f} {report['colors']:>6} {report['lower_bound']:>5} {found:>6.2f} "
            f"{1e3 * times['jacfwd']:>8.3f} {1e3 * times['jacrev']:>8.3f} {1e3 * theirs:>9.3f} "
            f"{1e3 * times['sparse']:>8.3f} {1e3 * times['dense']:>8.3f} {1e3 * times['floor']:>7.3f} "
            f"{best / times['sparse']:>6.1f}x {best / times['dense']:>6.2f}x {theirs / times['sparse']:>4.2f}x"
        )


def autoencoder(repeat: int) -> None:
    functions, row_x = dense_chain([1024, 512, 16, 512, 1024], 0, jnp.float32)

    row = composed(functions)
    X = jnp.stack([row_x * (1 + 0.01 * k) for k in range(16)])
    batched = jax.vmap(row)
    dense = chainorder.jacobian(batched)
    candidates = {
        "vmap(jacfwd(row))": jax.jit(jax.vmap(jax.jacfwd(row))),
        "vmap(jacrev(row))": jax.jit(jax.vmap(jax.jacrev(row))),
        "jacobian(f, sparse=True)": jax.jit(chainorder.jacobian(batched, sparse=True)),
        "jacobian(f)": jax.jit(dense),
        "vmap(chainorder.jacobian(row))": jax.jit(jax.vmap(chainorder.jacobian(row))),
        "floor: a fresh (16, 1024, 1024)": fresh_array((16, 1024, 1024)),
    }
    times = median_times(candidates, X, repeat)
    best = min(times["vmap(jacfwd(row))"], times["vmap(jacrev(row))"])
    print("\nbatched autoencoder X (16, 1024), rows 1024-512-16-512-1024 (f = jax.vmap(row)), ms:")
    print(f"  jacobian(f) computes it by {next(iter(dense.strategies.values()))}")
    for key, seconds in times.items():
        print(f"  {key:<34} {1e3 * seconds:9.3f}   {best / seconds:6.2f}x")


def detection() -> None:
    print("\ndetection (chainorder.sparsity: first call, then the median of 3) and coloring (compression")
    print("less the detection; networkx's greedy coloring) of about 10^5 and 10^6 nonzeros:")
    for name, f, x in (
        ("elementwise, n = 100,000", lambda v: v * jnp.sin(v), jnp.ones(100_000, jnp.float32)),
        ("PDE residual 150x150 (5-point)", *pde(150)),
        ("elementwise, n = 1,000,000", lambda v: v * jnp.sin(v), jnp.ones(1_000_000, jnp.float32)),
        ("PDE residual 450x450 (5-point)", *pde(450)),
    ):
        found = []
        for _ in range(4):
            start = time.perf_counter()
            nonzeros = chainorder.sparsity(f, x).nse
            found.append(time.perf_counter() - start)
        detected = float(np.median(found[1:]))
        start = time.perf_counter()
        report = colors_and_density(compression(f, x))
        colored = time.perf_counter() - start - detected
        print(
            f"  {name:<32} {nonzeros:>9,} nonzeros: detection {found[0]:.3f} s, {detected:.3f} s; "
            f"{report['colors']} colors (bound {report['lower_bound']}) in {colored:.2f} s"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=30)
    parser.add_argument("--plot", default=None, help="write plot_sparsity of the 40x40 PDE residual to this PNG")
    args = parser.parse_args()
    table(args.repeat)
    autoencoder(args.repeat)
    detection()
    if args.plot:
        import matplotlib

        matplotlib.use("Agg")
        f, x = pde(12)
        fig, _ = chainorder.plot_sparsity(f, x)
        fig.savefig(args.plot, dpi=110)
        print(f"wrote {args.plot}")


if __name__ == "__main__":
    main()
