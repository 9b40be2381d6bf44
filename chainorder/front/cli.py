"""The command line: ``chainorder analyze | demo | bench | calibrate`` (also ``python -m chainorder``).

Errors are one line on stderr and a non-zero exit code, never a traceback;
warnings (such as "no measured machine profile") are one line on stderr too.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path

from ..core.chain import Chain
from ..core.layer import OP_FAMILIES
from ..core.optimize import optimize, pareto
from ..core.steps import Objective
from .inputs import InputError, parse_dims, png_path, read_chain_file, read_plan_file

__all__ = ["main"]


def _analyze(args: argparse.Namespace) -> None:
    if (args.dims is None) == (args.chain is None):
        raise InputError("give exactly one of --dims or --chain")
    chain = Chain.from_dims(parse_dims(args.dims)) if args.dims is not None else read_chain_file(args.chain)
    if args.explicit:
        chain = Chain(dataclasses.replace(layer, explicit=True) for layer in chain)
    if args.plan is not None:
        plan = read_plan_file(args.plan, chain)
    else:
        plan = optimize(
            chain,
            args.strategy,
            objective=args.objective,
            matrix_free=not args.dense,
            tape_limit=args.tape_limit,
            parallel=True if args.parallel else None,
            memory_limit=_memory_limit(args),
            dtype=args.dtype,
            threads=args.threads,
            time_limit=args.time_limit,
        )
    if args.plot is not None:
        path = _write_plot(plan, args.plot)
    if args.json:
        print(plan.to_json())
    else:
        print(plan)
        if args.plot is not None:
            what = "schedule (Gantt chart)" if plan.threads is not None else "cost/memory trade-off plot"
            print(f"\nwrote the {what} to {path}")


def _memory_limit(args: argparse.Namespace):
    """``--memory-limit``, ``auto`` replaced by the free memory of the device JAX runs on, in ``--dtype``
    elements (:func:`chainorder.backend.devices.resolve_budget`, as ``chainorder.jacobian`` takes it)."""
    if not (isinstance(args.memory_limit, str) and args.memory_limit.strip().lower() == "auto"):
        return args.memory_limit
    import jax.numpy as jnp

    from ..backend.devices import resolve_budget

    return resolve_budget({"memory_limit": "auto"}, jnp.dtype(args.dtype))["memory_limit"]


def _write_plot(plan, filename: str) -> Path:
    """The trade-off plot, or a scheduled plan's Gantt chart, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .plot import plot_schedule, plot_tradeoff

    path = png_path(filename)
    if plan.threads is not None:
        fig, _ = plot_schedule(plan)
    else:
        objective = Objective.FMA if plan.objective is Objective.TIME else plan.objective  # the front is in FMAs
        front = pareto(plan.chain, objective=objective, matrix_free=plan.matrix_free, tape_limit=plan.tape_limit)
        limited = plan.memory_limit is not None
        fig, _ = plot_tradeoff(front, chosen=plan, budget=plan.memory_limit, blocks=limited, chunks=limited)
    try:
        fig.savefig(path, dpi=110, format="png")
    except OSError as error:
        raise InputError(f"cannot write {str(path)!r}: {error.strerror}") from None
    finally:
        plt.close(fig)
    return path


def _demo(args: argparse.Namespace) -> None:
    """The main job on a built-in example: analyze, execute, validate, time, plot."""
    try:
        import jax
        import jax.numpy as jnp
    except ImportError:
        raise InputError("the demo runs the plan in JAX: pip install 'chainorder[jax]'") from None
    from ..backend.xlaoptions import plan_compiler_options
    from .zoo import dense_chain, median_times

    dims = parse_dims(args.dims)
    functions, x = dense_chain(dims, 0, jnp.float32)
    chain = Chain.from_functions(functions, x)
    print(
        f"chainorder demo: the Jacobian of a tanh network with widths {'-'.join(map(str, dims))} and a sin layer "
        f"after every third (float32): the chain {' -> '.join(map(str, chain.dims))}\n"
    )
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
            "chainorder": jax.jit(plan.jacobian, compiler_options=plan_compiler_options(plan)),
        },
        x,
        args.repeat,
    )
    best = min(times["jax.jacfwd"], times["jax.jacrev"])
    print(f"\nwall time, jitted, median of {args.repeat} runs:")
    for name, seconds in times.items():
        print(f"  {name:<11} {1e3 * seconds:8.3f} ms   {best / seconds:6.2f}x the better of jacfwd/jacrev")
    print(f"  predicted by the cost model (FMAs): {plan.speedup:.2f}x")
    print(
        f"  predicted by the time model:      {plan.predicted_speedup:.2f}x "
        f"({1e3 * plan.predicted_time:.3f} ms on {plan.machine.device_kind})"
    )
    path = _write_plot(plan, args.out)
    print(f"\nwrote the cost/memory trade-off plot to {path}")


def _bench(args: argparse.Namespace) -> None:
    try:
        from .zoo import ZOO, format_table, run_zoo
    except ImportError:
        raise InputError("the benchmark runs plans in JAX: pip install 'chainorder[jax]'") from None

    def progress(done: int, total: int, name: str) -> None:
        if not sys.stderr.isatty():
            return
        width = 24
        filled = width * done // max(total, 1)
        end = "\n" if done == total else ""
        sys.stderr.write(f"\r[{'#' * filled}{'.' * (width - filled)}] {done}/{total} {name:<40}{end}")
        sys.stderr.flush()

    if args.sparse:
        _bench_sparse(args, progress)
        return
    names = [name for name in ZOO if not args.only or args.only in name]
    if not names:
        raise InputError(f"no chain of the zoo matches --only {args.only!r}; the zoo has: {', '.join(ZOO)}")
    results = run_zoo(args.repeat, args.dtype, args.only, progress)
    print(format_table(results, args.repeat, args.dtype))


def _bench_sparse(args: argparse.Namespace, progress) -> None:
    from .sparsezoo import format_sparse_table, run_sparse, sparse_cases

    names = [name for name, _, _ in sparse_cases()]
    if args.only and not any(args.only in name for name in names):
        raise InputError(f"no function of the sparse zoo matches --only {args.only!r}; it has: {', '.join(names)}")
    if args.dtype != "float32":
        raise InputError("--sparse runs in float32 only")
    print(format_sparse_table(run_sparse(args.repeat, args.only, progress), args.repeat))


def _calibrate(args: argparse.Namespace) -> None:
    try:
        from ..backend.calibration import calibrate, profile_path
    except ImportError:
        raise InputError("calibrating times JAX on this machine: pip install 'chainorder[jax]'") from None
    profile = calibrate(save=not args.no_save, repeat=args.repeat)
    rates = ", ".join(f"d={d}: {rate / 1e9:.3g}" for d, rate in zip(profile.gemm_dims, profile.gemm_rates))
    print(f"machine profile of {profile.platform} ({profile.device_kind}), jax {profile.jax_version}")
    print(f"  GEMM GFMA/s by smallest side  {rates}")
    print(f"  bandwidth                     {profile.bandwidth / 1e9:.3g} GB/s")
    writes = ", ".join(
        f"from {size / 2**20:.3g} MiB: {profile.bandwidth / factor / 1e9:.3g}"
        for size, factor in zip(profile.write_sizes, profile.write_factors)
        if factor != 1.0
    )
    print(f"  a fresh result block, GB/s    {writes or 'at the bandwidth, any size'}")
    print(f"  fixed cost per step           {profile.step_overhead * 1e6:.3g} us")
    print(
        f"  fixed cost per layer          {profile.tangent_overhead * 1e6:.3g} us (JVP) / "
        f"{profile.adjoint_overhead * 1e6:.3g} us (VJP) / {profile.primal_overhead * 1e6:.3g} us (primal pass)"
    )
    factors = ", ".join(
        f"{seeds} seeds: {tangent:.3g}/{adjoint:.3g}" if len(profile.mode_dims) > 1 else f"{tangent:.3g}/{adjoint:.3g}"
        for seeds, tangent, adjoint in zip(profile.mode_dims, profile.tangent_factors, profile.adjoint_factors)
    )
    print(f"  JVP/VJP time per FMA (x GEMM) {factors}")
    for family, what in OP_FAMILIES.items():
        table = zip(*(getattr(profile, f"{family}_{name}") for name in ("dims", "tangent_factors", "adjoint_factors")))
        factors = ", ".join(f"{seeds} seeds: {tangent:.3g}/{adjoint:.3g}" for seeds, tangent, adjoint in table)
        print(f"  {what + ' FMA (x dense)':<29} {factors} (JVP/VJP)")
    if not args.no_save:
        print(f"saved to {profile_path()}; plans now predict their times with it")


def _count(text: str, minimum: int = 0) -> int:
    """An argparse type: an integer >= ``minimum`` in ASCII digits (no sign, no underscores)."""
    word = text.strip()
    if not (word.isascii() and word.isdigit()) or int(word) < minimum:
        raise argparse.ArgumentTypeError(f"expected an integer >= {minimum}, got {text[:40]!r}")
    return int(word)


def _positive(text: str) -> int:
    return _count(text, 1)


def _budget(text: str) -> int | str:
    """An argparse type: elements in ASCII digits, or bytes with a unit (checked by the optimizer)."""
    word = text.strip()
    return _positive(word) if word.isascii() and word.isdigit() else word


class _Parser(argparse.ArgumentParser):
    """Usage errors as one line, like every other error."""

    def error(self, message: str):  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="chainorder",
        description="Find (and run) the cheapest way to compute the Jacobian of a function chain.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    analyze = commands.add_parser("analyze", help="print the optimal plan for a chain")
    analyze.add_argument("--dims", help="layer widths, e.g. 784,256,32,256,784 (dense layers)")
    analyze.add_argument(
        "--chain",
        help="file with one layer a line: in_dim out_dim edges "
        "[tangent_cost adjoint_cost [tangent_colors adjoint_colors]]",
    )
    analyze.add_argument("--strategy", default="optimal", choices=["optimal", "forward", "reverse"])
    analyze.add_argument("--tape-limit", type=_count, default=None, help="largest tape an adjoint may hold")
    analyze.add_argument("--dense", action="store_true", help="only preaccumulation and dense products")
    analyze.add_argument(
        "--explicit",
        action="store_true",
        help="every layer is affine, then elementwise (s(Wx+b)): its Jacobian may be written directly, in_dim*out_dim",
    )
    analyze.add_argument(
        "--objective",
        choices=[objective.value for objective in Objective],
        default=None,
        help="what to minimize: FMAs (default), the critical path, predicted time on this machine's profile, "
        "or the makespan (set by --threads)",
    )
    analyze.add_argument("--parallel", action="store_true", help="= --objective critical_path (unlimited threads)")
    analyze.add_argument(
        "--threads",
        type=_positive,
        default=None,
        help="minimize the makespan on this many threads (devices); the plan carries its schedule",
    )
    analyze.add_argument(
        "--time-limit",
        type=float,
        default=10.0,
        help="seconds the --threads search may take (then: the best found, not proven optimal)",
    )
    analyze.add_argument("--plan", metavar="PLAN.json", help="print this saved plan (from --json) for the chain")
    analyze.add_argument(
        "--memory-limit",
        type=_budget,
        default=None,
        help="largest peak memory: elements (an integer) or bytes with a unit (512MB, 2GiB), counted in --dtype; "
        "auto: the free memory of the device JAX runs on",
    )
    analyze.add_argument(
        "--dtype",
        default="float32",
        choices=["bfloat16", "float16", "float32", "float64"],
        help="the Jacobian's dtype, for a --memory-limit in bytes (default float32)",
    )
    analyze.add_argument("--json", action="store_true", help="print the plan as one JSON object")
    analyze.add_argument(
        "--plot", metavar="FILE.png", help="write the cost/memory trade-off plot (with --threads: the schedule)"
    )
    analyze.set_defaults(run=_analyze)

    demo = commands.add_parser("demo", help="analyze, run, validate and time a bottleneck autoencoder's Jacobian")
    demo.add_argument("--dims", default="1024,512,16,512,1024", help="the autoencoder's widths")
    demo.add_argument("--repeat", type=_positive, default=20, help="timed runs per method")
    demo.add_argument("--out", default="chainorder-tradeoff.png", help="where to write the trade-off plot")
    demo.set_defaults(run=_demo)

    bench = commands.add_parser("bench", help="the execution benchmark zoo vs jax.jacfwd / jax.jacrev")
    bench.add_argument("--repeat", type=_positive, default=25)
    bench.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    bench.add_argument("--only", default=None, help="only the chains whose name contains this")
    bench.add_argument(
        "--sparse", action="store_true", help="the sparse zoo (batched, elementwise, PDE residuals) instead"
    )
    bench.set_defaults(run=_bench)

    calibrate = commands.add_parser("calibrate", help="measure this machine's profile for predicted times (~10 s)")
    calibrate.add_argument("--repeat", type=_positive, default=15, help="timings per measurement (median kept)")
    calibrate.add_argument("--no-save", action="store_true", help="print the profile without saving it")
    calibrate.set_defaults(run=_calibrate)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = _build_parser()
    args = parser.parse_args(argv)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("default")
            args.run(args)
        sys.stdout.flush()
        for warning in caught:
            print(f"chainorder: warning: {str(warning.message).removeprefix('chainorder: ')}", file=sys.stderr)
    except BrokenPipeError:  # pragma: no cover - e.g. `chainorder analyze ... | head`
        _discard_stdout()
        return 0
    except (InputError, ValueError, TypeError, MemoryError) as error:
        print(f"chainorder: error: {error}", file=sys.stderr)
        return 2
    except OSError as error:  # the output could not be written (a full disk, /dev/full)
        _discard_stdout()
        print(f"chainorder: error: cannot write the output: {error.strerror or error}", file=sys.stderr)
        return 2
    return 0


def _discard_stdout() -> None:
    """Point stdout at /dev/null, so that the interpreter's last flush does not fail again."""
    try:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    except (OSError, ValueError):  # pragma: no cover - no file descriptor behind stdout
        pass


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
