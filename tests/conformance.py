"""Readers for the reference solver's results in ../shared/conformance/."""

from __future__ import annotations

import os
from pathlib import Path

from chainorder import Chain, Layer


def conformance_dir() -> Path:
    override = os.environ.get("CHAINORDER_CONFORMANCE")
    if override:
        return Path(override)
    return Path(__file__).resolve().parents[2] / "shared" / "conformance"


def read_examples() -> list[dict]:
    """The explicit chains of jcdp_examples.txt with their 'expect' lines."""
    blocks: list[dict] = []
    for raw in (conformance_dir() / "jcdp_examples.txt").read_text().splitlines():
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


def read_acda25() -> list[dict]:
    """The 2,000 random chains of acda25_chains.tsv."""
    rows = []
    lines = (conformance_dir() / "acda25_chains.tsv").read_text().splitlines()
    body = [line for line in lines if line and not line.startswith("#")]
    header = body[0].split("\t")
    for line in body[1:]:
        row = dict(zip(header, line.split("\t")))
        triples = [tuple(int(v) for v in part.split(",")) for part in row["chain"].split(";")]
        rows.append(
            {
                "layers": triples,
                "optimum": int(row["optimum"]),
                "dp_makespan": [int(v) for v in row["dp_makespan"].split(",")],
            }
        )
    return rows


def chain_of(triples) -> Chain:
    return Chain([Layer(n, m, edges=e) for n, m, e in triples])
