"""What users type and write: ``--dims`` lists, chain files, saved plans, output paths.

Every reader raises :class:`InputError` with one line that names the input (the
file and line where there is one) and what is wrong with it; echoed text is
shortened, never a megabyte long.
"""

from __future__ import annotations

import re
from pathlib import Path

from ..core.chain import Chain
from ..core.checks import MAX_LAYERS
from ..core.layer import Layer
from ..core.plan import Plan

__all__ = ["InputError", "parse_dims", "read_chain_file", "read_plan_file", "png_path"]

_INTEGER = re.compile(r"[0-9]+")  # ASCII digits only: no sign, no underscores, no other scripts' digits
_SIGNED = re.compile(r"-?[0-9]+")  # in chain files a minus reaches Layer, which says what must be >= 0
_MAX_FILE_BYTES = 64 * 2**20


class InputError(Exception):
    """A user error that the command line prints as one line."""


def _shown(text: str, limit: int = 60) -> str:
    """``text`` quoted, and cut to ``limit`` characters."""
    return repr(text) if len(text) <= limit else repr(text[:limit]) + f"... ({len(text):,} characters)"


def parse_dims(text: str, option: str = "--dims") -> list[int]:
    """``"784,256,32"`` -> ``[784, 256, 32]``; spaces around an entry are allowed, nothing else.

    >>> parse_dims(" 784, 256,32")
    [784, 256, 32]
    >>> parse_dims("784 256,32")
    Traceback (most recent call last):
    ...
    chainorder.front.inputs.InputError: --dims entry 1 is '784 256', not a positive integer (comma-separated widths)
    """
    words = [word.strip() for word in text.split(",")]
    if len(words) - 1 > MAX_LAYERS:
        raise InputError(f"{option} has {len(words):,} entries; chains of at most {MAX_LAYERS:,} layers are optimized")
    for index, word in enumerate(words, start=1):
        if not _INTEGER.fullmatch(word) or int(word) == 0:
            raise InputError(
                f"{option} entry {index} is {_shown(word)}, not a positive integer (comma-separated widths)"
            )
    if len(words) < 2:
        raise InputError(f"{option} needs at least two widths (input and output), got {_shown(text)}")
    return [int(word) for word in words]


def _read_text(path: str | Path, what: str) -> str:
    path = Path(path)
    try:
        if path.stat().st_size > _MAX_FILE_BYTES:
            raise InputError(f"{what} {str(path)!r} is {path.stat().st_size / 2**20:.0f} MiB; the limit is 64 MiB")
        data = path.read_bytes()
    except OSError as error:
        raise InputError(f"cannot read {what} {str(path)!r}: {error.strerror}") from None
    if b"\0" in data:
        raise InputError(f"{what} {str(path)!r} is not text (it holds NUL bytes; UTF-16 or binary?)")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise InputError(f"{what} {str(path)!r} is not UTF-8 text (byte {error.start:,})") from None


_LINE = "in_dim out_dim edges [tangent_cost adjoint_cost [tangent_colors adjoint_colors]]"


def _layer_line(path: str | Path, number: int, line: str) -> Layer:
    words = line.split()
    if len(words) not in (3, 5, 7):
        raise InputError(f"{path}:{number}: expected '{_LINE}', got {_shown(line)}")
    for word in words:
        if not _SIGNED.fullmatch(word):
            raise InputError(f"{path}:{number}: {_shown(word)} is not an integer")
    values = [int(word) for word in words]
    try:
        names = ("edges", "tangent_cost", "adjoint_cost", "tangent_colors", "adjoint_colors")
        return Layer(values[0], values[1], **dict(zip(names, values[2:])))
    except (TypeError, ValueError) as error:
        raise InputError(f"{path}:{number}: {error}") from None


def read_chain_file(path: str | Path) -> Chain:
    """Read a chain: one layer a line, ``in_dim out_dim edges [tangent_cost adjoint_cost
    [tangent_colors adjoint_colors]]`` (colors: the JVPs and VJPs that preaccumulate a sparse
    layer); ``#`` starts a comment.

    Parameters
    ----------
    path : str or Path

    Returns
    -------
    Chain

    Raises
    ------
    InputError
        Naming the file and line: unreadable, not UTF-8 text, a malformed line, dims that do
        not connect, or more than :data:`chainorder.core.checks.MAX_LAYERS` layers.
    """
    layers = []
    for number, raw in enumerate(_read_text(path, "chain file").splitlines(), start=1):
        line = raw.split("#", 1)[0].strip()
        if line:
            layer = _layer_line(path, number, line)
            if layers and layer.in_dim != layers[-1].out_dim:
                raise InputError(
                    f"{path}:{number}: layer {len(layers)}: in_dim {layer.in_dim} does not match layer "
                    f"{len(layers) - 1}'s out_dim {layers[-1].out_dim}"
                )
            layers.append(layer)
            if len(layers) > MAX_LAYERS:
                raise InputError(f"{path}:{number}: more than {MAX_LAYERS:,} layers; longer chains are not optimized")
    if not layers:
        raise InputError(f"chain file {str(path)!r} has no layers")
    try:
        return Chain(layers)
    except ValueError as error:
        raise InputError(f"{path}: {error}") from None


def read_plan_file(path: str | Path, chain: Chain) -> Plan:
    """A plan saved with ``--json`` (or :meth:`Plan.to_json`), checked against ``chain``."""
    text = _read_text(path, "plan file")
    try:
        return Plan.from_json(text, chain)
    except ValueError as error:
        raise InputError(f"{path}: {error}") from None


def png_path(name: str) -> Path:
    """Where ``--plot NAME`` writes: ``NAME``, with ``.png`` added when it has no extension.

    >>> str(png_path("tradeoff")), str(png_path("out/plot.png"))
    ('tradeoff.png', 'out/plot.png')
    """
    if not name.strip():
        raise InputError("--plot needs a file name, e.g. --plot tradeoff.png")
    path = Path(name)
    return path if path.suffix else path.with_name(path.name + ".png")
