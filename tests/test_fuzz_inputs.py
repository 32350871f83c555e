"""Fuzz the chip and experiment YAML readers: never a traceback, every refusal names the file.

A seeded mutator changes the shipped files (``configs/chips/*.yaml``,
``configs/experiments/default.yaml``): keys deleted, duplicated, renamed; values retyped
(int → str, str → list, huge, negative, NaN, null, bool, a mapping); the text truncated, lines
dropped or repeated, re-encoded (UTF-16, Latin-1), aliases, anchors and tags inserted.

Chips go through ``hwsim chip validate FILE``; experiments through
``hwsim compare --experiment FILE --out D --epochs 0``, which loads and validates the whole
experiment (chips included) and is then refused for ``--epochs 0`` before anything trains or is
written. Either way the CLI must exit 0 or 2 (never a traceback), a refusal must name the file
(or, for a valid experiment, the ``--epochs`` option), and ``D`` must not exist afterwards.

The default run checks :data:`DEFAULT_MUTANTS` mutants; ``-m slow`` runs :data:`SLOW_MUTANTS`.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from hwsim.cli import main
from hwsim.core.resources import CHIPS_DIR, DEFAULT_EXPERIMENT

DEFAULT_MUTANTS = 300
SLOW_MUTANTS = 3000
SOURCES = [*sorted(CHIPS_DIR.glob("*.yaml")), DEFAULT_EXPERIMENT]

# --- data-level mutations: change the parsed document, dump it back ---------------------------


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix]
    if isinstance(node, dict):
        for k, v in node.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            out += _paths(v, (*prefix, i))
    return out


def _parent(doc: Any, path: tuple[Any, ...]) -> Any:
    for p in path[:-1]:
        doc = doc[p]
    return doc


def _retype(rng: random.Random, value: Any) -> Any:
    choices: list[Any] = [
        None,
        math.nan,
        math.inf,
        -1,
        0,
        -(10**30),
        10**30,
        2**64 + 1,
        1e308,
        True,
        "",
        "x" * rng.randint(1, 300),
        [value],
        {"k": value},
        [],
        {},
        "../../escape",
    ]
    if isinstance(value, bool):
        choices += ["yes", 1]
    elif isinstance(value, int):
        choices += [str(value), float(value), -value, value * 10**6]
    elif isinstance(value, float):
        choices += [str(value), -value, value * 1e12, int(value) if math.isfinite(value) else 0]
    elif isinstance(value, str):
        choices += [[value], value.upper(), value + "x", 7]
    return rng.choice(choices)


def _mutate_data(rng: random.Random, doc: Any) -> Any:
    paths = [p for p in _paths(doc) if p]
    if not paths:
        return _retype(rng, doc)
    path = rng.choice(paths)
    parent = _parent(doc, path)
    key = path[-1]
    kind = rng.choice(["delete", "retype", "retype", "rename", "duplicate_value"])
    if kind == "delete":
        del parent[key]
    elif kind == "retype":
        parent[key] = _retype(rng, parent[key])
    elif kind == "rename" and isinstance(parent, dict):
        new = rng.choice([f"{key}_x", str(key).upper(), 3, "", f" {key}"])
        parent[new] = parent.pop(key)
    elif isinstance(parent, list):
        parent.append(parent[key])
    elif isinstance(parent, dict):
        parent[f"{key}_copy"] = parent[key]
    return doc


# --- text-level mutations ----------------------------------------------------------------------


def _lines_op(rng: random.Random, text: str) -> str:
    rows = text.splitlines(keepends=True)
    i = rng.randrange(len(rows))
    op = rng.choice(["drop", "repeat", "indent", "dedent", "swap"])
    if op == "drop":
        del rows[i]
    elif op == "repeat":  # a duplicated key, most of the time
        rows.insert(i, rows[i])
    elif op == "indent":
        rows[i] = "  " + rows[i]
    elif op == "dedent":
        rows[i] = rows[i].lstrip()
    else:
        j = rng.randrange(len(rows))
        rows[i], rows[j] = rows[j], rows[i]
    return "".join(rows)


def _value_lines(text: str) -> list[int]:
    rows = text.splitlines()
    return [i for i, r in enumerate(rows) if ": " in r and not r.lstrip().startswith("#")]


def _insert(rng: random.Random, text: str, make: Callable[[str], str]) -> str:
    rows = text.splitlines(keepends=True)
    candidates = _value_lines(text)
    if not candidates:
        return text + make("null") + "\n"
    i = rng.choice(candidates)
    head, _, value = rows[i].partition(": ")
    rows[i] = f"{head}: {make(value.rstrip())}\n"
    return "".join(rows)


_TAGS = [
    "!!python/object/apply:os.system ['true']",
    "!!python/name:os.system",
    "!foo bar",
    "!!binary aGk=",
    "!!set {a: null}",
    "!!int abc",
    "!!float x",
    "!!timestamp 2024-13-45",
    "!!str 5",
]


def _text_mutation(rng: random.Random, text: str) -> bytes:
    kind = rng.choice(
        ["truncate", "truncate", "lines", "lines", "alias", "tag", "encode", "junk", "deep"]
    )
    if kind == "truncate":
        return text[: rng.randrange(len(text) + 1)].encode()
    if kind == "lines":
        return _lines_op(rng, text).encode()
    if kind == "alias":
        make = rng.choice(
            [
                lambda v: f"&a {v}",  # an anchor alone is harmless...
                lambda v: "*nowhere",
                lambda v: "&a [*a]",
                lambda v: f"&a {v}\nbomb: [*a, *a, *a, *a]",
            ]
        )
        return _insert(rng, text, make).encode()
    if kind == "tag":
        return _insert(rng, text, lambda v: rng.choice(_TAGS)).encode()
    if kind == "encode":
        encoding = rng.choice(["utf-16", "utf-16-le", "utf-32", "latin-1"])
        return _insert(rng, text, lambda v: "café").encode(encoding, errors="replace")
    if kind == "deep":
        depth = rng.choice([50, 150, 3000])
        return _insert(rng, text, lambda v: "[" * depth + "]" * depth).encode()
    raw = bytearray(text.encode())
    for _ in range(rng.randint(1, 4)):
        raw.insert(rng.randrange(len(raw) + 1), rng.choice([0x00, 0x07, 0x80, 0xFF, 0x1B, 0x7B]))
    return bytes(raw)


def mutant(rng: random.Random, source: Path) -> bytes:
    """One mutant of ``source``: a data-level change (dumped back) or a text-level one."""
    text = source.read_text(encoding="utf-8")
    if rng.random() < 0.5:
        doc = yaml.safe_load(text)
        for _ in range(rng.randint(1, 3)):
            doc = _mutate_data(rng, doc)
        try:
            return yaml.safe_dump(doc, sort_keys=False, allow_unicode=True).encode()
        except (yaml.YAMLError, ValueError, OverflowError):
            return text.encode()
    return _text_mutation(rng, text)


# --- the checks --------------------------------------------------------------------------------


def _check(runner: CliRunner, source: Path, path: Path, out: Path) -> int:
    experiment = source == DEFAULT_EXPERIMENT
    if experiment:
        args = ["compare", "--quiet", "--experiment", str(path), "--out", str(out), "--epochs", "0"]
    else:
        args = ["chip", "validate", str(path)]
    result = runner.invoke(main, args)
    context = f"{source.name} mutant {path.name}:\n{result.output[-2000:]}"
    assert result.exception is None or isinstance(result.exception, SystemExit), (
        f"traceback from {context}\n{result.exc_info}"
    )
    assert result.exit_code in (0, 2), context
    if experiment:
        assert result.exit_code == 2, context  # --epochs 0 is refused, if nothing else is
        assert str(path) in result.output or "--epochs 0: expected" in result.output, context
        assert not out.exists(), context
    elif result.exit_code == 2:
        # a chip that extends another may inherit the bad value: then its parent's file is named
        parents = [
            str(CHIPS_DIR / p.name)
            for p in SOURCES
            if f"extends: {p.stem}" in (source.read_text(encoding="utf-8"))
        ]
        assert any(f in result.output for f in (str(path), *parents)), context
    return int(result.exit_code)


def _fuzz(tmp_path: Path, count: int, seed: int) -> dict[str, int]:
    rng = random.Random(seed)
    runner = CliRunner()
    tally = {"cases": 0, "accepted": 0, "refused": 0}
    for n in range(count):
        source = SOURCES[n % len(SOURCES)] if n < len(SOURCES) else rng.choice(SOURCES)
        path = tmp_path / f"m{n:05d}.yaml"
        path.write_bytes(mutant(rng, source))
        code = _check(runner, source, path, tmp_path / f"out{n:05d}")
        tally["cases"] += 1
        tally["refused" if code == 2 else "accepted"] += 1
    return tally


def test_fuzz_chip_and_experiment_yaml(tmp_path):
    start = time.monotonic()
    tally = _fuzz(tmp_path, DEFAULT_MUTANTS, seed=20261127)
    assert tally["cases"] == DEFAULT_MUTANTS and tally["refused"] > 0
    assert time.monotonic() - start < 60


@pytest.mark.slow
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_fuzz_many_more(tmp_path, seed):
    tally = _fuzz(tmp_path, SLOW_MUTANTS, seed=seed)
    assert tally["cases"] == SLOW_MUTANTS


def test_mutator_is_seeded():
    one = [mutant(random.Random(5), s) for s in SOURCES]
    two = [mutant(random.Random(5), s) for s in SOURCES]
    assert one == two


def test_markup_in_a_value_is_printed_verbatim(tmp_path):
    experiment = tmp_path / "e.yaml"
    experiment.write_text('version: 1\ntraining: {optimizer: "[/]"}\n')
    result = CliRunner().invoke(
        main, ["compare", "--experiment", str(experiment), "--out", str(tmp_path / "D")]
    )
    assert isinstance(result.exception, SystemExit) and "'[/]'" in result.output
    # and a line number that reads like an emoji code stays a number
    chip = tmp_path / "c.yaml"
    chip.write_text("\n" * 99 + "version: 1\nname: [x\n")
    shown = CliRunner().invoke(main, ["chip", "validate", str(chip)])
    assert shown.exit_code == 2 and f"{chip}:10" in shown.output and "💯" not in shown.output
