"""Whether to trust the time model here: many plans of one chain, predicted against measured.

:func:`fidelity_plans` gathers plans that differ in the ways the model must
tell apart (pure modes, the FMA-optimal and the time-optimal plan, dense
products only, a tape-limited plan, random bracketings); :func:`measure_plans`
times them jitted, interleaved (medians; :func:`measure_rounds`, every round);
:func:`plot_fidelity` draws predicted against measured seconds, log-log, with the
diagonal, :func:`spearman` gives the rank correlation and :func:`split_half`
the measurement's agreement with itself (plans within noise of each other rank
at random, however good the model).
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Sequence
from typing import Any

import jax
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.ticker import FuncFormatter, LogLocator

from ..backend.xlaoptions import plan_compiler_options
from ..core.chain import Chain
from ..core.optimize import optimize
from ..core.plan import Plan
from ..core.profile import MachineProfile
from ..core.sample import random_plan
from ..core.timing import plan_time
from .zoo import round_times

__all__ = [
    "distinct",
    "fidelity_plans",
    "measure_plans",
    "measure_rounds",
    "plot_fidelity",
    "predicted_times",
    "roofline_bound",
    "spearman",
    "split_half",
]


def fidelity_plans(chain: Chain, profile: MachineProfile, *, samples: int = 8, seed: int = 0) -> dict[str, Plan]:
    """Named plans of ``chain``: forward, reverse, fma-optimal, time-optimal, dense-only,
    tape-limited (the largest single layer's tape) and ``samples`` random ones; several
    names may hold the same plan (see :func:`distinct`).

    >>> from chainorder.core.profile import default_profile
    >>> plans = fidelity_plans(Chain.from_dims([64, 8, 64, 8]), default_profile(), samples=4)
    >>> list(plans)[:4]
    ['forward', 'reverse', 'fma-optimal', 'time-optimal']
    """
    candidates = {
        "forward": optimize(chain, "forward", profile=profile),
        "reverse": optimize(chain, "reverse", profile=profile),
        "fma-optimal": optimize(chain, profile=profile),
        "time-optimal": optimize(chain, objective="time", profile=profile),
        "dense-only": optimize(chain, matrix_free=False, profile=profile),
    }
    tape = max(chain.edges) if sum(chain.edges) > max(chain.edges) else None
    if tape is not None:
        candidates["tape-limited"] = optimize(chain, tape_limit=tape, profile=profile)
    for number in range(samples):
        candidates[f"random {number}"] = random_plan(chain, seed=seed + number)
    return candidates


def distinct(plans: dict[str, Plan]) -> list[str]:
    """The names of the first plan of each distinct list of steps.

    >>> from chainorder.core.profile import default_profile
    >>> distinct(fidelity_plans(Chain.from_dims([8, 8]), default_profile(), samples=0))
    ['forward', 'reverse']
    """
    names: list[str] = []
    for name, plan in plans.items():
        if all(plan.steps != plans[other].steps for other in names):
            names.append(name)
    return names


def measure_plans(
    plans: dict[str, Plan], x, repeat: int = 15, others: dict[str, Callable] | None = None
) -> dict[str, float]:
    """Median seconds of each plan's jitted Jacobian at ``x`` (interleaved rounds; a plan
    that several names hold is timed once and reported under each), and of ``others`` (jitted
    functions of ``x``, such as a floor: :func:`chainorder.front.zoo.fresh_array`) timed in the same rounds."""
    return {name: statistics.median(times) for name, times in measure_rounds(plans, x, repeat, others).items()}


def measure_rounds(
    plans: dict[str, Plan], x, repeat: int = 15, others: dict[str, Callable] | None = None
) -> dict[str, list[float]]:
    """What :func:`measure_plans` takes the medians of: each name's seconds in each round."""
    others = dict(others or {})
    if set(others) & set(plans):
        raise ValueError(f"measure_plans: {sorted(set(others) & set(plans))} name both a plan and another function")
    names = distinct(plans)
    jitted = {  # as chainorder compiles a plan's Jacobian itself
        name: jax.jit(plans[name].jacobian, compiler_options=plan_compiler_options(plans[name])) for name in names
    }
    times = round_times(jitted | others, x, repeat)
    measured = {
        name: times[next(other for other in names if plans[other].steps == plan.steps)] for name, plan in plans.items()
    }
    return measured | {name: times[name] for name in others}


def roofline_bound(plan: Plan, peak: float, floor: float) -> float:
    """Issue 13's bound on ``plan``'s seconds: its FMAs at the ``peak`` GEMM rate (FMAs per second)
    plus ``floor``, the measured seconds of writing a fresh Jacobian-sized array
    (:func:`chainorder.front.zoo.fresh_array`). A plan's roofline is this over its measured time.

    >>> from chainorder import Chain, optimize
    >>> plan = optimize(Chain.from_dims([4, 4]))  # one layer by 4 JVPs: 64 FMAs
    >>> round(roofline_bound(plan, 1e9, 1e-6), 12)  # 64 FMAs at 1 GFMA/s, plus 1 us
    1.064e-06
    """
    return plan.work / peak + floor


def split_half(rounds: dict[str, list[float]], names: Sequence[str]) -> float:
    """Spearman between the medians of the even and of the odd rounds over ``names``: how well the
    measurement ranks the plans against itself. A model's Spearman over all the rounds is
    not held to much above it (each half has half the rounds, so it is a little pessimistic).
    NaN with fewer than two rounds.

    >>> split_half({"a": [1.0, 1.1, 1.0, 1.2], "b": [2.0, 2.1, 2.2, 2.0], "c": [3.0, 2.9, 3.1, 3.3]}, "abc")
    1.0
    """
    if min(len(rounds[name]) for name in names) < 2:
        return float("nan")  # one round: no halves
    halves = [[statistics.median(rounds[name][start::2]) for name in names] for start in (0, 1)]
    return spearman(*halves)


def spearman(a: Sequence[float], b: Sequence[float]) -> float:
    """Spearman's rank correlation (no ties assumed).

    >>> spearman([1, 2, 3], [10, 30, 20])
    0.5
    """
    ranks_a = np.argsort(np.argsort(a))
    ranks_b = np.argsort(np.argsort(b))
    return float(np.corrcoef(ranks_a, ranks_b)[0, 1])


def plot_fidelity(
    predicted: Sequence[float] | Sequence[Plan],
    measured: Sequence[float],
    labels: Sequence[str] | None = None,
    ax: Any = None,
    *,
    title: str | None = None,
):
    """Predicted against measured seconds of many plans, log-log, with the diagonal.

    Points on the diagonal are plans whose time the model got right; a cloud
    parallel to it is right in ranking and off by a constant factor.

    Parameters
    ----------
    predicted : sequence of float or of Plan
        Predicted seconds, or plans (their ``predicted_time``).
    measured : sequence of float
        Measured seconds, in the same order.
    labels : sequence of str, optional
        Annotate each point.
    ax : matplotlib Axes, optional
    title : str, optional

    Returns
    -------
    (fig, ax)

    Raises
    ------
    ValueError
        When the lengths differ or a time is not positive.

    See Also
    --------
    chainorder.calibrate, chainorder.Plan.predicted_time

    Examples
    --------
    >>> fig, ax = plot_fidelity([1e-3, 2e-3], [1.2e-3, 1.9e-3], ["a", "b"])
    >>> ax.get_xscale(), ax.get_xlabel()
    ('log', 'measured time (ms)')
    """
    predicted = [value.predicted_time if isinstance(value, Plan) else float(value) for value in predicted]
    measured = [float(value) for value in measured]
    if len(predicted) != len(measured) or not predicted:
        raise ValueError(
            f"plot_fidelity needs as many predicted as measured times, got {len(predicted)} and {len(measured)}"
        )
    if min(predicted + measured) <= 0:
        raise ValueError("plot_fidelity needs positive times")
    if ax is None:
        fig, ax = plt.subplots(figsize=(5.5, 5), layout="constrained")
    else:
        fig = ax.figure
    ms_measured, ms_predicted = np.array(measured) * 1e3, np.array(predicted) * 1e3
    ax.scatter(ms_measured, ms_predicted, color="#3182bd", zorder=3)
    for label, x, y in zip(labels or [], ms_measured, ms_predicted):
        ax.annotate(label, (x, y), fontsize=7, xytext=(3, 3), textcoords="offset points")
    low = min(ms_measured.min(), ms_predicted.min()) / 1.5
    high = max(ms_measured.max(), ms_predicted.max()) * 1.5
    ax.plot([low, high], [low, high], color="grey", linestyle="--", label="predicted = measured")
    ax.set_xscale("log")
    ax.set_yscale("log")
    for axis in (ax.xaxis, ax.yaxis):  # 1, 2, 5, 10, ... as plain numbers (no 3x10^-1 on top of 4x10^-1)
        axis.set_major_locator(LogLocator(base=10))
        axis.set_minor_locator(LogLocator(base=10, subs=(2.0, 5.0)))
        for set_formatter in (axis.set_major_formatter, axis.set_minor_formatter):
            set_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
    ax.set_xlim(low, high)
    ax.set_ylim(low, high)
    ax.set_xlabel("measured time (ms)")
    ax.set_ylabel("predicted time (ms)")
    ax.set_title(title or f"Predicted vs measured, Spearman {spearman(predicted, measured):.2f}")
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(loc="upper left", fontsize=8)
    return fig, ax


def predicted_times(plans: dict[str, Plan], profile: MachineProfile) -> dict[str, float]:
    """Predicted seconds of each plan on ``profile``'s machine."""
    return {name: plan_time(plan.chain, plan.steps, profile) for name, plan in plans.items()}
