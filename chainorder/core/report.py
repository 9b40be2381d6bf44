"""How a plan reads: the table ``print(plan)`` shows, and the plan as one bracketed expression.

This module imports neither jax nor matplotlib.
"""

from __future__ import annotations

from collections.abc import Sequence
from fractions import Fraction
from typing import Any

from .memory import peak_memory
from .pure import forward_steps, reverse_fits, reverse_steps
from .steps import Objective, Step

Plan = Any  # a chainorder.Plan (plan.py imports this module, not the other way round)

__all__ = ["plan_table", "bracketing", "ratio_text"]


def bracketing(steps: Sequence[Step]) -> str:
    """The plan as one expression: ``t(i)``/``a(i)`` preaccumulate layer i in tangent/adjoint
    mode, ``X >> t(k+1..j)`` pushes X's columns through layers k+1..j, ``a(i..k) << X``
    pulls X's rows back through layers i..k, and ``X @ Y`` is a dense product.

    >>> from chainorder import Chain, optimize
    >>> bracketing(optimize(Chain.from_dims([784, 256, 32, 256, 784])).steps)
    '(t(2) >> t(3..3)) @ (a(0..0) << a(1))'
    """
    made: dict[tuple[int, int], str] = {}
    for step in steps:
        operands = {name: made.pop(span) for name, span in zip(step.kind.operand_names, step.operands)}
        made[step.span] = step.kind.notation.format(first=step.first, through=step.layers_applied, **operands)
    (whole,) = made.values()
    return whole


def ratio_text(numerator: int, denominator: int) -> str:
    """An exact ratio of two integers, printed to three significant digits (never overflows).

    >>> ratio_text(10**400, 3), ratio_text(1, 3)
    ('3.33e+399', '0.333')
    """
    if denominator == 0:
        return "inf" if numerator else "1"
    ratio = Fraction(numerator, denominator)
    if ratio == 0:
        return "0"
    exponent = len(str(ratio.numerator // ratio.denominator)) - 1 if ratio >= 1 else 0
    if exponent < 300:
        return f"{float(ratio):.3g}"
    mantissa = float(ratio / Fraction(10) ** exponent)
    return f"{mantissa:.3g}e+{exponent}"


def _options_text(plan: Plan) -> str:
    parts = [
        "matrix-free" if plan.matrix_free else "dense products only",
        {
            Objective.CRITICAL_PATH: "unlimited threads (critical path)",
            Objective.TIME: "sequential, least predicted time",
            Objective.MAKESPAN: f"{plan.threads} threads (makespan)",
        }.get(plan.objective, "sequential"),
        "no tape limit" if plan.tape_limit is None else f"tape limit {plan.tape_limit:,}",
    ]
    if plan.memory_limit is not None:
        parts.append(f"memory limit {plan.memory_limit:,}")
    return f"{plan.strategy} ({', '.join(parts)})"


def _misfit(plan: Plan, steps: list[Step] | None) -> str:
    """Why a pure mode is not allowed under the plan's limits ('' when it is)."""
    if steps is None:
        return f"; over the tape limit {plan.tape_limit:,}"
    if plan.memory_limit is not None and peak_memory(plan.chain.without_structure(), steps) > plan.memory_limit:
        return f"; over the memory limit {plan.memory_limit:,}"
    return ""


def _summary(plan: Plan, width: int) -> list[str]:
    chain = plan.chain
    dims = " -> ".join(str(d) for d in chain.dims)
    better = "forward" if plan.forward_cost <= plan.reverse_cost else "reverse"
    dense = chain.without_structure()  # jax.jacfwd / jax.jacrev
    misfit = {
        "forward": _misfit(plan, forward_steps(dense)),
        "reverse": _misfit(
            plan, reverse_steps(dense, plan.tape_limit) if reverse_fits(dense, plan.tape_limit) else None
        ),
    }
    lines = [
        f"  Jacobian chain:  {len(chain)} layers, dims {dims}",
        f"  Jacobian shape:  {chain.out_dim} x {chain.in_dim}",
        f"  Strategy:        {_options_text(plan)}",
        f"  Forward cost:    {plan.forward_cost:>{width},} FMAs  (jax.jacfwd, pure tangent{misfit['forward']})",
        f"  Reverse cost:    {plan.reverse_cost:>{width},} FMAs  (jax.jacrev, pure adjoint{misfit['reverse']})",
        f"  Plan cost:       {plan.cost:>{width},} FMAs  ({plan.mode})",
        f"  Speedup:         {ratio_text(min(plan.forward_cost, plan.reverse_cost), plan.cost)}x over {better} mode"
        + (f" (which is not allowed here{misfit[better]})" if misfit[better] else ""),
        f"  Peak memory:     {plan.peak_memory:>{width},} elements",
        *_structure_lines(chain),
    ]
    if plan.objective in (Objective.CRITICAL_PATH, Objective.MAKESPAN):
        lines.append(f"  Total work:      {plan.work:>{width},} FMAs (all threads)")
    if plan.threads is not None:
        status = "proven optimal" if plan.proven else "not proven optimal"
        lines.append(f"  Makespan:        {plan.makespan:>{width},} FMAs on {plan.threads} threads ({status})")
        peaks = ", ".join(f"{peak:,}" for peak in plan.device_peaks)
        lines.append(f"  Device peaks:    {peaks} elements (thread 0, 1, ...)")
    lines.append(_time_line(plan))
    return lines


def _structure_lines(chain, shown: int = 3) -> list[str]:
    """One line per layer that coloring compresses (the first ``shown``): its density, and its
    colors against its columns (JVPs) and rows (VJPs); then the layers whose Jacobian is written
    explicitly."""
    compressed = [(index, layer) for index, layer in enumerate(chain) if layer.compressed]
    lines = []
    for index, layer in compressed[:shown]:
        density = "" if layer.nonzeros is None else f"density {layer.nonzeros / (layer.in_dim * layer.out_dim):.2%}, "
        lines.append(
            f"  Sparse layer:    {index}: {density}{_colors(layer.tangent_seeds)} of {layer.in_dim:,} columns "
            f"(JVPs), {layer.adjoint_seeds:,} of {layer.out_dim:,} rows (VJPs)"
        )
    if len(compressed) > shown:
        lines.append(f"                   and {len(compressed) - shown} more sparse layers")
    explicit = [str(index) for index, layer in enumerate(chain) if layer.preaccumulates_explicitly]
    if explicit:
        listed = ", ".join(explicit[:8]) + (f" and {len(explicit) - 8} more" if len(explicit) > 8 else "")
        lines.append(f"  Explicit layers: {listed} (affine, then elementwise: diag(s'(Wx+b)) W written directly)")
    return lines


def _operation(step: Step, chain) -> str:
    """A step's kind, with its colors where it preaccumulates a layer by compression, "explicit"
    where it writes the layer's Jacobian directly, or its chunk where it pushes seeds in chunks."""
    if step.chunk is not None:
        short = "tangent" if step.kind.direction == "tangent" else "adjoint"
        kind = f"{short} preacc." if step.kind.is_preaccumulation else f"{short} step"
        return f"{kind}, {step.chunk:,} at a time"
    if step.kind.is_preaccumulation:
        layer = chain[step.first]
        if step.kind.direction == "tangent" and layer.preaccumulates_explicitly:
            return "tangent preacc., explicit"
        colors = layer.tangent_colors if step.kind.direction == "tangent" else layer.adjoint_colors
        if colors is not None:
            return f"{step.kind.direction} preacc., {_colors(colors)}"
    return step.kind.label


def _colors(count: int) -> str:
    return f"{count:,} color" + ("" if count == 1 else "s")


def _time_line(plan: Plan) -> str:
    machine = plan.machine
    source = "measured profile" if machine.calibrated else "analytic default; run `chainorder calibrate`"
    return (
        f"  Predicted time:  {plan.predicted_time * 1e3:.4g} ms on {machine.device_kind} ({source}); "
        f"{plan.predicted_speedup:.3g}x over the faster pure mode"
    )


def plan_table(plan: Plan) -> str:
    """What ``print(plan)`` shows: the chain, the costs, then one line per step."""
    width = max(len(f"{value:,}") for value in (plan.forward_cost, plan.reverse_cost, plan.cost))
    lines = _summary(plan, width)
    cost_width = max(width, 4)
    header = (
        f"  {'step':>4}  {'operation':<26} {'layers':>9} {'through':>9} {'result':>13} "
        f"{'cost':>{cost_width}} {'share':>6} {'pred. ms':>9}"
    )
    if plan.threads is not None:
        header += f" {'thread':>6} {'start':>{cost_width}}"
    rule = "-" * max(len(header), 60)
    lines += [rule, header, rule]
    total = plan.work or 1
    chain = plan.chain
    for number, (step, seconds) in enumerate(zip(plan.steps, plan.step_times)):
        through = step.layers_applied
        through_text = "-" if through is None else f"{through[0]}..{through[1]}"
        shape = f"{chain[step.last].out_dim}x{chain[step.first].in_dim}"
        line = (
            f"  {number:>4}  {_operation(step, chain):<26} {f'{step.first}..{step.last}':>9} "
            f"{through_text:>9} {shape:>13} {step.cost:>{cost_width},} "
            f"{float(100 * Fraction(step.cost, total)):>5.1f}% {seconds * 1e3:>9.4f}"
        )
        if plan.threads is not None:
            slot = plan.schedule[number]
            line += f" {slot.device:>6} {slot.start:>{cost_width},}"
        lines.append(line)
    primal = f"  {'':>4}  {'primal pass':<26} {f'0..{len(chain) - 1}':>9} {'':>9} {'':>13} {'':>{cost_width}} {'':>6}"
    lines.append(f"{primal} {plan.primal_time * 1e3:>9.4f}")
    return "\n".join(lines)
