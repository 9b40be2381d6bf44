"""The one post-order walk: a plan is a tree of steps, executed children first.

Used to read plans out of the optimizers' tables and to order a plan's steps for
least memory. Iterative, so chains of thousands of layers need no deep recursion.

This module imports neither jax nor matplotlib.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterator, Sequence

__all__ = ["post_order"]


def post_order(root: Hashable, children: Callable[[Hashable], Sequence[Hashable]]) -> Iterator[Hashable]:
    """Yield every node of the tree below ``root``, each after its children.

    ``children(node)`` gives a node's children in the order they are to be
    visited.

    >>> tree = {"root": ["a", "b"], "a": ["c"], "b": [], "c": []}
    >>> list(post_order("root", tree.__getitem__))
    ['c', 'a', 'b', 'root']
    """
    stack: list[tuple[Hashable, bool]] = [(root, False)]
    while stack:
        node, ready = stack.pop()
        below = () if ready else children(node)
        if ready or not below:
            yield node
            continue
        stack.append((node, True))
        stack.extend((child, False) for child in reversed(below))
