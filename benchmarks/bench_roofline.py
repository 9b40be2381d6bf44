"""The roofline of the bottleneck chains, against the same plans written by hand in jax.numpy.

Run: python benchmarks/bench_roofline.py [--repeat 60]

Issue 13's bound for a plan is its FMAs at the machine's best float32 GEMM rate plus the time of
writing a fresh Jacobian-sized array; its target: the executed plan at >= 60% of the bound on
every bottleneck chain. This script asks how far XLA itself gets: for the zoo's bottleneck chains
and the traced MLP it calibrates a profile (the bound's GEMM rate), takes the time-optimal plan
(what ``chainorder.jacobian`` runs) and times, in the same interleaved rounds:

- "plan": the plan's jitted Jacobian, as chainorder executes it;
- "by hand": the same bracketing written directly in jax.numpy: every layer's Jacobian
  ``diag(activation'(W x + b)) W`` written out where the plan starts a block, ``d * (W @ B)`` per
  layer a tangent step goes through, ``(B * d) @ W`` per layer an adjoint step goes back through,
  ``A @ B`` for a product; the same FMAs (a leaf by JVPs would cost more);
- "primal": the function alone (every Jacobian evaluates it once; the bound leaves it out);
- "floor": the fresh Jacobian-sized array of the bound.

and prints each one's share of the bound ("roofline"), and the bound plus the primal pass over the
plan's time.

On a machine whose cores are few, run it once more on one core (``taskset -c 0 python
benchmarks/bench_roofline.py``): XLA sizes its thread pools by the cores the process may use, so
that run shows how close the same plans come to one core's bound.
"""

from __future__ import annotations

import argparse
import os
import statistics

import jax
import jax.numpy as jnp

import chainorder
from chainorder import Chain, Plan
from chainorder.core.steps import StepKind
from chainorder.front.fidelity import roofline_bound
from chainorder.front.tracedzoo import mlp_layers
from chainorder.front.zoo import DenseLayer, composed, dense_layers, fresh_array, round_times, zoo_chains

#: the chains whose Jacobian a bottleneck makes cheap to accumulate (a mixed plan), by name
BOTTLENECKS = [
    "autoencoder 1024-512-16-512-1024",
    "U-shape 1024-256-64-16-64-256-1024",
    "double bottleneck 512-16-512-16-512",
]


def by_hand(layers: list[DenseLayer], plan: Plan):
    """The Jacobian of ``layers`` accumulated in ``plan``'s bracketing, written in jax.numpy."""

    def explicit(layer: DenseLayer, d):
        return jnp.diag(d) if layer.weight is None else d[:, None] * layer.weight

    def push(layer: DenseLayer, d, block):
        return d[:, None] * (block if layer.weight is None else layer.weight @ block)

    def pull(layer: DenseLayer, d, block):
        block = block * d[None, :]
        return block if layer.weight is None else block @ layer.weight

    def jacobian(x):
        derivatives = []
        for layer in layers:
            pre = layer.pre(x)
            x = layer(x)
            derivatives.append(layer.derivative(pre, x))
        blocks = {}
        for step in plan.steps:
            operands = [blocks[span] for span in step.kind.operands(step.first, step.last, step.split)]
            through = step.kind.through(step.first, step.last, step.split)
            if step.kind.is_preaccumulation:
                block = explicit(layers[step.first], derivatives[step.first])
            elif through is None:  # a product
                block = operands[0] @ operands[1]
            elif step.kind is StepKind.TANGENT_STEP:
                block = operands[0]
                for index in range(through[0], through[1] + 1):
                    block = push(layers[index], derivatives[index], block)
            else:
                block = operands[0]
                for index in range(through[1], through[0] - 1, -1):
                    block = pull(layers[index], derivatives[index], block)
            blocks[(step.first, step.last)] = block
        return blocks[(0, len(layers) - 1)]

    return jacobian


def models() -> list[tuple[str, Chain, list[DenseLayer], jax.Array]]:
    """(name, chain, layers, input) of the bottleneck chains and the traced MLP."""
    found = []
    for seed, name, dims in zoo_chains():
        if name in BOTTLENECKS:
            layers, x = dense_layers(dims, seed, jnp.float32)
            found.append((name, Chain.from_functions(layers, x), layers, x))
    layers, x = mlp_layers([1024, 512, 16, 512, 1024])
    traced = chainorder.trace(composed(layers), x)
    if len(traced) != len(layers):
        raise AssertionError(f"the traced MLP has {len(traced)} layers, not its {len(layers)}")
    found.append(("traced MLP 1024-512-16-512-1024", traced, layers, x))
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=60)
    args = parser.parse_args()
    profile = chainorder.calibrate(save=False, progress=False)
    peak = profile.gemm_peak
    cores = f"{len(os.sched_getaffinity(0))} of {os.cpu_count()} cores"
    print(f"jax {jax.__version__} on {profile.device_kind} ({cores}), float32; best GEMM {peak / 1e9:.0f} GFMA/s")
    print(f"medians of {args.repeat} interleaved rounds, ms; roofline = bound / time\n")
    header = (
        f"{'chain':<36} {'FMAs':>11} {'bound':>6} {'plan':>6} {'by hand':>7} {'primal':>6} {'floor':>6}"
        f"  {'plan':>4} {'hand':>4}  {'(bound + primal) / plan':>23}"
    )
    print(header)
    print("-" * len(header))
    for name, chain, layers, x in models():
        plan = chainorder.optimize(chain, objective="time", profile=profile)
        options = chainorder.plan_compiler_options(plan)  # as chainorder compiles the plan; the same for both
        functions = {
            "plan": jax.jit(plan.jacobian, compiler_options=options),
            "by hand": jax.jit(by_hand(layers, plan), compiler_options=options),
            "primal": jax.jit(composed(layers)),
            "floor": fresh_array((chain.out_dim, chain.in_dim)),
        }
        difference = float(jnp.max(jnp.abs(functions["plan"](x) - functions["by hand"](x))))
        if difference > 1e-4:
            raise AssertionError(f"{name}: the plan by hand differs from chainorder's by {difference:.1e}")
        seconds = {key: statistics.median(times) for key, times in round_times(functions, x, args.repeat).items()}
        ms = {key: 1e3 * value for key, value in seconds.items()}
        bound = 1e3 * roofline_bound(plan, peak, seconds["floor"])
        print(
            f"{name:<36} {plan.work:>11,} {bound:>6.3f} {ms['plan']:>6.3f} {ms['by hand']:>7.3f} {ms['primal']:>6.3f} "
            f"{ms['floor']:>6.3f}  {bound / ms['plan']:>4.0%} {bound / ms['by hand']:>4.0%}  "
            f"{(bound + ms['primal']) / ms['plan']:>23.0%}",
            flush=True,
        )
        print(f"{'':<36} plan: {plan.bracketing}")


if __name__ == "__main__":
    main()
