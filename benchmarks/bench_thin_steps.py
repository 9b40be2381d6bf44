"""Tangent and adjoint steps through one layer narrower than their seeds: predicted against measured.

Run: python benchmarks/bench_thin_steps.py [--repeat 25]

A tangent step pushing ``s`` columns through a dense ``n -> m`` layer runs the GEMM
``(m x n) @ (n x s)``; where the layer is narrower than the seeds (``min(n, m) < s``) that GEMM
is thin. The time model prices each layer's FMAs at ``gemm_rate(min(s, n, m))``
(:meth:`chainorder.core.timing.TimeModel.weighted_prefix`); before, it priced them all at
``gemm_rate(s)``. For each case this script calibrates the profile in the same run, times the
jitted, vmapped JVPs (VJPs) of ``tanh(W v)`` with ``s`` seeds (interleaved medians), and prints
the achieved FMA rate beside both rates, the model's predicted time of the step over the measured
one, and the same ratio with the step priced as before ("before").
"""

from __future__ import annotations

import argparse

import jax
import jax.numpy as jnp
import numpy as np

import chainorder
from chainorder import Chain
from chainorder.core.timing import TimeModel
from chainorder.front.zoo import median_times

#: (n, m, seeds): a layer n -> m, pushed (pulled) with that many seeds
CASES = [
    (512, 16, 512),
    (16, 512, 512),
    (512, 512, 512),
    (1024, 16, 1024),
    (16, 1024, 1024),
    (1024, 64, 1024),
    (64, 1024, 1024),
    (1024, 1024, 1024),
    (256, 16, 256),
    (16, 256, 256),
    (256, 256, 256),
]


def step_functions(n: int, m: int, seeds: int, rng) -> dict[str, tuple]:
    """The tangent and adjoint step through ``tanh(W v)``, jitted, with their arguments."""
    weight = jnp.asarray(rng.standard_normal((m, n)) / np.sqrt(n), jnp.float32)
    x = jnp.asarray(rng.standard_normal(n), jnp.float32)

    def layer(v):
        return jnp.tanh(weight @ v)

    def push(x, columns):
        _, linear = jax.linearize(layer, x)
        return jax.vmap(linear, in_axes=1, out_axes=1)(columns)

    def pull(x, rows):
        _, pullback = jax.vjp(layer, x)
        return jax.vmap(lambda row: pullback(row)[0])(rows)

    columns = jnp.asarray(rng.standard_normal((n, seeds)), jnp.float32)
    rows = jnp.asarray(rng.standard_normal((seeds, m)), jnp.float32)
    return {"tangent": (jax.jit(push), (x, columns)), "adjoint": (jax.jit(pull), (x, rows))}


def predicted(direction: str, n: int, m: int, seeds: int, profile) -> float:
    """The model's seconds of the step: a tangent step of chain ``seeds -> n -> m`` through its
    second layer, or an adjoint step of ``n -> m -> seeds`` through its first."""
    if direction == "tangent":
        return float(TimeModel(Chain.from_dims([seeds, n, m]), profile).cost("tangent_step", 0, 1, 0))
    return float(TimeModel(Chain.from_dims([n, m, seeds]), profile).cost("adjoint_step", 0, 1, 0))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=25)
    args = parser.parse_args()
    profile = chainorder.calibrate(save=False)
    rng = np.random.default_rng(0)
    steps = {}
    for n, m, seeds in CASES:
        for direction, (function, arguments) in step_functions(n, m, seeds, rng).items():
            steps[(direction, n, m, seeds)] = (function, arguments)
    runners = {key: (lambda f, a: lambda _: f(*a))(*value) for key, value in steps.items()}
    measured = median_times(runners, None, args.repeat)
    print(f"jax {jax.__version__} on {profile.device_kind}, float32, medians of {args.repeat}, GFMA/s and ms")
    print(
        f"{'step':<8} {'layer':>11} {'seeds':>6} {'measured':>9} {'achieved':>9} {'r(seeds)':>9} {'r(thin)':>8} "
        f"{'predicted':>10} {'pred/meas':>9} {'before':>7}"
    )
    for (direction, n, m, seeds), seconds in measured.items():
        rate = n * m * seeds / seconds / 1e9
        model = predicted(direction, n, m, seeds, profile)
        # the same step priced at the seeds' rate, as before: only the arithmetic changes
        arithmetic = float(profile.mode_factor(direction, seeds)) * n * m * seeds
        before = model - arithmetic * (1 / profile.gemm_rate(min(seeds, n, m)) - 1 / profile.gemm_rate(seeds))
        print(
            f"{direction:<8} {f'{n}->{m}':>11} {seeds:>6} {1e3 * seconds:>9.3f} {rate:>9.1f} "
            f"{profile.gemm_rate(seeds) / 1e9:>9.1f} {profile.gemm_rate(min(seeds, n, m)) / 1e9:>8.1f} "
            f"{1e3 * model:>10.3f} {model / seconds:>9.2f} {before / seconds:>7.2f}"
        )


if __name__ == "__main__":
    main()
