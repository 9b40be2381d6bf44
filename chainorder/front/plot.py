"""Figures: the cost/memory trade-off of a chain's plans, and what a plan does.

Both functions return ``(fig, ax)``, draw into ``ax=`` when given one, never call
``plt.show()`` and work under any backend (Agg included).
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any

import matplotlib.pyplot as plt

from ..core.blocking import blocked_points
from ..core.chain import Chain
from ..core.optimize import optimize, pareto
from ..core.plan import Plan
from ..core.pure import reverse_fits
from ..core.sample import random_plan
from ..core.steps import StepKind

__all__ = ["plot_tradeoff", "plot_plan", "plot_schedule"]

KIND_COLORS = {
    StepKind.TANGENT_PREACCUMULATION: "#9ecae1",
    StepKind.TANGENT_STEP: "#3182bd",
    StepKind.ADJOINT_PREACCUMULATION: "#fdae6b",
    StepKind.ADJOINT_STEP: "#e6550d",
    StepKind.PRODUCT: "#756bb1",
}


def _axes(ax: Any, size: tuple[float, float]):
    if ax is None:
        fig, ax = plt.subplots(figsize=size, layout="constrained")
    else:
        fig = ax.figure
    return fig, ax


def plot_tradeoff(
    chain_or_front: Chain | Sequence[Plan],
    ax: Any = None,
    *,
    chosen: Plan | None = None,
    samples: int = 200,
    seed: int = 0,
    budget: int | None = None,
    blocks: bool = False,
    chunks: bool = False,
):
    """Cost (FMAs) against peak memory (elements), both on log scales.

    Draws every Pareto-optimal plan joined by a step line (the front), forward
    and reverse mode, a sample of ``samples`` random other bracketings, and
    labels forward, reverse, the FMA-optimal plan and ``chosen`` (for example
    a memory-limited plan).

    Parameters
    ----------
    chain_or_front : Chain or list of Plan
        A chain (its front is computed with :func:`chainorder.pareto`) or a
        front already computed.
    ax : matplotlib Axes, optional
    chosen : Plan, optional
    samples : int
        How many random plans to scatter in the background (recursion on
        chains of up to a few hundred layers).

    seed : int
        For the random plans.
    budget : int, optional
        A memory budget in elements, drawn as a vertical line.
    blocks : bool
        Also draw the Jacobian computed in blocks of 1, 2, 4, ... columns or rows
        into a result held whole (:func:`chainorder.core.blocking.blocked_points`):
        the points below the least peak of any plan of the whole.
    chunks : bool
        Also draw the front of plans whose steps push their seeds in chunks
        (``chainorder.pareto(chain, chunked=True)``: the same FMAs, each at its
        least peak over the chunks), where it differs from the front.

    Returns
    -------
    (fig, ax)

    Raises
    ------
    TypeError
        When given neither a Chain nor a list of Plans.

    See Also
    --------
    chainorder.pareto, plot_plan

    Examples
    --------
    >>> from chainorder import Chain, optimize
    >>> chain = Chain.from_dims([64, 512, 1024, 128, 16, 512, 256, 8])
    >>> fig, ax = plot_tradeoff(chain, chosen=optimize(chain, memory_limit=150_000), samples=20)
    >>> ax.get_xlabel(), ax.get_ylabel()
    ('peak memory (elements)', 'cost (FMAs)')
    >>> fig, ax = plot_tradeoff(Chain.from_dims([256, 256, 256, 256]), samples=0, budget=80_000, blocks=True)
    >>> sorted(text for text in ax.get_legend_handles_labels()[1] if "budget" in text or "blocks" in text)
    ['in blocks, result held whole (8 points)', 'memory budget (80,000 elements)']
    >>> fig, ax = plot_tradeoff(Chain.from_dims([64, 64, 4096, 64]), samples=0, chunks=True)
    >>> [text for text in ax.get_legend_handles_labels()[1] if "chunk" in text]
    ['steps in chunks, least peak (1 plan)']
    """
    chain, front = _chain_and_front(chain_or_front)
    fig, ax = _axes(ax, (7, 4.8))
    _scatter_random_plans(ax, chain, front[0].tape_limit, samples, seed)
    _draw_front(ax, front)
    if blocks:
        _draw_blocks(ax, chain, front)
    if chunks:
        _draw_chunked(ax, chain, front)
    _mark_plans(ax, chain, front, chosen)
    if budget is not None:
        ax.axvline(budget, color="#d62728", linestyle="--", linewidth=1.2, label=f"memory budget ({budget:,} elements)")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("peak memory (elements)")
    ax.set_ylabel("cost (FMAs)")
    dims = "-".join(str(d) for d in chain.dims) if len(chain) <= 8 else f"{len(chain)} layers"
    ax.set_title(f"Cost vs memory of the plans for {dims}")
    ax.grid(True, which="major", alpha=0.3)
    ax.margins(x=0.08, y=0.12)
    ax.legend(loc="best", fontsize=8)
    return fig, ax


def _chain_and_front(chain_or_front: Chain | Sequence[Plan]) -> tuple[Chain, list[Plan]]:
    if isinstance(chain_or_front, Chain):
        return chain_or_front, pareto(chain_or_front)
    front = list(chain_or_front)
    if not front or not all(isinstance(plan, Plan) for plan in front):
        raise TypeError("plot_tradeoff needs a Chain or a non-empty list of Plans (a Pareto front)")
    return front[0].chain, front


def _scatter_random_plans(ax: Any, chain: Chain, tape_limit: int | None, samples: int, seed: int) -> None:
    rng = random.Random(seed)
    others = [random_plan(chain, rng, tape_limit=tape_limit) for _ in range(samples)]
    ax.scatter(
        [plan.peak_memory for plan in others],
        [plan.cost for plan in others],
        s=10,
        color="#bdbdbd",
        alpha=0.7,
        label=f"other plans ({samples} random bracketings)",
        zorder=1,
    )


def _draw_blocks(ax: Any, chain: Chain, front: list[Plan]) -> None:
    least = front[0].peak_memory
    points = [point for point in blocked_points(chain, {"tape_limit": front[0].tape_limit}) if point[0] < least]
    if points:
        ax.scatter(
            [peak for peak, *_ in points],
            [cost for _, cost, *_ in points],
            s=30,
            marker="^",
            color="#8c6bb1",
            label=f"in blocks, result held whole ({len(points)} points)",
            zorder=3,
        )


def _draw_chunked(ax: Any, chain: Chain, front: list[Plan]) -> None:
    points = {(plan.peak_memory, plan.cost) for plan in front}
    options = {"tape_limit": front[0].tape_limit, "matrix_free": front[0].matrix_free}
    chunked = [plan for plan in pareto(chain, chunked=True, **options) if (plan.peak_memory, plan.cost) not in points]
    if chunked:
        ax.scatter(
            [plan.peak_memory for plan in chunked],
            [plan.cost for plan in chunked],
            s=30,
            marker="s",
            color="#e6550d",
            label=f"steps in chunks, least peak ({len(chunked)} plan{'' if len(chunked) == 1 else 's'})",
            zorder=3,
        )


def _draw_front(ax: Any, front: list[Plan]) -> None:
    memory = [plan.peak_memory for plan in front]
    costs = [plan.cost for plan in front]
    ax.step(memory, costs, where="post", color="#31a354", linewidth=1.5, zorder=2)
    plans = "plan" if len(front) == 1 else "plans"
    ax.scatter(memory, costs, s=28, color="#31a354", label=f"Pareto front ({len(front)} {plans})", zorder=3)


def _mark_plans(ax: Any, chain: Chain, front: list[Plan], chosen: Plan | None) -> None:
    tape_limit = front[0].tape_limit
    marked = [(optimize(chain, "forward"), "forward (jacfwd)", "#3182bd", "s", (6, 6))]
    if reverse_fits(chain, tape_limit):
        marked.append((optimize(chain, "reverse", tape_limit=tape_limit), "reverse (jacrev)", "#e6550d", "D", (6, -13)))
    marked.append((front[-1], "FMA-optimal", "#31a354", "*", (6, 6)))
    if chosen is not None:
        marked.append((chosen, "chosen", "black", "o", (6, -13)))
    for plan, label, color, marker, offset in marked:
        ax.scatter(
            [plan.peak_memory],
            [plan.cost],
            s=120 if marker == "*" else 60,
            marker=marker,
            facecolor=color if marker != "o" else "none",
            edgecolor=color,
            linewidth=1.5,
            zorder=4,
        )
        ax.annotate(
            label, (plan.peak_memory, plan.cost), textcoords="offset points", xytext=offset, fontsize=9, color=color
        )


def plot_plan(plan: Plan, ax: Any = None):
    """The steps of ``plan`` against the layers they span.

    One bar per step, top to bottom in execution order, from its first layer to
    its last; colour by kind (tangent work blue, adjoint work orange, dense
    products purple); the cost on the bar (or beside it, when the bar is short).

    Parameters
    ----------
    plan : Plan
    ax : matplotlib Axes, optional

    Returns
    -------
    (fig, ax)

    Raises
    ------
    TypeError
        When ``plan`` is not a Plan.

    Examples
    --------
    >>> from chainorder import Chain, optimize
    >>> fig, ax = plot_plan(optimize(Chain.from_dims([784, 256, 32, 256, 784])))
    >>> len(ax.patches)  # one bar per step
    5
    """
    if not isinstance(plan, Plan):
        raise TypeError(f"plot_plan needs a Plan, got {type(plan).__name__}")
    chain = plan.chain
    q, count = len(chain), len(plan.steps)
    fig, ax = _axes(ax, (max(8.0, min(18.0, 0.3 * q + 6)), max(2.5, min(14.0, 0.32 * count + 1.5))))
    fontsize = 8 if count <= 40 else 6
    for row, step in enumerate(plan.steps):
        _draw_step(ax, row, step, plan.work or 1, q, fontsize)
    ax.set_ylim(count - 0.5, -0.5)
    ax.set_xlim(0, q + max(1.5, q / 5))
    ax.set_yticks(range(count))
    ax.set_yticklabels([f"{row}" for row in range(count)], fontsize=fontsize)
    ax.set_ylabel("step (execution order)")
    ticks = range(q + 1) if q <= 25 else range(0, q + 1, max(1, q // 20))
    ax.set_xticks(list(ticks))
    ax.set_xticklabels([str(chain.dims[t]) for t in ticks], fontsize=fontsize, rotation=0 if q <= 12 else 90)
    ax.set_xlabel("layers, between variables of these sizes (a bar spans the Jacobian it produces)")
    _kind_legend(ax)
    ax.set_title(f"{plan.mode} plan: {plan.cost:,} FMAs, {plan.speedup:.3g}x over the best pure mode")
    return fig, ax


def _kind_legend(ax: Any, handles: Sequence = (), labels: Sequence = ()) -> None:
    """The step kinds' colours (then ``handles``/``labels``) as a legend right of the axes."""
    boxes = [plt.Rectangle((0, 0), 1, 1, color=KIND_COLORS[kind]) for kind in KIND_COLORS]
    ax.legend(
        boxes + list(handles),
        [kind.label for kind in KIND_COLORS] + list(labels),
        fontsize=7,
        loc="upper left",
        bbox_to_anchor=(1.01, 1.0),
        borderaxespad=0,
    )


def _draw_step(ax: Any, row: int, step, total: int, q: int, fontsize: int) -> None:
    """One bar from the step's first layer to its last, its split marked, its cost written on it."""
    width = step.last - step.first + 1
    ax.barh(row, width, left=step.first, height=0.7, color=KIND_COLORS[step.kind], edgecolor="black", linewidth=0.4)
    if step.split is not None:
        ax.plot([step.split + 1, step.split + 1], [row - 0.35, row + 0.35], color="black", linewidth=0.8)
    text = f"{step.cost:,.3g}" if step.cost >= 1e6 else f"{step.cost:,}"
    text += f" ({100 * step.cost / total:.0f}%)"
    inside = width >= max(2, q / 6)
    x = step.first + width / 2 if inside else step.last + 1.1
    ax.text(x, row, text, ha="center" if inside else "left", va="center", fontsize=fontsize)


def plot_schedule(plan: Plan, ax: Any = None):
    """A scheduled plan as a Gantt chart: one row per thread (device), one bar per step.

    Bars run from the step's start to its end (FMAs, the cost model's time),
    coloured by kind like :func:`plot_plan` and labelled with the step's number
    and the layers it produces; a dashed line marks the makespan, a dotted one the
    plan's work spread evenly over the threads (a lower bound).

    Parameters
    ----------
    plan : Plan
        Made with ``threads=T`` (``chainorder.optimize(chain, threads=T)``).
    ax : matplotlib Axes, optional

    Returns
    -------
    (fig, ax)

    Raises
    ------
    TypeError, ValueError
        When ``plan`` is not a Plan, or has no schedule.

    Examples
    --------
    >>> from chainorder import Chain, optimize
    >>> fig, ax = plot_schedule(optimize(Chain.from_dims([784, 256, 32, 256, 784]), threads=2))
    >>> len(ax.patches), [label.get_text() for label in ax.get_yticklabels()]
    (5, ['thread 0', 'thread 1'])
    """
    if not isinstance(plan, Plan):
        raise TypeError(f"plot_schedule needs a Plan, got {type(plan).__name__}")
    if plan.schedule is None:
        raise ValueError("the plan has no schedule: make it with chainorder.optimize(chain, threads=T)")
    threads = plan.threads
    fig, ax = _axes(ax, (10.0, max(2.0, 0.6 * threads + 1.2)))
    for number, (step, slot) in enumerate(zip(plan.steps, plan.schedule)):
        width = slot.end - slot.start
        ax.barh(
            slot.device,
            width,
            left=slot.start,
            height=0.6,
            color=KIND_COLORS[step.kind],
            edgecolor="black",
            linewidth=0.5,
        )
        if width >= plan.makespan / 25:
            ax.text(
                slot.start + width / 2,
                slot.device,
                f"{number}: {step.first}..{step.last}",
                ha="center",
                va="center",
                fontsize=7,
            )
    ax.axvline(plan.makespan, color="black", linestyle="--", linewidth=1, label=f"makespan {plan.makespan:,}")
    spread = plan.work / threads
    ax.axvline(spread, color="gray", linestyle=":", linewidth=1, label=f"work / threads {spread:,.0f}")
    ax.set_yticks(range(threads))
    ax.set_yticklabels([f"thread {t}" for t in range(threads)])
    ax.set_ylim(threads - 0.5, -0.5)
    ax.set_xlabel("FMAs (the cost model's time)")
    _kind_legend(ax, *ax.get_legend_handles_labels())
    status = "proven optimal" if plan.proven else "not proven optimal"
    ax.set_title(
        f"{plan.makespan:,} FMAs on {threads} threads ({status}); {plan.work:,} FMAs of work, "
        f"{plan.work / max(plan.makespan, 1):.2f}x the speed of one thread"
    )
    return fig, ax
