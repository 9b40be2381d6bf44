"""The command line: ``chainorder analyze | demo | bench`` (also ``python -m chainorder``).

Errors are one line on stderr and a non-zero exit code, never a traceback.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from ..core.chain import Chain, Layer
from ..core.optimize import optimize, pareto
from ..core.plan import Plan

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
    if args.plan is not None:
        plan = _read_plan(args.plan, chain)
    else:
        plan = optimize(
            chain,
            args.strategy,
            objective=args.objective,
            matrix_free=not args.dense,
            tape_limit=args.tape_limit,
            parallel=True if args.parallel else None,
            memory_limit=args.memory_limit,
        )
    if args.plot:
        path = _write_tradeoff(plan, args.plot)
    if args.json:
        print(plan.to_json())
    else:
        print(plan)
        if args.plot:
            print(f"\nwrote the cost/memory trade-off plot to {path}")


def _read_plan(filename: str, chain: Chain) -> Plan:
    """A plan saved with ``--json`` (or ``Plan.to_json``), checked against ``chain``."""
    try:
        text = Path(filename).read_text()
    except (OSError, UnicodeDecodeError) as error:
        raise CommandError(f"cannot read plan file {filename!r}: {getattr(error, 'strerror', None) or error}") from None
    try:
        return Plan.from_json(text, chain)
    except ValueError as error:
        raise CommandError(f"{filename}: {error}") from None


def _write_tradeoff(plan, filename: str) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .plot import plot_tradeoff

    path = Path(filename)
    front = pareto(plan.chain, objective=plan.objective, matrix_free=plan.matrix_free, tape_limit=plan.tape_limit)
    fig, _ = plot_tradeoff(front, chosen=plan)
    try:
        fig.savefig(path, dpi=110)
    except OSError as error:
        raise CommandError(f"cannot write {str(path)!r}: {error.strerror}") from None
    finally:
        plt.close(fig)
    return path


def _demo(args: argparse.Namespace) -> None:
    """The main job on a built-in example: analyze, execute, validate, time, plot."""
    try:
        import jax
        import jax.numpy as jnp
    except ImportError:
        raise CommandError("the demo runs the plan in JAX: pip install 'chainorder[jax]'") from None
    from .zoo import dense_chain, median_times

    dims = [int(d) for d in args.dims.split(",")]
    print(f"chainorder demo: the Jacobian of a tanh autoencoder {'-'.join(map(str, dims))} (float32)\n")
    functions, x = dense_chain(dims, 0, jnp.float32)
    chain = Chain.from_functions(functions, x)
    plan = optimize(chain)
    print(plan)
    report = plan.validate(x)
    print(
        f"\nagainst jax.jacobian: max abs error {report['max_abs_error']:.2e}, "
        f"max relative error {report['max_rel_error']:.2e}, shape {report['shape']}, {report['dtype']}"
    )
    times = median_times(
        {
            "jax.jacfwd": jax.jit(jax.jacfwd(chain)),
            "jax.jacrev": jax.jit(jax.jacrev(chain)),
            "chainorder": jax.jit(plan.jacobian),
        },
        x,
        args.repeat,
    )
    best = min(times["jax.jacfwd"], times["jax.jacrev"])
    print(f"\nwall time, jitted, median of {args.repeat} runs:")
    for name, seconds in times.items():
        print(f"  {name:<11} {1e3 * seconds:8.3f} ms   {best / seconds:6.2f}x the better of jacfwd/jacrev")
    print(f"  predicted by the cost model: {plan.speedup:.2f}x")
    path = _write_tradeoff(plan, args.out)
    print(f"\nwrote the cost/memory trade-off plot to {path}")


def _bench(args: argparse.Namespace) -> None:
    try:
        from .zoo import format_table, run_zoo
    except ImportError:
        raise CommandError("the benchmark runs plans in JAX: pip install 'chainorder[jax]'") from None

    def progress(done: int, total: int, name: str) -> None:
        if not sys.stderr.isatty():
            return
        width = 24
        filled = width * done // max(total, 1)
        end = "\n" if done == total else ""
        sys.stderr.write(f"\r[{'#' * filled}{'.' * (width - filled)}] {done}/{total} {name:<40}{end}")
        sys.stderr.flush()

    results = run_zoo(args.repeat, args.dtype, args.only, progress)
    print(format_table(results, args.repeat, args.dtype))


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
    analyze.add_argument(
        "--objective", choices=["fma", "critical_path"], default=None, help="what to minimize (default: fma)"
    )
    analyze.add_argument("--parallel", action="store_true", help="= --objective critical_path (unlimited threads)")
    analyze.add_argument("--plan", metavar="PLAN.json", help="print this saved plan (from --json) for the chain")
    analyze.add_argument("--memory-limit", type=int, default=None, help="largest peak memory (elements)")
    analyze.add_argument("--json", action="store_true", help="print the plan as one JSON object")
    analyze.add_argument("--plot", metavar="FILE.png", help="write the cost/memory trade-off plot")
    analyze.set_defaults(run=_analyze)

    demo = commands.add_parser("demo", help="analyze, run, validate and time a bottleneck autoencoder's Jacobian")
    demo.add_argument("--dims", default="1024,512,16,512,1024", help="the autoencoder's widths")
    demo.add_argument("--repeat", type=int, default=20, help="timed runs per method")
    demo.add_argument("--out", default="chainorder-tradeoff.png", help="where to write the trade-off plot")
    demo.set_defaults(run=_demo)

    bench = commands.add_parser("bench", help="the execution benchmark zoo vs jax.jacfwd / jax.jacrev")
    bench.add_argument("--repeat", type=int, default=25)
    bench.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    bench.add_argument("--only", default=None, help="only the chains whose name contains this")
    bench.set_defaults(run=_bench)
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

