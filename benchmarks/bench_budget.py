"""Time against memory budget for a 2048-2048-2048-2048 tanh MLP (issue 14's example).

Run: python benchmarks/bench_budget.py [--repeat 5]

Budgets go from the FMA-optimal plan's peak down to 1.2x the Jacobian. Where a plan of the whole
fits, chainorder.jacobian runs it (one jitted program; "model" is its peak, "XLA" the compiled
program's argument + output + temp bytes from memory_analysis()); where none fits, the Jacobian is
allocated on the device and filled in column or row blocks whose plans fit the rest ("model": the
Jacobian + the block plan's peak; "XLA": the Jacobian + the block program's bytes). Times are
medians of --repeat calls after one warm-up, float32.
"""

from __future__ import annotations

import argparse
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np

import chainorder
from chainorder.backend.blocks import _Blocks, _budget
from chainorder.front.zoo import xla_bytes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--width", type=int, default=2048)
    args = parser.parse_args()
    width = args.width
    rng = np.random.default_rng(0)
    weights = [jnp.asarray(rng.standard_normal((width, width)) / np.sqrt(width), jnp.float32) for _ in range(3)]

    def f(v):
        for weight in weights:
            v = jnp.tanh(weight @ v)
        return v

    x = jnp.linspace(-1.0, 1.0, width, dtype=jnp.float32)
    chain = chainorder.analyze(f, x, objective="fma").chain
    unlimited = chainorder.optimize(chain)
    least = chainorder.pareto(chain)[0].peak_memory
    jacobian_elements = width * width
    print(f"jax {jax.__version__} on {jax.devices()[0].device_kind}, float32, {width}x3 tanh MLP")
    print(f"Jacobian {jacobian_elements:,} elements; FMA-optimal peak {unlimited.peak_memory:,}; least peak {least:,}")
    print(f"{'budget (elements)':>18} {'x Jacobian':>10} {'how':>14} {'model MB':>9} {'XLA MB':>8} {'time ms':>9}")
    reference = jax.jacobian(f)(x)
    for factor in (unlimited.peak_memory / jacobian_elements, 1.9, 1.5, 1.3, 1.2):
        budget = int(factor * jacobian_elements)
        function = chainorder.jacobian(f, memory_limit=budget)
        result = function(x)
        error = float(jnp.abs(result - reference).max())
        times = []
        for _ in range(args.repeat):
            start = time.perf_counter()
            jax.block_until_ready(function(x))
            times.append(time.perf_counter() - start)
        if function.plans:  # a plan of the whole fitted
            (plan,) = function.plans.values()
            xla = xla_bytes(function, x)
            how, model = plan.mode, plan.peak_memory * 4
        else:
            options, block_budget = _budget({"memory_limit": budget - jacobian_elements}, jnp.float32)
            blocks = _Blocks.plan(f, x, jax.eval_shape(jax.jacobian(f), x), block_budget, options, chainorder.jacobian)
            arguments = (jnp.zeros(blocks.size), x, jnp.arange(blocks.size))
            if blocks.orientation == "rows":
                arguments = (x, jnp.arange(blocks.size))
            xla = jacobian_elements * 4 + xla_bytes(blocks.block_jacobian, *arguments)
            (block_plan,) = blocks.block_jacobian.plans.values()
            how = f"{blocks.size}-{blocks.orientation[:-1]} blocks"
            model = (jacobian_elements + block_plan.peak_memory) * 4
        print(
            f"{budget:>18,} {factor:>10.2f} {how:>14} {model / 1e6:>9.1f} {xla / 1e6:>8.1f} "
            f"{1e3 * statistics.median(times):>9.1f}   (max error {error:.1e})"
        )


if __name__ == "__main__":
    main()
