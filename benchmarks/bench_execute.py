"""The execution zoo (chainorder.bench): the optimal plan vs jax.jacfwd / jax.jacrev in wall time.

Run: python benchmarks/bench_execute.py [--repeat 25] [--dtype float32|float64] [--only NAME]
(the same as `chainorder bench`).
"""

from chainorder.bench import main

if __name__ == "__main__":
    main()
