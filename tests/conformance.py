"""The reference solver's results: the copy in tests/data (used by default) and the
originals in ../shared/conformance (compared with the copy when that folder exists)."""

from __future__ import annotations

import json
import os
from functools import cache
from pathlib import Path

from chainorder import Chain, Layer

COPY = Path(__file__).resolve().parent / "data" / "reference_solver.json"


def shared_dir() -> Path:
    override = os.environ.get("CHAINORDER_CONFORMANCE")
    if override:
        return Path(override)
    return Path(__file__).resolve().parents[2] / "shared" / "conformance"


@cache
def _copy() -> dict:
    return json.loads(COPY.read_text())


def read_examples() -> list[dict]:
    """The explicit chains with their 'expect' lines: name, layers [(n, m, E)], expect [dict]."""
    return [
        {"name": block["name"], "layers": [tuple(layer) for layer in block["layers"]], "expect": block["expect"]}
        for block in _copy()["examples"]
    ]


def read_acda25() -> list[dict]:
    """The 2,000 random chains: layers, optimum, and per thread count the reference's makespans."""
    return [
        {"layers": [tuple(layer) for layer in layers], "optimum": optimum, "dp_makespan": dp, "bnb_makespan": bnb,
         "bnb_proven": proven}
        for layers, optimum, dp, bnb, proven in _copy()["acda25"]
    ]


def read_shared_examples(folder: Path) -> list[dict]:
    """jcdp_examples.txt as :func:`read_examples` gives the copy."""
    blocks: list[dict] = []
    for raw in (folder / "jcdp_examples.txt").read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        words = line.split()
        if words[0] == "chain":
            blocks.append({"name": words[1], "layers": [], "expect": []})
        elif words[0] == "expect":
            pairs = words[1:]
            blocks[-1]["expect"].append(dict(zip(pairs[::2], map(int, pairs[1::2]))))
        else:
            blocks[-1]["layers"].append(tuple(int(w) for w in words))
    return blocks


def read_shared_acda25(folder: Path) -> list[dict]:
    """acda25_chains.tsv as :func:`read_acda25` gives the copy."""
    lines = (folder / "acda25_chains.tsv").read_text().splitlines()
    body = [line for line in lines if line and not line.startswith("#")]
    header = body[0].split("\t")
    rows = []
    for line in body[1:]:
        row = dict(zip(header, line.split("\t")))
        rows.append(
            {
                "layers": [tuple(int(v) for v in part.split(",")) for part in row["chain"].split(";")],
                "optimum": int(row["optimum"]),
                **{key: [int(v) for v in row[key].split(",")] for key in ("dp_makespan", "bnb_makespan", "bnb_proven")},
            }
        )
    return rows


def chain_of(triples) -> Chain:
    return Chain([Layer(n, m, edges=e) for n, m, e in triples])
