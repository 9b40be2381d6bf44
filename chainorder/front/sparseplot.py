"""The picture of a sparse Jacobian: its detected pattern, each nonzero in the colour of its group.

:func:`plot_sparsity` draws what :func:`chainorder.jacobian` with ``sparse=True`` computes:
the nonzeros of the flattened Jacobian (rows: outputs, columns: inputs) found on the jaxpr
(:func:`chainorder.sparsity`), each coloured by the group (JVP or VJP) that computes it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import matplotlib.pyplot as plt
import numpy as np

from ..backend.compressed import colors_and_density, compression

__all__ = ["plot_sparsity"]


def plot_sparsity(fun: Callable[[Any], Any], x: Any, ax: Any = None, *, markersize: float | None = None):
    """The Jacobian's detected nonzero pattern, coloured by compression group.

    Parameters
    ----------
    fun : callable
        One array in, one array out.
    x : array
        An input (only its shape and dtype are used).
    ax : matplotlib Axes, optional
    markersize : float, optional
        Of each nonzero's dot (default: from the pattern's size).

    Returns
    -------
    (fig, ax)

    See Also
    --------
    chainorder.sparsity : the pattern as a BCOO.
    chainorder.jacobian : with ``sparse=True``, one JVP or VJP per group.

    Examples
    --------
    >>> import jax.numpy as jnp
    >>> fig, ax = plot_sparsity(lambda v: jnp.sin(v[1:]) * v[:-1], jnp.ones(30))
    >>> ax.get_title().splitlines()
    ['Jacobian 29 x 30: 58 nonzeros (density 0.0667),', '2 column groups (JVPs; lower bound 2)']
    """
    found = compression(fun, x)
    rows, columns, coloring, m, n = found
    report = colors_and_density(found)
    if ax is None:
        aspect = m / max(n, 1)
        fig, ax = plt.subplots(figsize=(7.0, max(2.5, min(9.0, 7.0 * aspect))), layout="constrained")
    else:
        fig = ax.figure
    groups = coloring.colors[columns] if coloring.mode == "columns" else coloring.colors[rows]
    palette = plt.get_cmap("tab20" if coloring.count > 10 else "tab10")
    size = markersize if markersize is not None else max(0.5, min(12.0, 4000.0 / max(m, n)))
    ax.scatter(columns, rows, c=[palette(int(g) % palette.N) for g in groups], s=size, marker="s", linewidths=0)
    ax.set_xlim(-0.5, n - 0.5)
    ax.set_ylim(m - 0.5, -0.5)
    ax.set_xlabel("input entry (flattened)")
    ax.set_ylabel("output entry (flattened)")
    kind = "column groups (JVPs" if coloring.mode == "columns" else "row groups (VJPs"
    ax.set_title(
        f"Jacobian {m} x {n}: {len(rows):,} nonzeros (density {report['density']:.3g}),\n"
        f"{coloring.count} {kind}; lower bound {report['lower_bound']})",
        fontsize=10,
    )
    if np.size(rows) == 0:
        ax.text(0.5, 0.5, "no nonzeros", transform=ax.transAxes, ha="center")
    return fig, ax
