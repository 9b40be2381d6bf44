"""Sparse Jacobians by compression against jax.jacfwd / jax.jacrev (issue 12's examples).

Run: python benchmarks/bench_sparse.py [--repeat 30]

For each function: the detected pattern's density, the colors (and the lower bound, the densest
row or column), the detection + coloring time, and steady-state times, jitted, medians of
interleaved rounds in random order, float32: jax.jacfwd, jax.jacrev, chainorder.jacobian(f,
sparse=True) (a BCOO), and the same densified (.todense(), jax's layout). "vs best" is the better
of jacfwd/jacrev over ours (BCOO).
"""

from __future__ import annotations

import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np

import chainorder
from chainorder.backend.compressed import colors_and_density, compression
from chainorder.front.zoo import median_times


def cases():
    rng = np.random.default_rng(0)
    w1 = jnp.asarray(rng.standard_normal((64, 256)) / 8, jnp.float32)
    w2 = jnp.asarray(rng.standard_normal((256, 64)) / 16, jnp.float32)
    yield "batched MLP (32, 64), 64-256-64", lambda X: jnp.tanh(jnp.tanh(X @ w1) @ w2), jnp.asarray(
        rng.standard_normal((32, 64)), jnp.float32
    )
    yield "elementwise map, 4096", lambda x: jnp.sin(x) * x, jnp.asarray(rng.standard_normal(4096), jnp.float32)

    def poisson(u):
        interior = u[2:, 1:-1] + u[:-2, 1:-1] + u[1:-1, 2:] + u[1:-1, :-2] - 4 * u[1:-1, 1:-1]
        return jnp.pad(interior + u[1:-1, 1:-1] ** 3, 1)

    yield "nonlinear Poisson residual, 48x48", poisson, jnp.asarray(rng.standard_normal((48, 48)), jnp.float32)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=30)
    args = parser.parse_args()
    print(f"jax {jax.__version__} on {jax.devices()[0].device_kind}, float32, ms (medians of {args.repeat})")
    print(
        f"{'function':<36} {'density':>8} {'colors':>7} {'bound':>6} {'find s':>7} {'jacfwd':>8} {'jacrev':>8} "
        f"{'sparse':>8} {'dense':>8} {'vs best':>8}"
    )
    for name, f, x in cases():
        start = time.perf_counter()
        report = colors_and_density(compression(f, x))
        found = time.perf_counter() - start
        sparse = chainorder.jacobian(f, sparse=True)
        times = median_times(
            {
                "jacfwd": jax.jit(jax.jacfwd(f)),
                "jacrev": jax.jit(jax.jacrev(f)),
                "sparse": jax.jit(sparse),
                "dense": jax.jit(lambda v, sparse=sparse: sparse(v).todense()),
            },
            x,
            args.repeat,
        )
        best = min(times["jacfwd"], times["jacrev"])
        print(
            f"{name:<36} {report['density']:>8.4f} {report['colors']:>7} {report['lower_bound']:>6} {found:>7.2f} "
            + " ".join(f"{1e3 * times[key]:>8.3f}" for key in ("jacfwd", "jacrev", "sparse", "dense"))
            + f" {best / times['sparse']:>7.1f}x"
        )


if __name__ == "__main__":
    main()
