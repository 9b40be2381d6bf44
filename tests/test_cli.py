"""The command line, run as a user runs it: a subprocess."""

import json
import subprocess
import sys

import pytest

from chainorder import Chain, Layer, optimize


def run(*args, check=True):
    result = subprocess.run(
        [sys.executable, "-m", "chainorder", *args], capture_output=True, text=True, timeout=300
    )
    if check:
        assert result.returncode == 0, result.stderr
    return result


def test_analyze_prints_the_table():
    out = run("analyze", "--dims", "784,256,32,256,784").stdout
    plan = optimize(Chain.from_dims([784, 256, 32, 256, 784]))
    assert "784 -> 256 -> 32 -> 256 -> 784" in out
    assert f"{plan.cost:,}" in out and f"{plan.forward_cost:,}" in out and f"{plan.speedup:.3g}x" in out


def test_json_matches_the_python_api():
    data = json.loads(run("analyze", "--dims", "784,256,32,256,784", "--tape-limit", "300000", "--json").stdout)
    plan = optimize(Chain.from_dims([784, 256, 32, 256, 784]), tape_limit=300000)
    assert data["dims"] == [784, 256, 32, 256, 784]
    assert (data["forward"], data["reverse"], data["optimal"]) == (plan.forward_cost, plan.reverse_cost, plan.cost)
    assert data["peak_memory"] == plan.peak_memory and data["speedup"] == pytest.approx(plan.speedup)
    assert [(s["kind"], s["first"], s["last"], s["split"], s["cost"]) for s in data["steps"]] == [
        (s.kind, s.first, s.last, s.split, s.cost) for s in plan.steps
    ]


def test_chain_file_and_options(tmp_path):
    path = tmp_path / "layers.txt"
    path.write_text("# in out edges [tangent adjoint]\n168 56 63834\n56 195 44366 44366 88732  # costly adjoint\n")
    chain = Chain([Layer(168, 56, edges=63834), Layer(56, 195, edges=44366, adjoint_cost=88732)])
    for flags, options in [
        ([], {}),
        (["--dense"], {"matrix_free": False}),
        (["--parallel"], {"parallel": True}),
        (["--strategy", "reverse"], {"strategy": "reverse"}),
        (["--memory-limit", "200000"], {"memory_limit": 200000}),
    ]:
        data = json.loads(run("analyze", "--chain", str(path), "--json", *flags).stdout)
        assert data["optimal"] == optimize(chain, **options).cost
    # auto: the free memory of the device JAX runs on, in --dtype elements, as chainorder.jacobian takes it
    from chainorder.backend.devices import available_bytes

    data = json.loads(run("analyze", "--chain", str(path), "--json", "--memory-limit", "auto").stdout)
    assert data["memory_limit"] > 0 and abs(data["memory_limit"] * 4 - available_bytes()) < 0.25 * available_bytes()
    # a sparse layer: its columns' and rows' colors after the costs
    path.write_text("400 400 4000 4000 4000 3 3  # a band\n400 400 160000\n")
    sparse = Chain([Layer(400, 400, edges=4000, tangent_colors=3, adjoint_colors=3), Layer(400, 400)])
    optimal = json.loads(run("analyze", "--chain", str(path), "--json").stdout)["optimal"]
    assert optimal == optimize(sparse).cost == 64_012_000


def test_plot_writes_a_png(tmp_path):
    target = tmp_path / "tradeoff.png"
    out = run("analyze", "--dims", "64,512,1024,128,16,512,256,8", "--plot", str(target)).stdout
    assert target.read_bytes()[:4] == b"\x89PNG" and str(target) in out


@pytest.mark.parametrize(
    "args, words",
    [
        (["analyze", "--dims", "784,0,10"], "--dims entry 2 is '0', not a positive integer"),
        (["analyze", "--dims", "784,x"], "--dims entry 2 is 'x', not a positive integer"),
        (["analyze", "--dims", "5"], "at least two widths"),
        (["analyze"], "give exactly one of --dims or --chain"),
        (["analyze", "--chain", "/no/such/file"], "cannot read chain file"),
        (["analyze", "--dims", "784,256,32,256,784", "--memory-limit", "10"], "least achievable peak memory is"),
        (["analyze", "--dims", "784,256,784", "--tape-limit", "-1"], "expected an integer >= 0, got '-1'"),
        (["analyze", "--dims", "784,256,784", "--plot", "/no/such/dir/x.png"], "cannot write"),
    ],
)
def test_errors_are_one_line(args, words):
    result = run(*args, check=False)
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and words in lines[0] and "Traceback" not in result.stderr


def test_malformed_chain_files(tmp_path):
    cases = {
        "3 4\n": "expected 'in_dim out_dim edges",
        "3 4 x\n": "not an integer",
        "3 4 12\n5 2 10\n": "layer 1: in_dim 5 does not match layer 0's out_dim 4",
        "# nothing\n": "has no layers",
        "3 4 -2\n": "edges must be >= 0",
    }
    for text, words in cases.items():
        path = tmp_path / "chain.txt"
        path.write_text(text)
        result = run("analyze", "--chain", str(path), check=False)
        assert result.returncode != 0 and words in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_demo_runs_the_main_job(tmp_path):
    target = tmp_path / "demo.png"
    out = run("demo", "--dims", "256,128,8,128,256", "--repeat", "3", "--out", str(target)).stdout
    for words in ("Forward cost", "Reverse cost", "Plan cost", "against jax.jacobian", "jax.jacfwd", "chainorder"):
        assert words in out
    assert target.read_bytes()[:4] == b"\x89PNG"


def test_bench_prints_its_table():
    out = run("bench", "--only", "forward-optimal", "--repeat", "2").stdout
    assert "forward-optimal 8-256-512-1024" in out and "jacfwd ms" in out


def test_a_saved_plan_is_read_back_and_checked(tmp_path):
    path = tmp_path / "plan.json"
    path.write_text(run("analyze", "--dims", "784,256,32,256,784", "--parallel", "--json").stdout)
    again = json.loads(run("analyze", "--dims", "784,256,32,256,784", "--plan", str(path), "--json").stdout)
    assert again == json.loads(path.read_text())
    assert again["objective"] == "critical_path"
    other = run("analyze", "--dims", "784,256,32,256,785", "--plan", str(path), check=False)
    assert other.returncode == 2 and "belongs to another chain: layer 3 differs (out_dim 784 vs 785" in other.stderr
    assert "Traceback" not in other.stderr


def test_explicit_option_writes_the_layers_jacobians_directly():
    data = json.loads(run("analyze", "--dims", "256,256,256,256", "--explicit", "--json").stdout)
    chain = Chain([Layer(256, 256, explicit=True) for _ in range(3)])
    # layer 0 written (256 * 256), its 256 columns pushed through the other two (256 * 2 * 256 * 256)
    assert data["optimal"] == optimize(chain).cost == 256 * 256 + 2 * 256**3
    assert data["forward"] == 3 * 256**3
    out = run("analyze", "--dims", "256,256,256,256", "--explicit").stdout
    assert "Explicit layers: 0, 1, 2" in out and "tangent preacc., explicit" in out


def test_objective_option():
    data = json.loads(run("analyze", "--dims", "784,256,32,256,784", "--objective", "critical_path", "--json").stdout)
    assert data["optimal"] == optimize(Chain.from_dims([784, 256, 32, 256, 784]), parallel=True).cost


def test_threads_option_prints_and_saves_the_schedule(tmp_path):
    dims = "300,120,12,120,16,140,300"
    chain = Chain.from_dims([int(d) for d in dims.split(",")])
    plan = optimize(chain, threads=3)
    picture = tmp_path / "schedule.png"
    out = run("analyze", "--dims", dims, "--threads", "3", "--plot", str(picture)).stdout
    assert f"Makespan:         {plan.makespan:,} FMAs on 3 threads (proven optimal)" in out
    assert "wrote the schedule (Gantt chart)" in out and picture.stat().st_size > 10_000
    saved = tmp_path / "plan.json"
    saved.write_text(run("analyze", "--dims", dims, "--threads", "3", "--json").stdout)
    data = json.loads(saved.read_text())
    assert data["schedule"] == [list(slot) for slot in plan.schedule] and data["proven"] is True
    again = json.loads(run("analyze", "--dims", dims, "--plan", str(saved), "--json").stdout)
    assert again["schedule"] == data["schedule"]
    bad = run("analyze", "--dims", dims, "--objective", "makespan", check=False)
    assert bad.returncode == 2 and "needs the number of threads" in bad.stderr


def test_bench_sparse_prints_the_sparse_zoo():
    out = run("bench", "--sparse", "--only", "PDE residual 40", "--repeat", "2").stdout
    row = [line for line in out.splitlines() if line.startswith("PDE residual 40x40")]
    assert len(row) == 1
    fields = row[0].split()
    assert fields[3:6] == ["0.0028", "5", "5"]  # density, colors (the lower bound since the interchange), bound
    bad = run("bench", "--sparse", "--only", "nothing", check=False)
    assert bad.returncode == 2 and "no function of the sparse zoo matches" in bad.stderr
