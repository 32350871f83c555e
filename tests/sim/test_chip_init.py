"""``hwsim chip init`` / ``hwsim chip list`` through click: the copy is the shipped chip but for
its name, comments and source notes included; existing files are never overwritten silently."""

from __future__ import annotations

import dataclasses

import pytest
from click.testing import CliRunner

from hwsim.cli import main
from hwsim.core.resources import CHIPS_DIR, shipped_chip_names
from hwsim.sim.chip import load_chip

SHIPPED = shipped_chip_names()


def _run(*args: str):
    return CliRunner().invoke(main, list(args))


def _same_but_name(copy_path, shipped_path, new_name: str) -> None:
    """The copy loads to the shipped chip field by field, except its name."""
    copy, shipped = load_chip(copy_path), load_chip(shipped_path)
    assert copy.name == new_name
    for f in dataclasses.fields(shipped):
        if f.name in ("name", "path"):
            continue
        if f.name == "document":  # the document holds the name too
            assert {**copy.document, "name": shipped.name} == shipped.document
            continue
        assert getattr(copy, f.name) == getattr(shipped, f.name), f.name
    assert dataclasses.replace(copy, name=shipped.name) == shipped


def _text_but_name(copy_path, shipped_path, new_line: str) -> None:
    """Byte for byte the shipped text (every comment and source: note) but the name line."""
    copy_lines = copy_path.read_text(encoding="utf-8").splitlines(keepends=True)
    shipped_lines = shipped_path.read_text(encoding="utf-8").splitlines(keepends=True)
    assert len(copy_lines) == len(shipped_lines)
    changed = [(a, b) for a, b in zip(shipped_lines, copy_lines, strict=True) if a != b]
    assert [b for _, b in changed] == [new_line + "\n"]
    assert changed[0][0].startswith("name: ")


def test_shipped_chips_exist():
    assert "edge_sram" in SHIPPED and len(SHIPPED) >= 2


def test_init_default_copies_the_chip_compare_uses_by_default(tmp_path, monkeypatch):
    from hwsim.core.resources import DEFAULT_COMPARE_CHIP
    from hwsim.experiments.experiment import load_experiment

    monkeypatch.chdir(tmp_path)
    result = _run("chip", "init", "mine")
    assert result.exit_code == 0, result.output
    written = tmp_path / "mine.yaml"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine.yaml"]  # no .tmp left
    compare_default = load_experiment().chips[0]  # what `hwsim compare` runs on
    assert compare_default.stem == DEFAULT_COMPARE_CHIP.stem == "split_cores"
    _text_but_name(written, DEFAULT_COMPARE_CHIP, "name: mine")
    _same_but_name(written, DEFAULT_COMPARE_CHIP, "mine")
    help_text = " ".join(_run("chip", "init", "--help").output.split())
    assert "split_cores, the chip hwsim compare uses by default" in help_text
    result = _run("chip", "validate", "mine.yaml")
    assert result.exit_code == 0, result.output
    assert "ok mine.yaml" in result.output


@pytest.mark.parametrize("shipped", SHIPPED)
def test_init_from_every_shipped_chip(tmp_path, monkeypatch, shipped):
    monkeypatch.chdir(tmp_path)
    result = _run("chip", "init", "copy", "--from", shipped)
    assert result.exit_code == 0, result.output
    _text_but_name(tmp_path / "copy.yaml", CHIPS_DIR / f"{shipped}.yaml", "name: copy")
    _same_but_name(tmp_path / "copy.yaml", CHIPS_DIR / f"{shipped}.yaml", "copy")


def test_init_simulates_like_the_shipped_chip(tmp_path, monkeypatch):
    import json

    monkeypatch.chdir(tmp_path)
    assert _run("chip", "init", "mine", "--from", "dram_accel.yaml").exit_code == 0
    docs = []
    for chip in ("mine.yaml", str(CHIPS_DIR / "dram_accel.yaml")):
        result = _run("simulate", "--chip", chip, "--model", "mlp:16-8-4", "--json")
        assert result.exit_code == 0, result.output
        docs.append(json.loads(result.output))
    assert docs[0]["chip"]["name"] == "mine" and docs[1]["chip"]["name"] == "dram_accel"
    assert docs[0]["rules"] == docs[1]["rules"]


def test_init_path_and_yaml_suffix(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = _run("chip", "init", "chips/lab.yaml", "--from", "dram_prng")
    assert result.exit_code == 0, result.output
    _same_but_name(tmp_path / "chips" / "lab.yaml", CHIPS_DIR / "dram_prng.yaml", "lab")
    target = tmp_path / "elsewhere" / "edge_v2"  # a path is taken as given
    result = _run("chip", "init", str(target))
    assert result.exit_code == 0, result.output
    _same_but_name(target, CHIPS_DIR / "split_cores.yaml", "edge_v2")


def test_init_quotes_names_yaml_would_misread(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for name, line in (("yes", "name: 'yes'"), ("a: b", "name: 'a: b'"), ("123", "name: '123'")):
        result = _run("chip", "init", name)
        assert result.exit_code == 0, result.output
        _text_but_name(tmp_path / f"{name}.yaml", CHIPS_DIR / "split_cores.yaml", line)
        _same_but_name(tmp_path / f"{name}.yaml", CHIPS_DIR / "split_cores.yaml", name)


def test_init_refuses_to_overwrite_without_force(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    existing = tmp_path / "mine.yaml"
    before = b"# my own chip, hand-edited\nname: precious\n"
    existing.write_bytes(before)
    result = _run("chip", "init", "mine")
    assert result.exit_code == 2
    assert "mine.yaml" in result.output and "--force" in result.output
    assert existing.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine.yaml"]
    result = _run("chip", "init", "mine", "--force", "--from", "dfa_prng")
    assert result.exit_code == 0, result.output
    _same_but_name(existing, CHIPS_DIR / "dfa_prng.yaml", "mine")


def test_init_refuses_a_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "dir.yaml").mkdir()
    result = _run("chip", "init", "dir.yaml", "--force")
    assert result.exit_code == 2 and "dir.yaml" in result.output
    assert list((tmp_path / "dir.yaml").iterdir()) == []


def test_init_unknown_template_lists_shipped(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = _run("chip", "init", "mine", "--from", "no_such_chip")
    assert result.exit_code == 2
    assert "no_such_chip" in result.output
    for name in SHIPPED:
        assert name in result.output
    assert list(tmp_path.iterdir()) == []


def test_init_never_writes_the_installed_copy(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    # the default template's own file, and another installed chip than the one copied
    for shipped, extra in (
        (CHIPS_DIR / "split_cores.yaml", []),
        (CHIPS_DIR / "edge_sram.yaml", []),
        (CHIPS_DIR / "edge_sram.yaml", ["--from", "dram_accel"]),
    ):
        before = shipped.read_bytes()
        result = _run("chip", "init", str(shipped), "--force", *extra)
        assert result.exit_code == 2 and "installed" in result.output, result.output
        assert shipped.read_bytes() == before


def test_list_shows_every_shipped_chip_with_description():
    result = _run("chip", "list")
    assert result.exit_code == 0, result.output
    lines = [line for line in result.output.splitlines() if line.split()[:1] != ["copy"]]
    assert [line.split()[0] for line in lines] == SHIPPED
    for line in lines:
        name = line.split()[0]
        description = load_chip(CHIPS_DIR / f"{name}.yaml").description.splitlines()[0]
        assert description in line
    assert any(line.startswith("edge_sram") and "(default of simulate)" in line for line in lines)
    assert any(line.startswith("split_cores") and "(default of compare)" in line for line in lines)
