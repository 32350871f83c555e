"""Hostile YAML: every reader of user-edited YAML refuses it fast, with the file and the line."""

from __future__ import annotations

import itertools
import time

import pytest
from click.testing import CliRunner

from hwsim.cli import main
from hwsim.core.errors import InputError
from hwsim.core.yaml_lines import load_yaml_text, load_yaml_with_lines

_LEVELS = "abcdefghij"
#: "billion laughs": 9 levels of 9 aliases each, 9^9 strings once expanded
BOMB = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{b}: &{b} [{', '.join([f'*{a}'] * 9)}]\n" for a, b in itertools.pairwise(_LEVELS)
)

#: name → (file bytes, line of the problem, words the message must hold)
HOSTILE: dict[str, tuple[bytes, int, str]] = {
    "alias_bomb": (BOMB.encode(), 2, "alias *a is not allowed"),
    "self_alias": (b"version: 1\na: &a [*a]\n", 2, "alias *a is not allowed"),
    "deep_flow": (("x: " + "[" * 5000 + "]" * 5000 + "\n").encode(), 1, "nested deeper than 100"),
    # a comment first: the CLI (rich) prints "FILE:100:" as an emoji, so the problem is on 101
    "deep_block": (
        ("# deep\n" + "".join("  " * i + f"k{i}:\n" for i in range(5000))).encode(),
        101,
        "nested deeper than 100",
    ),
    "latin1": ("version: 1\nname: caf\xe9\n".encode("latin-1"), 2, "0xe9 is not UTF-8"),
    "utf16_bom": ("version: 1\nname: x\n".encode("utf-16"), 1, "the file is UTF-16"),
    "utf16_no_bom": ("version: 1\nname: x\n".encode("utf-16-le"), 1, "NUL byte"),
    "utf32_bom": ("version: 1\n".encode("utf-32"), 1, "the file is UTF-32"),
    "python_tag": (
        b"version: 1\nname: !!python/object/apply:os.system ['echo pwned']\n",
        2,
        "tag !!python/object/apply:os.system is not allowed",
    ),
    "local_tag": (b"version: 1\nname: !foo bar\n", 2, "tag !foo is not allowed"),
    "binary_tag": (b"version: 1\nname: !!binary aGk=\n", 2, "tag !!binary is not allowed"),
    "set_tag": (b"version: 1\nname: !!set {a: null}\n", 2, "tag !!set is not allowed"),
    "bad_int": (b"version: 1\nclock_hz: !!int abc\n", 2, "cannot read 'abc' as int"),
    "bad_date": (b"version: 1\nname: 2024-13-45\n", 2, "cannot read '2024-13-45'"),
    "huge_int": (b"version: 1\nclock_hz: " + b"9" * 5000 + b"\n", 2, "as int"),
    "control_char": (b"version: 1\nname: a\x07b\n", 2, "control character 0x07"),
    "merge_key": (b"version: 1\nname:\n  <<: {a: 1}\n", 3, "merge keys (<<) are not allowed"),
    "tag_mismatch": (b"version: 1\nname: !!str {a: 1}\n", 2, "tag !!str on a mapping"),
}


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_yaml_is_a_fast_input_error(tmp_path, name):
    raw, line, words = HOSTILE[name]
    path = tmp_path / f"{name}.yaml"
    path.write_bytes(raw)
    start = time.monotonic()
    with pytest.raises(InputError) as info:
        load_yaml_with_lines(path)
    assert time.monotonic() - start < 2.0
    message = str(info.value)
    assert message.startswith(f"{path}:{line}: "), message
    assert words in message, message


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_chip_file_exits_2_through_the_cli(tmp_path, name):
    raw, line, words = HOSTILE[name]
    path = tmp_path / f"{name}.yaml"
    path.write_bytes(raw)
    start = time.monotonic()
    result = CliRunner().invoke(main, ["chip", "validate", str(path)])
    assert time.monotonic() - start < 5.0
    assert result.exit_code == 2, result.output
    assert isinstance(result.exception, SystemExit)
    assert f"{path}:{line}:" in result.output and words in result.output


def test_text_variant_names_the_file_and_accepts_plain_yaml(tmp_path):
    assert load_yaml_text("a: 1\nb: [x, !!str 2]\n", "f.yaml") == {"a": 1, "b": ["x", "2"]}
    assert load_yaml_text("\ufeffa: 1\n", "f.yaml") == {"a": 1}  # a UTF-8 BOM is fine
    with pytest.raises(InputError, match=r"^run/config.yaml:2: alias \*x"):
        load_yaml_text("a: &x 1\nb: *x\n", "run/config.yaml")


def test_chip_copy_goes_through_the_safe_loader():
    from hwsim.sim.chip_copy import renamed_chip_text

    with pytest.raises(InputError, match=r"^mine.yaml:2: tag !!python/name:os.system"):
        renamed_chip_text("name: x\nclock_hz: !!python/name:os.system\n", "y", "mine.yaml")
    with pytest.raises(InputError, match=r"^mine.yaml:2: alias"):
        renamed_chip_text("name: &n x\nother: *n\n", "y", "mine.yaml")
    assert renamed_chip_text("a: 1\nname: x  # keep\n", "y", "f") == "a: 1\nname: y  # keep\n"
