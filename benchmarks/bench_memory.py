"""The memory model against XLA, and the speed of the Pareto DP.

Run: python benchmarks/bench_memory.py [--tables-only] [--q1000]

1. For the chains of ``CHAINS`` and a chain with sparse layers (elementwise and a
   3-point band, preaccumulated by compression) compare ``plan.peak_memory`` (elements x bytes per element) of
   the forward, reverse, least-memory, memory-limited (the middle of the
   front) and FMA-optimal plans with what XLA
   reports for the compiled plan (``memory_analysis()``: argument + output +
   temp bytes), and check that the model ranks the plans as XLA does.
2. Time ``pareto()`` and a memory-limited ``optimize()`` on random chains of 50
   to 500 layers, and 1000 with ``--q1000`` (about 5 minutes more; ``--tables-only``: skipped).
"""

from __future__ import annotations

import random
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

from chainorder import Chain, optimize, pareto
from chainorder.front.zoo import dense_chain, xla_bytes

CHAINS = {
    "long narrow 64 x 16 layers": [64] * 17,
    "autoencoder 1024-512-16-512-1024": [1024, 512, 16, 512, 1024],
    "wide-to-narrow 2048-1024-256-32-4": [2048, 1024, 256, 32, 4],
    "three-plan front 1024-128-8-8-32": [1024, 128, 8, 8, 32],
}


def order(a: float, b: float, tolerance: float = 0.05) -> int:
    """-1, 0 or 1; values within ``tolerance`` (relative) of each other tie."""
    if abs(a - b) <= tolerance * max(a, b):
        return 0
    return -1 if a < b else 1


def same_ranking(model: list[float], measured: list[float]) -> bool:
    """Every pair of plans is ordered alike (ties within 5% on either side count as agreeing)."""
    pairs = [(i, j) for i in range(len(model)) for j in range(i + 1, len(model))]
    return all(
        order(model[i], model[j]) == order(measured[i], measured[j])
        or 0 in (order(model[i], model[j]), order(measured[i], measured[j]))
        for i, j in pairs
    )


def sparse_layers(dtype):
    """A chain with sparse layers (elementwise, a 3-point band) between dense ones: their
    preaccumulations run by compression (:mod:`chainorder.core.coloring`)."""
    rng = np.random.default_rng(5)
    weights = jnp.asarray(rng.standard_normal((256, 2046)) / 45, dtype)
    functions = [
        lambda x: x * jnp.sin(x),
        lambda u: jnp.tanh(u[2:] - 2 * u[1:-1] + u[:-2]),
        lambda v: jnp.tanh(weights @ v),
    ]
    return functions, jnp.asarray(rng.standard_normal(2048), dtype)


def compare(name: str, functions, x, itemsize: int) -> None:
    chain = Chain.from_functions(functions, x)
    front = pareto(chain)
    plans = {
        "forward": optimize(chain, "forward"),
        "reverse": optimize(chain, "reverse"),
        "least memory": optimize(chain, memory_limit=front[0].peak_memory),
        "mid limit": optimize(chain, memory_limit=front[len(front) // 2].peak_memory),
        "FMA-optimal": optimize(chain),
    }
    model, measured = [], []
    for label, plan in plans.items():
        model.append(plan.peak_memory * itemsize)
        measured.append(xla_bytes(plan.jacobian, x))
        print(f"{name:<36} {label:<13} {model[-1] / 1e6:>9.2f} {measured[-1] / 1e6:>8.2f} {plan.cost:>15,}")
    agree = same_ranking(model, measured)
    print(f"{'':<36} ranking {'agrees with' if agree else 'DIFFERS from'} XLA's\n")


def main() -> None:
    dtype = jnp.float32
    itemsize = jnp.dtype(dtype).itemsize
    print(f"jax {jax.__version__} on {jax.devices()[0].device_kind}, {jnp.dtype(dtype).name}")
    print(f"{'chain':<36} {'plan':<13} {'model MB':>9} {'XLA MB':>8} {'cost (FMAs)':>15}")
    for seed, (name, dims) in enumerate(CHAINS.items()):
        compare(name, *dense_chain(dims, seed, dtype), itemsize)
    compare("sparse layers 2048-2048-2046-256", *sparse_layers(dtype), itemsize)
    if "--tables-only" in sys.argv:
        return

    print(f"{'q':>5} {'pareto() s':>11} {'front size':>11} {'memory-limited optimize() s':>28}")
    for q in (50, 200, 300, 500) + ((1000,) if "--q1000" in sys.argv else ()):
        rng = random.Random(q)
        chain = Chain.from_dims([rng.randint(1, 1000) for _ in range(q + 1)])
        start = time.perf_counter()
        front = pareto(chain)
        elapsed = time.perf_counter() - start
        limit = front[len(front) // 2].peak_memory
        start = time.perf_counter()
        optimize(chain, memory_limit=limit)
        limited = time.perf_counter() - start
        print(f"{q:>5} {elapsed:>11.2f} {len(front):>11} {limited:>28.2f}")


if __name__ == "__main__":
    main()
