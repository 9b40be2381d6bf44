"""Two execution choices, each timed on and off over the same plans in the same rounds.

Run: python benchmarks/bench_switches.py [--switch join|scale] [--repeat 30] [--samples 4] [--only NAME]

``--switch join`` (``chainorder.backend.cuts.JOIN``): a step through several segments of a traced
program runs them joined, as the program does, or runs their functions in turn, each packing its
output state into one vector for the next (as before 2026-11-29). Inside a layer norm that state
holds the activations with their mean, then with their variance. Over the traced models of
``chainorder.front.tracedzoo``, with jacfwd and jacrev in the same rounds; also the concatenations XLA
kept in each program.

``--switch scale`` (``chainorder.backend.explicit.SCALE_FIRST``): a product ``J @ B`` whose left
factor is an explicit layer's ``diag(s') W`` scales ``W``'s rows before the product where ``W`` has no
more columns than ``B``, or scales the product after it (as before 2026-11-29: a pass of its own
over the result). Over the zoo's chains (``chainorder.front.zoo``), the plans with a product.

Every distinct fidelity plan (forward, reverse, fma-optimal, time-optimal, dense-only, tape-limited,
``--samples`` random ones) is compiled both ways (the switch is read while tracing), timed in
interleaved rounds (medians); prints each plan's times and their ratio.
"""

from __future__ import annotations

import argparse
import copy
import re

import jax

import chainorder
from chainorder.backend import cuts, explicit
from chainorder.core.steps import StepKind
from chainorder.front.fidelity import distinct, fidelity_plans
from chainorder.front.tracedzoo import traced_models
from chainorder.front.zoo import dense_chain, median_times, zoo_chains

#: each switch: its module and flag
SWITCHES = {"join": (cuts, "JOIN"), "scale": (explicit, "SCALE_FIRST")}


def compiled(plan, x, module, flag: str, on: bool):
    """The plan's Jacobian compiled with the switch ``on`` or off (a copy of the plan, whose compiled
    function is not the cached one of the other way)."""
    setattr(module, flag, on)
    try:
        return jax.jit(copy.copy(plan).jacobian).lower(x).compile()
    finally:
        setattr(module, flag, True)


def concatenations(function) -> int:
    return len(re.findall(r"= \S+ concatenate\(", function.as_text()))


def compare(name: str, chain, x, profile, switch: str, repeat: int, samples: int, pure_modes=None) -> None:
    module, flag = SWITCHES[switch]
    plans = fidelity_plans(chain, profile, samples=samples)
    names = distinct(plans)
    if switch == "scale":  # only a product can scale an explicit factor
        names = [each for each in names if any(step.kind is StepKind.PRODUCT for step in plans[each].steps)]
    functions = dict(pure_modes or {})
    for plan_name in names:
        functions[f"{plan_name} off"] = compiled(plans[plan_name], x, module, flag, False)
        functions[f"{plan_name} on"] = compiled(plans[plan_name], x, module, flag, True)
    times = median_times(functions, x, repeat)
    print(f"\n{name}: {len(chain)} layers, dims {list(chain.dims)}")
    if pure_modes:
        print("  " + ", ".join(f"{mode} {1e3 * times[mode]:.3f} ms" for mode in pure_modes))
    print(f"  {'plan':<14} {'off ms':>10} {'on ms':>10} {'off/on':>8} {'concatenations':>16}")
    for plan_name in names:
        off, on = times[f"{plan_name} off"], times[f"{plan_name} on"]
        counts = " -> ".join(str(concatenations(functions[f"{plan_name} {way}"])) for way in ("off", "on"))
        print(f"  {plan_name:<14} {1e3 * off:>10.3f} {1e3 * on:>10.3f} {off / on:>7.2f}x {counts:>16}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--switch", choices=sorted(SWITCHES), default="join")
    parser.add_argument("--repeat", type=int, default=30)
    parser.add_argument("--samples", type=int, default=4)
    parser.add_argument("--only", default=None)
    args = parser.parse_args()
    profile = chainorder.calibrate(save=False)
    module, flag = SWITCHES[args.switch]
    print(f"jax {jax.__version__} on {profile.device_kind}, float32; {module.__name__}.{flag} off and on; "
          f"medians of {args.repeat} interleaved rounds")
    if args.switch == "join":
        for name, f, x in traced_models(args.only):
            pure = {mode.__name__: jax.jit(mode(f)).lower(x).compile() for mode in (jax.jacfwd, jax.jacrev)}
            compare(name, chainorder.trace(f, x), x, profile, "join", args.repeat, args.samples, pure)
        return
    for seed, name, dims in zoo_chains(args.only, 1):
        functions, x = dense_chain(dims, seed, jax.numpy.float32)
        compare(name, chainorder.Chain.from_functions(functions, x), x, profile, "scale", args.repeat, args.samples)


if __name__ == "__main__":
    main()
