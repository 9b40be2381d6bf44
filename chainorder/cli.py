"""The command line: ``chainorder analyze | demo`` (also ``python -m chainorder``).

Errors are one line on stderr and a non-zero exit code, never a traceback.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from .chain import Chain, Layer
from .optimize import optimize

__all__ = ["main", "read_chain_file"]


class CommandError(Exception):
    """A user error that the CLI prints as one line."""


def read_chain_file(path: str | Path) -> Chain:
    """Read a chain: one layer a line, ``in_dim out_dim edges [tangent_cost adjoint_cost]``,
    ``#`` starts a comment."""
    try:
        text = Path(path).read_text()
    except OSError as error:
        raise CommandError(f"cannot read chain file {str(path)!r}: {error.strerror}") from None
    layers = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        words = line.split()
        if len(words) not in (3, 5):
            raise CommandError(
                f"{path}:{number}: expected 'in_dim out_dim edges [tangent_cost adjoint_cost]', got {line!r}"
            )
        try:
            values = [int(word) for word in words]
        except ValueError:
            raise CommandError(f"{path}:{number}: not an integer in {line!r}") from None
        keys = ("edges", "tangent_cost", "adjoint_cost")
        try:
            layers.append(Layer(values[0], values[1], **dict(zip(keys, values[2:]))))
        except (TypeError, ValueError) as error:
            raise CommandError(f"{path}:{number}: {error}") from None
    if not layers:
        raise CommandError(f"chain file {str(path)!r} has no layers")
    try:
        return Chain(layers)
    except ValueError as error:
        raise CommandError(f"{path}: {error}") from None


def _parse_dims(text: str) -> Chain:
    try:
        dims = [int(word) for word in text.replace(" ", "").split(",") if word]
    except ValueError:
        raise CommandError(f"--dims takes comma-separated integers, got {text!r}") from None
    return Chain.from_dims(dims)


def _analyze(args: argparse.Namespace) -> None:
    if (args.dims is None) == (args.chain is None):
        raise CommandError("give exactly one of --dims or --chain")
    chain = _parse_dims(args.dims) if args.dims is not None else read_chain_file(args.chain)
    plan = optimize(
        chain,
        args.strategy,
        matrix_free=not args.dense,
        tape_limit=args.tape_limit,
        parallel=args.parallel,
    )
    if args.json:
        print(plan.to_json())
    else:
        print(plan)


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="chainorder",
        description="Find (and run) the cheapest way to compute the Jacobian of a function chain.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    analyze = commands.add_parser("analyze", help="print the optimal plan for a chain")
    analyze.add_argument("--dims", help="layer widths, e.g. 784,256,32,256,784 (dense layers)")
    analyze.add_argument(
        "--chain", help="file with one layer a line: in_dim out_dim edges [tangent_cost adjoint_cost]"
    )
    analyze.add_argument("--strategy", default="optimal", choices=["optimal", "forward", "reverse"])
    analyze.add_argument("--tape-limit", type=int, default=None, help="largest tape an adjoint may hold")
    analyze.add_argument("--dense", action="store_true", help="only preaccumulation and dense products")
    analyze.add_argument("--parallel", action="store_true", help="minimize the critical path (unlimited threads)")
    analyze.add_argument("--json", action="store_true", help="print the plan as one JSON object")
    analyze.set_defaults(run=_analyze)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = _build_parser()
    args = parser.parse_args(argv)
    try:
        args.run(args)
    except (CommandError, ValueError, TypeError) as error:
        print(f"chainorder: error: {error}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # pragma: no cover - e.g. `chainorder analyze ... | head`
        return 0
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

