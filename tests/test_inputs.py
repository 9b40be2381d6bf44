"""Bad input, as users give it, on every entry point: one clear line, a non-zero exit, no traceback."""

import json
import subprocess
import sys

import pytest

from chainorder import Chain, Layer, Plan, optimize


def run(*args):
    return subprocess.run([sys.executable, "-m", "chainorder", *args], capture_output=True, text=True, timeout=300)


def _refused(result, *fragments):
    assert result.returncode == 2, result
    assert "Traceback" not in result.stderr and len(result.stderr.splitlines()) <= 8, result.stderr
    for fragment in fragments:
        assert fragment in result.stderr, result.stderr


@pytest.mark.parametrize(
    "dims, fragment",
    [
        ("784 256,32", "entry 1 is '784 256'"),
        ("3,,4", "entry 2 is ''"),
        ("+3,4", "entry 1 is '+3'"),
        ("1_000,4", "entry 1 is '1_000'"),
        ("３,4", "entry 1 is '３'"),
        ("3,0", "entry 2 is '0'"),
        ("7", "at least two widths"),
        (",".join(["5"] * 10_002), "chains of at most 5,000 layers"),
    ],
)
def test_dims_are_strict(dims, fragment):
    _refused(run("analyze", "--dims", dims), fragment)


def test_spaces_around_entries_are_fine():
    assert run("analyze", "--dims", " 784, 256 ,32").returncode == 0


@pytest.mark.parametrize(
    "content, fragment",
    [
        (b"\xff\xfe3\x004\x00", "is not text (it holds NUL bytes"),
        ("3 4 12\n".encode("utf-16"), "is not text"),
        (b"\x89PNG\r\n\x1a\n\xff\xd8", "is not UTF-8 text"),
        (b"7" * 2_000_000, "... (2,000,000 characters)"),
        (b"3 4 12\n5 6 30\n", ":2: layer 1: in_dim 5 does not match layer 0's out_dim 4"),
        (b"3 4 x\n", ":1: 'x' is not an integer"),
        (b"3 4 12 12 12 4 4\n", ":1: layer: tangent_colors 4 is more than its 3 columns"),
    ],
)
def test_chain_files_name_the_file_and_line(tmp_path, content, fragment):
    path = tmp_path / "layers.txt"
    path.write_bytes(content)
    result = run("analyze", "--chain", str(path))
    _refused(result, fragment)
    assert "layers.txt" in result.stderr


def test_a_bom_is_fine(tmp_path):
    path = tmp_path / "layers.txt"
    path.write_bytes("\ufeff3 4 12\n".encode())
    assert run("analyze", "--chain", str(path)).returncode == 0


def test_too_many_layers_in_a_file(tmp_path):
    path = tmp_path / "long.txt"
    path.write_text("5 5 25\n" * 5_001)
    _refused(run("analyze", "--chain", str(path)), "long.txt:5001: more than 5,000 layers")


def test_plot_paths_are_the_written_ones(tmp_path):
    result = run("analyze", "--dims", "30,5,30", "--plot", str(tmp_path / "noext"))
    assert result.returncode == 0 and (tmp_path / "noext.png").exists()
    assert f"plot to {tmp_path / 'noext.png'}" in result.stdout
    _refused(run("analyze", "--dims", "30,5,30", "--plot", ""), "--plot needs a file name")


def test_output_that_cannot_be_written():
    with open("/dev/full", "w") as full:
        result = subprocess.run(
            [sys.executable, "-m", "chainorder", "analyze", "--dims", "784,256,32", "--json"],
            stdout=full,
            stderr=subprocess.PIPE,
            text=True,
            timeout=120,
        )
    _refused(result, "cannot write the output")


def test_demo_and_bench_refuse_bad_options_before_working():
    _refused(run("demo", "--repeat", "0"), "expected an integer >= 1")
    _refused(run("demo", "--dims", "a,b"), "--dims entry 1 is 'a'")
    _refused(run("bench", "--only", "nosuch"), "no chain of the zoo matches --only 'nosuch'; the zoo has: autoencoder")
    _refused(run("analyze", "--dims", "3,4", "--tape-limit", "1_0"), "expected an integer >= 0")


def test_limited_tables_say_which_pure_mode_is_not_allowed():
    out = run("analyze", "--dims", "64,512,1024,128,16,512,256,8", "--memory-limit", "150000").stdout
    assert "pure adjoint; over the memory limit 150,000" in out
    assert "over reverse mode (which is not allowed here; over the memory limit 150,000)" in out
    out = run("analyze", "--dims", "784,256,32,256,784", "--tape-limit", "100000").stdout
    assert "pure adjoint; over the tape limit 100,000" in out


def test_costs_past_floats_print_and_serialize():
    big = 10**400
    chain = Chain([Layer(5, 3, edges=big), Layer(3, 8, edges=17), Layer(8, 2, edges=big + 1)])
    plan = optimize(chain)
    text = str(plan)
    assert "Speedup:" in text and f"{plan.cost:,}" in text
    data = json.loads(plan.to_json())
    assert data["speedup_ratio"] == [min(plan.forward_cost, plan.reverse_cost), plan.cost]
    assert Plan.from_json(plan.to_json(), chain) == plan


def test_python_api_errors_are_clear():
    chain = Chain.from_dims([3, 4])
    with pytest.raises(ValueError, match="step 0: expected a chainorder.Step, got int"):
        Plan(chain, [1])
    with pytest.raises(TypeError, match="in_shape must be a tuple of ints, got 3"):
        Layer(3, 4, in_shape=3)
    with pytest.raises(ValueError, match="plan JSON is malformed"):
        Plan.from_json("[" * 100_000 + "]" * 100_000, chain)
    with pytest.raises(ValueError, match="a chain of 5,001 layers is over the limit of 5,000"):
        optimize(Chain.from_dims([2] * 5_002))
