"""Fidelity of the time model: predicted against measured time of many plans per chain.

Run: python benchmarks/bench_fidelity.py [--repeat 15] [--samples 8] [--plot fidelity.png]
     [--saved-profile] [--per-plan]

Calibrates the machine profile in the same run (chainorder.calibrate(save=False)), then for
each zoo chain, a wide autoencoder whose 64 MiB Jacobian is written at the page-fault rate
(LARGE), and each traced model (chainorder.front.tracedzoo: an MLP, a convolutional
autoencoder and an MLP with layer norms, their chains from chainorder.trace; --scale widens the
zoo only) times >= 10 distinct plans (forward, reverse, fma-optimal, time-optimal,
dense-only, tape-limited, random bracketings) jitted, interleaved medians, and reports:

- Spearman: rank correlation between predicted and measured time over the chain's plans
  (target >= 0.9); beside it ("halves") the measurement's own: the Spearman between the medians
  of the even and of the odd rounds (plans within noise of each other rank at random there too);
- speedup: the better pure mode over the chosen (time-optimal) plan, predicted vs measured
  (target: within +-25%), beside the FMA model's speedup;
- roofline: the bound (the plan's FMAs at the profile's peak GEMM rate plus the time of writing a
  fresh Jacobian-sized array, timed in the same rounds as the plans) over the executed time of the
  chosen plan (target >= 60%);
- where the time-optimal and the FMA-optimal plan differ, both measured;
- where a table of the profile changes a prediction (the convolution or reduction factors, the
  write factors of large result blocks, the JVP/VJP factors of wide steps), the same plans'
  Spearman and speedup without it, below the row.
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics

import jax

import chainorder
from chainorder import Chain
from chainorder.core.layer import OP_FAMILIES
from chainorder.core.timing import TimeModel, step_times
from chainorder.front.fidelity import (
    distinct,
    fidelity_plans,
    measure_rounds,
    plot_fidelity,
    predicted_times,
    roofline_bound,
    spearman,
    split_half,
)
from chainorder.front.tracedzoo import traced_models
from chainorder.front.zoo import dense_chain, faults_per_call, fresh_array, zoo_chains

#: chains beside the zoo whose Jacobian is a block past the profile's write sizes (64 MiB: written
#: fresh at the page-fault rate on a CPU), named as the zoo's, with their seeds
LARGE = {"wide autoencoder 4096-256-32-256-4096": (20, [4096, 256, 32, 256, 4096])}


def print_plans(plans, names, predicted, measured, profile, x) -> None:
    """Each plan's predicted and measured ms, the primal pass's share and its largest step's, XLA's
    temporaries (``memory_analysis()``) and the page faults of a call."""
    for name in names:
        plan = plans[name]
        seconds = step_times(plan.chain, plan.steps, profile)
        largest = max(range(len(seconds)), key=seconds.__getitem__)
        function = jax.jit(plan.jacobian, compiler_options=chainorder.plan_compiler_options(plan))  # as measured
        temporaries = function.lower(x).compile().memory_analysis().temp_size_in_bytes
        faults = faults_per_call(function, x)
        print(
            f"    {name:<14} predicted {1e3 * predicted[name]:8.3f} ms  measured {1e3 * measured[name]:8.3f} ms  "
            f"primal {1e3 * TimeModel(plan.chain, profile).primal_time():.3f}  "
            f"largest step {plan.steps[largest].kind.value} {1e3 * seconds[largest]:.3f}  "
            f"XLA temporaries {temporaries / 2**20:.1f} MiB, "
            f"faults/call {'n/a' if faults is None else f'{faults:.0f} ({faults * 4096 / 2**20:.1f} MiB)'}"
        )


def zoo_chain(dims: list[int], seed: int) -> tuple[Chain, jax.Array]:
    """The zoo's chain of ``dims`` (float32) and its input."""
    functions, x = dense_chain(dims, seed, jax.numpy.float32)
    return Chain.from_functions(functions, x), x


def agreement(names, predicted, measured) -> tuple[float, float, float]:
    """Spearman over the distinct plans ``names``, and the better pure mode's speedup over the
    time-optimal plan, predicted and measured."""
    rho = spearman([predicted[n] for n in names], [measured[n] for n in names])
    speed_predicted = min(predicted["forward"], predicted["reverse"]) / predicted["time-optimal"]
    speed_measured = min(measured["forward"], measured["reverse"]) / measured["time-optimal"]
    return rho, speed_predicted, speed_measured


def fidelity_row(name: str, chain: Chain, x, profile, repeat: int, samples: int):
    """Time the chain's plans beside the Jacobian-sized floor, print its row; return the plans, the distinct
    plans' names and every plan's predicted and measured seconds."""
    plans = fidelity_plans(chain, profile, samples=samples)
    floor = fresh_array((chain.out_dim, chain.in_dim))  # the Jacobian written, in the same rounds
    rounds = measure_rounds(plans, x, repeat, others={"floor": floor})
    measured = {name: statistics.median(times) for name, times in rounds.items()}
    predicted = predicted_times(plans, profile)
    names = distinct(plans)
    rho, speed_predicted, speed_measured = agreement(names, predicted, measured)
    plan = plans["time-optimal"]
    roofline = roofline_bound(plan, profile.gemm_peak, measured["floor"]) / measured["time-optimal"]
    differ = "same plan"
    if plan.steps != plans["fma-optimal"].steps:
        differ = f"{1e3 * measured['time-optimal']:.3f} vs {1e3 * measured['fma-optimal']:.3f}"
    print(
        f"{name:<44} {len(names):>5} {rho:>8.2f} {split_half(rounds, names):>6.2f} "
        f"{speed_predicted:>6.2f}x {speed_measured:>6.2f}x "
        f"{speed_predicted / speed_measured - 1:>+6.0%} {plans['fma-optimal'].speedup:>6.2f}x "
        f"{1e3 * measured['floor']:>8.3f} {roofline:>8.0%}  {differ}",
        flush=True,
    )
    for what, flat in neutral_profiles(profile):  # the same plans and times, one table of the profile left out
        flat_predicted = predicted_times(plans, flat)
        if flat_predicted != predicted:
            print_without(names, flat_predicted, measured, what)
    return plans, names, predicted, measured


def neutral_profiles(profile):
    """``(what, profile)``: the profile with one of its measured tables neutral: each family of
    operations priced as dense layers, every result block written at the bandwidth, every step's
    JVPs (VJPs) at the narrow steps' factor."""
    for family, what in OP_FAMILIES.items():
        yield f"{what} factors 1", profile.with_family_factor(family, 1.0)
    yield "write factors 1", dataclasses.replace(profile, write_sizes=(1,), write_factors=(1.0,))
    narrow = {"tangent_factors": profile.tangent_factors[:1], "adjoint_factors": profile.adjoint_factors[:1]}
    yield "one JVP/VJP factor", dataclasses.replace(profile, mode_dims=(1,), **narrow)


def print_without(names, predicted, measured, what: str) -> None:
    """The Spearman and predicted speedup of the same plans and measured times, as ``predicted``
    (what the model predicted before it measured ``what``)."""
    rho, speed_predicted, speed_measured = agreement(names, predicted, measured)
    print(
        f"{f'  the same, {what}':<44} {'':>5} {rho:>8.2f} {'':>6} {speed_predicted:>6.2f}x "
        f"{speed_measured:>6.2f}x {speed_predicted / speed_measured - 1:>+6.0%}",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument("--samples", type=int, default=8)
    parser.add_argument("--only", default=None)
    parser.add_argument("--scale", type=int, default=1, help="every width times this (e.g. 8 on a GPU)")
    parser.add_argument("--plot", default=None, help="write the fidelity picture of every chain to this PNG")
    parser.add_argument(
        "--saved-profile", action="store_true", help="use the saved profile (chainorder calibrate), not a new one"
    )
    parser.add_argument(
        "--per-plan",
        action="store_true",
        help="print each plan's predicted and measured ms too, its XLA temporaries and page faults per call",
    )
    args = parser.parse_args()
    profile = chainorder.machine_profile() if args.saved_profile else chainorder.calibrate(save=False)
    print(f"jax {jax.__version__} on {profile.device_kind}; profile: {profile}")
    header = (
        f"{'chain':<44} {'plans':>5} {'spearman':>8} {'halves':>6} {'pred x':>7} {'meas x':>7} {'err':>6} {'FMA x':>7} "
        f"{'write ms':>8} {'roofline':>8}  time-opt vs fma-opt (ms)"
    )
    print(header)
    print("-" * len(header))
    points = []
    chains = [(name, *zoo_chain(dims, seed)) for seed, name, dims in zoo_chains(args.only, args.scale)]
    chains += [(name, *zoo_chain(dims, seed)) for name, (seed, dims) in LARGE.items() if (args.only or name) in name]
    chains += [(name, chainorder.trace(f, x), x) for name, f, x in traced_models(args.only)]
    for name, chain, x in chains:
        plans, names, predicted, measured = fidelity_row(name, chain, x, profile, args.repeat, args.samples)
        points.append((name, names, predicted, measured))
        if args.per_plan:
            print_plans(plans, names, predicted, measured, profile, x)
    if args.plot:
        import matplotlib.pyplot as plt

        columns = min(3, len(points))
        rows = -(-len(points) // columns)
        size = (4.4 * columns, 4.4 * rows)
        fig, axes = plt.subplots(rows, columns, figsize=size, layout="constrained", squeeze=False)
        for ax, (name, names, predicted, measured) in zip(axes.flat, points):
            plot_fidelity([predicted[n] for n in names], [measured[n] for n in names], names, ax=ax, title=name)
        for ax in axes.flat[len(points) :]:
            ax.set_visible(False)
        fig.savefig(args.plot, dpi=80)
        print(f"wrote {args.plot}")


if __name__ == "__main__":
    main()
