"""The five kinds of step a plan is made of, and the objective a plan minimizes.

A plan computes ``J[last..first]``, the Jacobian of the layers ``first..last``,
for ever longer sub-chains. Each step produces one such Jacobian from zero, one
or two Jacobians produced before (its *operands*):

=============================  ==========================  =========================
kind                           operands                    layers it propagates
=============================  ==========================  =========================
``tangent_preaccumulation``    none (the identity seed)    ``first..first``
``adjoint_preaccumulation``    none (the identity seed)    ``first..first``
``tangent_step``               ``J[split..first]``         ``split+1..last``
``adjoint_step``               ``J[last..split+1]``        ``first..split``
``product``                    ``J[last..split+1]`` and    none: ``later @ earlier``
                               ``J[split..first]``
=============================  ==========================  =========================

The operand that covers the layers after the split is called *later*
(``J[last..split+1]``), the one before it *earlier* (``J[split..first]``).
:class:`StepKind` is the one table of these facts; its values are the strings
of the JSON format. What a kind costs is in :mod:`chainorder.core.costs`, what
it holds in memory in :mod:`chainorder.core.memory`, how it runs in
:mod:`chainorder.backend.steprun`; each reads this table.

This module imports neither jax nor matplotlib.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

__all__ = ["StepKind", "Step", "Objective", "TANGENT", "ADJOINT"]

TANGENT = "tangent"
ADJOINT = "adjoint"


class StepKind(str, Enum):
    """What a step does; the value is the kind's name in JSON.

    Attributes (per kind)
    ---------------------
    label : str
        What tables and figures call it.
    code : int
        Its small-integer code in the optimizers' numpy tables.
    direction : {"tangent", "adjoint", None}
        Whether it pushes tangents (JVPs, seeds are the ``n_first`` columns),
        pulls adjoints (VJPs, seeds are the ``m_last`` rows), or is a product.

    Examples
    --------
    >>> StepKind("tangent_step").label
    'tangent step (JVPs)'
    >>> StepKind.PRODUCT.operands(0, 3, 1)   # J[3..2] and J[1..0]
    ((2, 3), (0, 1))
    >>> StepKind.ADJOINT_STEP.through(0, 3, 1)
    (0, 1)
    """

    TANGENT_PREACCUMULATION = "tangent_preaccumulation"
    ADJOINT_PREACCUMULATION = "adjoint_preaccumulation"
    TANGENT_STEP = "tangent_step"
    ADJOINT_STEP = "adjoint_step"
    PRODUCT = "product"

    def __str__(self) -> str:
        return self.value

    @property
    def label(self) -> str:
        return _LABELS[self]

    @property
    def notation(self) -> str:
        """How :attr:`chainorder.Plan.bracketing` writes it (a ``str.format`` template)."""
        return _NOTATION[self]

    @property
    def code(self) -> int:
        return _CODES[self]

    @classmethod
    def from_code(cls, code: int) -> StepKind:
        return _BY_CODE[int(code)]

    @property
    def direction(self) -> str | None:
        return _DIRECTIONS[self]

    @property
    def is_preaccumulation(self) -> bool:
        return self in (StepKind.TANGENT_PREACCUMULATION, StepKind.ADJOINT_PREACCUMULATION)

    @property
    def operand_names(self) -> tuple[str, ...]:
        """Which operands it consumes: ``"later"`` (``J[last..split+1]``), ``"earlier"`` (``J[split..first]``)."""
        return _OPERAND_NAMES[self]

    def operands(self, first: int, last: int, split: int | None) -> tuple[tuple[int, int], ...]:
        """The ``(first, last)`` sub-chains it consumes: later before earlier."""
        if self.is_preaccumulation:
            return ()
        spans = {"later": (split + 1, last), "earlier": (first, split)}  # type: ignore[operator]
        return tuple(spans[name] for name in _OPERAND_NAMES[self])

    def through(self, first: int, last: int, split: int | None) -> tuple[int, int] | None:
        """The layers ``(a, b)`` it propagates tangents or adjoints through (None for products)."""
        if self.is_preaccumulation:
            return (first, last)
        if self is StepKind.TANGENT_STEP:
            return (split + 1, last)  # type: ignore[operator]
        if self is StepKind.ADJOINT_STEP:
            return (first, split)  # type: ignore[return-value]
        return None


_LABELS = {
    StepKind.TANGENT_PREACCUMULATION: "tangent preaccumulation",
    StepKind.ADJOINT_PREACCUMULATION: "adjoint preaccumulation",
    StepKind.TANGENT_STEP: "tangent step (JVPs)",
    StepKind.ADJOINT_STEP: "adjoint step (VJPs)",
    StepKind.PRODUCT: "dense product",
}
# t/a: tangent/adjoint; ">> t(a..b)" pushes columns through layers a..b, "a(a..b) <<" pulls rows back
_NOTATION = {
    StepKind.TANGENT_PREACCUMULATION: "t({first})",
    StepKind.ADJOINT_PREACCUMULATION: "a({first})",
    StepKind.TANGENT_STEP: "{earlier} >> t({through[0]}..{through[1]})",
    StepKind.ADJOINT_STEP: "a({through[0]}..{through[1]}) << {later}",
    StepKind.PRODUCT: "({later}) @ ({earlier})",
}
_OPERAND_NAMES = {
    StepKind.TANGENT_PREACCUMULATION: (),
    StepKind.ADJOINT_PREACCUMULATION: (),
    StepKind.TANGENT_STEP: ("earlier",),
    StepKind.ADJOINT_STEP: ("later",),
    StepKind.PRODUCT: ("later", "earlier"),
}
_CODES = {kind: code for code, kind in enumerate(StepKind)}
_BY_CODE = dict(enumerate(StepKind))
_DIRECTIONS = {
    StepKind.TANGENT_PREACCUMULATION: TANGENT,
    StepKind.ADJOINT_PREACCUMULATION: ADJOINT,
    StepKind.TANGENT_STEP: TANGENT,
    StepKind.ADJOINT_STEP: ADJOINT,
    StepKind.PRODUCT: None,
}


class Objective(str, Enum):
    """What a plan's ``cost`` measures, and so what :func:`chainorder.optimize` minimizes.

    ``"fma"``
        The total FMAs of all steps: the time on one thread (``jax.jit`` on one
        device runs the steps one after another). The default.
    ``"critical_path"``
        The FMAs on the longest chain of dependent steps: the time with
        unlimited threads, where the two operands of a product are computed at
        the same time. Never more than ``"fma"``; plans that minimize it may do
        more total work. ``parallel=True`` is an alias.
    ``"time"``
        Predicted seconds on one device, from a machine profile (see
        :mod:`chainorder.core.timing`): FMAs at the rate their shape runs at,
        plus the bytes each step moves and a fixed cost per kernel. It tells
        thin products from square ones and counts writing the Jacobian, which
        FMAs do not; it is only as good as the profile (``chainorder.calibrate()``
        measures one). A plan's ``cost`` stays its total FMAs; what is minimized
        is ``plan.predicted_time``.

    References
    ----------
    Naumann, U. (2008). Optimal Jacobian accumulation is NP-complete. Math.
    Program. 112, 427-441. Lieberum, S., Märtens, M., Naumann, U. (2025).
    Scheduled Jacobian Chaining. ACDA'25.

    Examples
    --------
    >>> Objective("critical_path") is Objective.CRITICAL_PATH
    True
    """

    FMA = "fma"
    CRITICAL_PATH = "critical_path"
    TIME = "time"
    MAKESPAN = "makespan"

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class Step:
    """One operation of a plan; it produces ``J[last..first]``.

    Parameters
    ----------
    kind : StepKind or str
        One of the :class:`StepKind` values.
    first, last : int
        The sub-chain of layers ``first..last`` (inclusive) whose Jacobian this
        step produces.
    split : int or None
        Where the operands meet (``first <= split < last``); ``None`` for
        preaccumulations.
    cost : int
        FMAs, from :class:`chainorder.core.costs.CostModel`.
    chunk : int or None
        Seeds per chunk: a tangent or adjoint step (or a dense preaccumulation)
        that pushes its seeds ``chunk`` at a time in a loop holds ``chunk`` of
        them across its layers instead of all (the same FMAs; see
        :func:`chainorder.core.memory.chunked_workspace`). ``None``: all at once.

    Raises
    ------
    ValueError
        For an unknown kind, or a chunk on a product or below 1.

    Examples
    --------
    >>> step = Step("product", 0, 3, 1, 24)
    >>> step.kind is StepKind.PRODUCT, step.operands
    (True, ((2, 3), (0, 1)))
    """

    kind: StepKind
    first: int
    last: int
    split: int | None
    cost: int
    chunk: int | None = None

    def __post_init__(self) -> None:
        try:
            object.__setattr__(self, "kind", StepKind(self.kind))
        except (ValueError, TypeError):
            kinds = ", ".join(kind.value for kind in StepKind)
            raise ValueError(f"unknown kind {self.kind!r}; expected one of {kinds}") from None
        if self.chunk is not None:
            if self.kind is StepKind.PRODUCT:
                raise ValueError("a product has no seeds to chunk; chunk must be None")
            if isinstance(self.chunk, bool) or not isinstance(self.chunk, int) or self.chunk < 1:
                raise ValueError(f"chunk must be a positive number of seeds or None, got {self.chunk!r}")

    @property
    def operands(self) -> tuple[tuple[int, int], ...]:
        """The ``(first, last)`` sub-chains whose Jacobians this step consumes (later first)."""
        return self.kind.operands(self.first, self.last, self.split)

    @property
    def layers_applied(self) -> tuple[int, int] | None:
        """Layers a tangent/adjoint step or preaccumulation propagates through (``None`` for products)."""
        return self.kind.through(self.first, self.last, self.split)

    @property
    def span(self) -> tuple[int, int]:
        """``(first, last)``: the sub-chain whose Jacobian this step produces."""
        return (self.first, self.last)

    def to_dict(self) -> dict[str, object]:
        fields = {
            "kind": self.kind.value,
            "first": self.first,
            "last": self.last,
            "split": self.split,
            "cost": self.cost,
        }
        if self.chunk is not None:
            fields["chunk"] = self.chunk
        return fields
