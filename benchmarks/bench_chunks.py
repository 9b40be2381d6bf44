"""Chunked steps (issue 14): time and memory against a budget, for chains with wide inner layers.

Run: python benchmarks/bench_chunks.py [--repeat 7]

For each chain (dense tanh layers, float32) and budgets from the least peak of any unchunked plan
down to the least peak with chunks: the plan ``optimize(chain, memory_limit=budget)`` picks and its
chunks (seeds per loop iteration), the model's peak against XLA's bytes for the compiled plan
(argument + output + temp, ``memory_analysis()``), and its time (median of interleaved jitted
runs, the unchunked FMA-optimal plan among them) over the unchunked plan's.
"""

from __future__ import annotations

import argparse

import jax
import jax.numpy as jnp

from chainorder import Chain, optimize, pareto
from chainorder.front.zoo import dense_chain, median_times, xla_bytes

CHAINS = {
    "wide middle 256-256-8192-256": [256, 256, 8192, 256],
    "two wide 128-4096-4096-128": [128, 4096, 4096, 128],
    "mixed 128-512-4096-512-64-2048-256-32": [128, 512, 4096, 512, 64, 2048, 256, 32],
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    print(f"jax {jax.__version__} on {jax.devices()[0].device_kind}, float32, medians of {args.repeat}")
    header = (
        f"{'budget (elements)':>18} {'plan cost':>14} {'chunks':>14} {'model MB':>9} {'XLA MB':>8} "
        f"{'ms':>8} {'x time':>7}"
    )
    for seed, (name, dims) in enumerate(CHAINS.items()):
        functions, x = dense_chain(dims, seed, jnp.float32)
        chain = Chain.from_functions(functions, x)
        unchunked = optimize(chain)
        least_whole = pareto(chain)[0].peak_memory
        least = pareto(chain, chunked=True)[0].peak_memory
        print(f"\n{name}: FMA-optimal peak {unchunked.peak_memory:,}, ", end="")
        print(f"least unchunked {least_whole:,}, least chunked {least:,}")
        print(header)
        budgets = sorted(
            {least_whole, *(int(least + f * (least_whole - least)) for f in (0.5, 0.25, 0.0))}, reverse=True
        )
        plans = {"unchunked": unchunked} | {budget: optimize(chain, memory_limit=budget) for budget in budgets}
        times = median_times({key: jax.jit(plan.jacobian) for key, plan in plans.items()}, x, args.repeat)
        for key, plan in plans.items():
            chunks = ",".join(str(step.chunk) for step in plan.steps if step.chunk) or "-"
            budget = "none" if key == "unchunked" else f"{key:,}"
            print(
                f"{budget:>18} {plan.cost:>14,} {chunks:>14} {4 * plan.peak_memory / 1e6:>9.2f} "
                f"{xla_bytes(plan.jacobian, x) / 1e6:>8.2f} {1e3 * times[key]:>8.2f} "
                f"{times[key] / times['unchunked']:>6.2f}x"
            )


if __name__ == "__main__":
    main()
