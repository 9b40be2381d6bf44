"""Compressing a sparse Jacobian: columns (or rows) that share no row (column) get one color.

Columns of one color can be pushed as one tangent: the JVP with the sum of their unit
seeds returns, in each row, the entry of the one column of that color present there.
So ``colors`` JVPs give every nonzero (rows likewise for VJPs). Colors come from
networkx's greedy coloring of the column intersection graph (columns adjacent when they
share a row), in the orderings of :data:`STRATEGIES`; identical rows make identical
cliques, so each distinct row pattern is added once. The densest row is a lower bound
on the colors.

This module imports neither jax nor matplotlib.

References
----------
Curtis, A. R., Powell, M. J. D., Reid, J. K. (1974). On the estimation of sparse Jacobian
matrices. IMA J. Appl. Math. 13. Gebremedhin, A. H., Manne, F., Pothen, A. (2005). What color
is your Jacobian? SIAM Review 47.
"""

from __future__ import annotations

import networkx as nx
import numpy as np

__all__ = [
    "color_columns",
    "color_rows",
    "Coloring",
    "LayerPattern",
    "MAX_SHARING_PAIRS",
    "STRATEGIES",
    "INTERCHANGE_COLUMNS",
    "lower_bound",
]


class Coloring:
    """One color per column (``"columns"``: JVPs) or per row (``"rows"``: VJPs).

    Attributes
    ----------
    mode : str
    colors : numpy.ndarray
        The color of each column (or row), ``0 .. count - 1``.
    count : int
    lower_bound : int
        The densest row's (column's) nonzeros: no coloring needs fewer.
    """

    def __init__(self, mode: str, colors: np.ndarray, lower_bound: int) -> None:
        self.mode = mode
        self.colors = colors
        self.count = int(colors.max()) + 1 if len(colors) else 0
        self.lower_bound = lower_bound

    def __repr__(self) -> str:
        return f"<Coloring {self.mode}: {self.count} colors (lower bound {self.lower_bound})>"


#: The greedy orderings tried by default, in turn, until one reaches the lower bound: largest first
#: (fast, optimal on block-diagonal and banded patterns), then smallest last (5 colors where largest
#: first gives 7 on a 5-point stencil on a 64x64 grid), then smallest last with networkx's color
#: interchange (5 where both give 7 on a 40x40 grid: 0.1 s there), on at most
#: :data:`INTERCHANGE_COLUMNS` columns (0.5 s at 4,096, 17 s at 22,500).
STRATEGIES = ("largest_first", "smallest_last", "smallest_last_interchange")

#: The most columns the ``"..._interchange"`` strategies are tried on by default.
INTERCHANGE_COLUMNS = 4096
_INTERCHANGE = "_interchange"


def color_columns(rows: np.ndarray, columns: np.ndarray, shape: tuple[int, int], strategy: str | None = None):
    """Color the columns of the pattern ``(rows[k], columns[k])`` so that no two of one color share a row.

    Parameters
    ----------
    rows, columns : numpy.ndarray
        The nonzeros' coordinates.
    shape : (int, int)
    strategy : str, optional
        A networkx greedy coloring strategy (``"largest_first"``, ``"smallest_last"``, ...),
        with ``"_interchange"`` appended for its color interchange; by default those of
        :data:`STRATEGIES` in turn, keeping the fewest colors.

    Returns
    -------
    Coloring

    Examples
    --------
    >>> rows, columns = np.nonzero(np.eye(4, dtype=bool) | np.eye(4, k=1, dtype=bool))  # bidiagonal
    >>> coloring = color_columns(rows, columns, (4, 4))
    >>> coloring.count, coloring.lower_bound
    (2, 2)
    """
    keys = _sorted_unique(np.asarray(rows, dtype=np.int64) * shape[1] + np.asarray(columns, dtype=np.int64))
    rows, columns = keys // max(shape[1], 1), keys % max(shape[1], 1)  # each nonzero once, row by row
    lower = lower_bound(rows, columns, "columns")
    if lower == shape[1] and lower:  # a row holds every column: one color each, nothing to search
        return Coloring("columns", np.arange(shape[1], dtype=np.int64), lower)
    if lower <= 1:  # no two columns share a row (a diagonal): one color holds them all
        return Coloring("columns", np.zeros(shape[1], dtype=np.int64), lower)
    graph = nx.Graph()
    graph.add_nodes_from(range(shape[1]))
    starts = np.flatnonzero(np.r_[True, rows[1:] != rows[:-1]])
    patterns = {tuple(part) for part in np.split(columns, starts[1:])}
    pairs = sum(len(pattern) * (len(pattern) - 1) // 2 for pattern in patterns)
    if pairs > MAX_SHARING_PAIRS or (2 * lower >= shape[1] and pairs > FEW_SHARING_PAIRS):
        # nearly dense rows, or a row of half the columns: no coloring beats one color per column by
        # much (by 2x at most in the second case) for the cost of its graph; that one is valid
        return Coloring("columns", np.arange(shape[1], dtype=np.int64), lower)
    graph.add_edges_from(_sharing_pairs(patterns, shape[1]).tolist())
    best = None
    tried = (strategy,) if strategy is not None else STRATEGIES
    if strategy is None and shape[1] > INTERCHANGE_COLUMNS:
        tried = tuple(each for each in tried if not each.endswith(_INTERCHANGE))
    for each in tried:
        interchange = each.endswith(_INTERCHANGE)
        colors = nx.greedy_color(graph, strategy=each.removesuffix(_INTERCHANGE), interchange=interchange)
        coloring = Coloring("columns", np.array([colors[j] for j in range(shape[1])], dtype=np.int64), lower)
        best = coloring if best is None or coloring.count < best.count else best
        if best.count <= lower:
            break
    return best


def lower_bound(rows: np.ndarray, columns: np.ndarray, mode: str) -> int:
    """The fewest colors any coloring of ``mode`` can have: the densest row's nonzeros (``"columns"``)
    or the densest column's (``"rows"``), each nonzero ``(rows[k], columns[k])`` listed once.

    >>> rows, columns = np.array([0, 0, 1]), np.array([0, 1, 1])   # [[1, 1], [0, 1]]
    >>> lower_bound(rows, columns, "columns"), lower_bound(rows, columns, "rows")
    (2, 2)
    """
    counted = np.asarray(rows if mode == "columns" else columns, dtype=np.int64)
    return int(np.bincount(counted).max()) if len(counted) else 0


#: The most column pairs sharing a row that a coloring builds its graph from; past it (rows of
#: thousands of nonzeros) every column gets a color of its own instead.
MAX_SHARING_PAIRS = 20_000_000
#: Past this many pairs, a pattern whose densest row holds half its columns or more (its coloring
#: can save 2x at most) gets a color per column too: a traced layer norm's variance row (1,024 of
#: 2,048 columns, 523,776 pairs) took networkx about 1 s per pattern to color, 16 s per model.
FEW_SHARING_PAIRS = 100_000


def _sharing_pairs(patterns: set[tuple[int, ...]], columns: int) -> np.ndarray:
    """Every pair of columns that share a row, once (patterns of one length at a time, in numpy)."""
    by_length: dict[int, list[tuple[int, ...]]] = {}
    for pattern in patterns:
        by_length.setdefault(len(pattern), []).append(pattern)
    pairs = [np.zeros((0, 2), dtype=np.int64)]
    for length, group in by_length.items():
        if length < 2:
            continue
        table = np.asarray(group, dtype=np.int64)
        first, second = np.triu_indices(length, 1)
        pairs.append(np.stack([table[:, first].ravel(), table[:, second].ravel()], axis=1))
    pairs = np.concatenate(pairs)
    keys = _sorted_unique(pairs[:, 0] * columns + pairs[:, 1])  # one integer per pair
    return np.stack([keys // columns, keys % columns], axis=1)


def _sorted_unique(keys: np.ndarray) -> np.ndarray:
    """``np.unique(keys)`` of integers, by a sort: numpy 2.4's ``np.unique`` hashes them, 0.97 s for
    10^6 keys where sorting takes 0.015 s.

    >>> _sorted_unique(np.array([3, 1, 3, 2])).tolist()
    [1, 2, 3]
    """
    ordered = np.sort(keys)
    return ordered[np.r_[True, ordered[1:] != ordered[:-1]]] if len(ordered) else ordered


def color_rows(rows: np.ndarray, columns: np.ndarray, shape: tuple[int, int], strategy: str | None = None):
    """Color the rows so that no two of one color share a column (for VJPs); see :func:`color_columns`.

    >>> color_rows(*np.nonzero(np.ones((1, 3), dtype=bool)), (1, 3)).count
    1
    """
    coloring = color_columns(columns, rows, (shape[1], shape[0]), strategy)
    return Coloring("rows", coloring.colors, coloring.lower_bound)


class LayerPattern:
    """The nonzeros of one layer's Jacobian and both its colorings: what a compressed
    preaccumulation of the layer pushes (one JVP per color of its columns) or pulls (one VJP per
    color of its rows), and where it reads each nonzero back. A :class:`chainorder.core.layer.Layer`
    built with one takes its colors and nonzeros from it.

    Parameters
    ----------
    rows, columns : numpy.ndarray
        The nonzeros' coordinates.
    shape : (int, int)
        ``(out_dim, in_dim)``.

    Examples
    --------
    >>> rows, columns = np.nonzero(np.eye(5, dtype=bool) | np.eye(5, k=1, dtype=bool))
    >>> pattern = LayerPattern(rows, columns, (5, 5))
    >>> pattern.nonzeros, pattern.tangent_colors, pattern.adjoint_colors
    (9, 2, 2)
    """

    def __init__(self, rows: np.ndarray, columns: np.ndarray, shape: tuple[int, int]) -> None:
        self.rows, self.columns, self.shape = np.asarray(rows), np.asarray(columns), shape
        self.by_columns = color_columns(self.rows, self.columns, shape)
        self.by_rows = color_rows(self.rows, self.columns, shape)

    @property
    def nonzeros(self) -> int:
        return len(self.rows)

    @property
    def tangent_colors(self) -> int:
        return max(self.by_columns.count, 1)

    @property
    def adjoint_colors(self) -> int:
        return max(self.by_rows.count, 1)

    def coloring(self, direction: str) -> Coloring:
        """The coloring a ``"tangent"`` (columns) or ``"adjoint"`` (rows) preaccumulation uses."""
        return self.by_columns if direction == "tangent" else self.by_rows

    def __repr__(self) -> str:
        m, n = self.shape
        return (
            f"<LayerPattern {m}x{n}: {self.nonzeros:,} nonzeros, {self.tangent_colors} column colors, "
            f"{self.adjoint_colors} row colors>"
        )
