"""Forward mode with the seeds kept last (``chainorder.backend.seedslast``) against jacfwd and jacrev.

Run: python benchmarks/bench_batch_last.py [--repeat 100] [--plans 15]

Under ``jax.vmap`` an elementwise op with one unbatched operand (a layer's derivative times the
tangents) moves the batch axis first, and a ``W @ t`` leaves it last, so a forward-mode Jacobian
compiles with a transpose between them. jacfwd of the unrolled RK4 of the drop-in benchmark holds
121 and runs slower than jacrev although it needs half the FMAs. :func:`jacfwd_seeds_last` interprets
the JVP's jaxpr itself: elementwise ops broadcast their unbatched operand along a trailing axis,
the structural primitives are ``vmap``-ed with the seeds last. Pure forward plans run this way.
Prints each function's median time (interleaved) and the number of transposes XLA compiled.
With ``--plans R``, also every fidelity plan of the zoo that has a tangent step, run with its
tangent steps as ``vmap`` of ``jax.linearize``'s JVP (before) and with the seeds last (now),
medians of R interleaved rounds.
"""

from __future__ import annotations

import argparse
import re

import jax
import jax.numpy as jnp
import numpy as np
from bench_dropin import rk4

import chainorder
from chainorder import Chain
from chainorder.backend import steprun
from chainorder.backend.execute import run_steps
from chainorder.backend.seedslast import jacfwd_seeds_last
from chainorder.core.steps import StepKind
from chainorder.front.fidelity import distinct, fidelity_plans
from chainorder.front.zoo import composed, dense_chain, median_times, zoo_chains


def cases():
    yield "unrolled RK4 (20 steps, width 32)", *rk4(32, 20)
    for seed, name, dims in zoo_chains(None, 1):
        functions, x = dense_chain(dims, seed, jnp.float32)
        yield name, composed(functions), x


def transposes(function, x) -> int:
    return len(re.findall(r"= \S+ transpose\(", jax.jit(function).lower(x).compile().as_text()))


def _compiled(plan, functions, seeds_last: bool):
    """The plan jitted with tangent steps pushing their seeds last or not (read while tracing)."""
    steprun.SEEDS_LAST = seeds_last
    try:
        function = jax.jit(lambda x: run_steps(plan, functions, x))
        jax.block_until_ready(function(jnp.zeros(plan.chain.in_dim, jnp.float32)))
    finally:
        steprun.SEEDS_LAST = True
    return function


def compare_plans(repeat: int) -> None:
    """Every fidelity plan with a tangent step: its time with the tangent steps before and now."""
    profile = chainorder.machine_profile()
    print(f"\ntangent steps inside plans, medians of {repeat}, ms")
    print(f"{'chain':<36} {'plan':<14} {'vmap':>8} {'last':>8} {'last/vmap':>9}")
    ratios = []
    for seed, name, dims in zoo_chains(None, 1):
        functions, x = dense_chain(dims, seed, jnp.float32)
        chain = Chain.from_functions(functions, x)
        plans = fidelity_plans(chain, profile, samples=8)
        for label in distinct(plans):
            plan = plans[label]
            if not any(step.kind in (StepKind.TANGENT_STEP, StepKind.TANGENT_PREACCUMULATION) for step in plan.steps):
                continue
            pair = {"vmap": _compiled(plan, functions, False), "last": _compiled(plan, functions, True)}
            error = float(jnp.max(jnp.abs(pair["vmap"](x) - pair["last"](x))))
            if error > 1e-4:
                raise AssertionError(f"{name} {label}: the two executions differ by {error}")
            seconds = median_times(pair, x, repeat)
            ratios.append(seconds["last"] / seconds["vmap"])
            print(
                f"{name:<36} {label:<14} {1e3 * seconds['vmap']:>8.3f} {1e3 * seconds['last']:>8.3f} "
                f"{ratios[-1]:>9.2f}"
            )
    quartiles = np.percentile(ratios, [0, 25, 50, 75, 100])
    print(f"{len(ratios)} plans; last/vmap min, quartiles, max: " + ", ".join(f"{value:.2f}" for value in quartiles))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=100)
    parser.add_argument("--plans", type=int, default=0, help="also compare the tangent steps of the zoo's plans")
    args = parser.parse_args()
    print(f"jax {jax.__version__} on {jax.devices()[0].device_kind}, float32, medians of {args.repeat}, ms")
    print(f"{'function':<36} {'jacfwd':>8} {'jacrev':>8} {'seeds last':>10} {'x jacfwd':>8}  transposes (jacfwd, last)")
    for name, function, x in cases():
        last = jax.jit(jacfwd_seeds_last(function))
        functions = {"jacfwd": jax.jit(jax.jacfwd(function)), "jacrev": jax.jit(jax.jacrev(function)), "last": last}
        error = float(jnp.max(jnp.abs(last(x) - functions["jacrev"](x))))
        if error > 1e-3:
            raise AssertionError(f"{name}: the seeds-last Jacobian is off by {error}")
        seconds = median_times(functions, x, args.repeat)
        ms = {key: 1e3 * value for key, value in seconds.items()}
        counts = f"{transposes(jax.jacfwd(function), x)}, {transposes(last, x)}"
        print(
            f"{name:<36} {ms['jacfwd']:>8.3f} {ms['jacrev']:>8.3f} {ms['last']:>10.3f} "
            f"{seconds['jacfwd'] / seconds['last']:>7.2f}x  {counts}"
        )
    if args.plans:
        compare_plans(args.plans)


if __name__ == "__main__":
    main()
