"""chainorder.jacobian(f) on plain JAX functions vs jax.jacfwd / jax.jacrev, and tracing speed.

Run: python benchmarks/bench_trace.py [--repeat 30]

Targets: the autoencoder at least 3x faster than the better of jacfwd/jacrev; a model
whose optimum is a pure mode no slower than 0.95x; tracing + optimizing a 100-layer MLP
under 2 s (XLA compilation excluded). All functions jitted, timed in this one run.
"""

from __future__ import annotations

import argparse
import time

import jax
import numpy as np

import chainorder
from chainorder.front.tracedzoo import mlp_function
from chainorder.front.zoo import median_times

MODELS = {
    "autoencoder MLP 1024-512-16-512-1024": [1024, 512, 16, 512, 1024],
    "pure reverse: MLP 1024-512-256-8": [1024, 512, 256, 8],
    "pure forward: MLP 8-256-512-1024": [8, 256, 512, 1024],
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=30)
    args = parser.parse_args()
    print(f"jax {jax.__version__} on {jax.devices()[0].device_kind}, float32, median of {args.repeat}")
    print(f"{'model':<38} {'plan':>8} {'pred':>7} {'jacfwd ms':>10} {'jacrev ms':>10} {'ours ms':>8} {'measured':>9}")
    for name, dims in MODELS.items():
        f, x = mlp_function(dims)
        ours = jax.jit(chainorder.jacobian(f))
        report = chainorder.analyze(f, x)
        times = median_times(
            {"forward": jax.jit(jax.jacfwd(f)), "reverse": jax.jit(jax.jacrev(f)), "ours": ours}, x, args.repeat
        )
        measured = min(times["forward"], times["reverse"]) / times["ours"]
        print(
            f"{name:<38} {report.plan.mode:>8} {report.plan.speedup:>6.2f}x {1e3 * times['forward']:>10.3f} "
            f"{1e3 * times['reverse']:>10.3f} {1e3 * times['ours']:>8.3f} {measured:>8.2f}x"
        )

    dims = [64] + [int(w) for w in np.random.default_rng(5).choice([16, 32, 64, 128], size=100)]
    f, x = mlp_function(dims)
    chainorder.analyze(f, x)  # warm up JAX's own tracing caches
    start = time.perf_counter()
    report = chainorder.analyze(f, x)
    elapsed = time.perf_counter() - start
    print(
        f"\ntrace + optimize a 100-layer MLP: {elapsed:.2f} s "
        f"({len(report.segments)} segments, plan {report.plan.mode}, {report.plan.speedup:.2f}x predicted)"
    )


if __name__ == "__main__":
    main()
