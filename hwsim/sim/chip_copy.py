"""Copy a shipped chip into a file of the user's, to edit it (``hwsim chip init``).

Users edit chip YAML; they should never edit the installed copy. The copy keeps every comment
and ``source:`` note: only its top-level ``name:`` changes, and it is validated before it is
written (atomically).
"""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from hwsim.core.errors import InputError
from hwsim.core.files import read_text, write_atomic
from hwsim.core.resources import CHIPS_DIR, DEFAULT_COMPARE_CHIP, shipped_chip_names
from hwsim.core.yaml_lines import load_yaml_text, parse_yaml_with_lines
from hwsim.sim.chip import chip_from_dict, load_chip

#: The chip copied when no template is named: the one ``hwsim compare`` uses by default, so a
#: copy starts from the chip a researcher's first comparison ran on.
DEFAULT_TEMPLATE = DEFAULT_COMPARE_CHIP.stem
#: A top-level ``name:`` line with a one-line value, and any comment after it.
_NAME_LINE = re.compile(r"^name:[ \t]*(?P<value>[^#\s][^#]*?)?(?P<comment>[ \t]+#.*)?$")


def init_target(name: str) -> tuple[Path, str]:
    """The file ``hwsim chip init NAME`` writes and the chip name it gets.

    ``mine`` → ``./mine.yaml``; a NAME ending in ``.yaml`` (or ``.yml``) or holding a directory
    is the file as given. The chip is named after the file, without the YAML suffix.
    """
    path = Path(name)
    if not name.strip() or not path.name or path.name in (".", ".."):
        raise InputError(f"chip init: {name!r} is no file name")
    if path.suffix not in (".yaml", ".yml") and len(path.parts) == 1:
        path = Path(f"{name}.yaml")
    chip_name = path.name[: -len(path.suffix)] if path.suffix in (".yaml", ".yml") else path.name
    if not chip_name:
        raise InputError(f"chip init: {name!r} gives the chip no name")
    return path, chip_name


def renamed_chip_text(text: str, new_name: str, file: str | Path) -> str:
    """``text`` (a chip YAML file) with its top-level ``name:`` value set to ``new_name``.

    Only that line changes: every comment, ``source:`` note and the layout stay as they are.
    The result is parsed back and must equal the original document but for the name.
    """
    original, lines = parse_yaml_with_lines(text, file)
    name_line = lines.get(("name",)) if isinstance(original, dict) else None
    line_no = name_line - 1 if name_line is not None else None
    rows = text.splitlines(keepends=True)
    match = _NAME_LINE.match(rows[line_no].rstrip("\r\n")) if line_no is not None else None
    if line_no is None or match is None or match.group("value") is None:
        raise InputError(f"{file}: no one-line top-level 'name:' to rename")
    # safe_dump quotes the name where YAML needs it (a colon, a leading '-', 'yes', a number...)
    line = yaml.safe_dump({"name": new_name}, allow_unicode=True, width=10**6).rstrip("\n")
    ending = rows[line_no][len(rows[line_no].rstrip("\r\n")) :]
    rows[line_no] = f"{line}{match.group('comment') or ''}{ending}"
    new_text = "".join(rows)
    if load_yaml_text(new_text, file) != {**original, "name": new_name}:
        raise InputError(f"{file}: renaming the chip to {new_name!r} would change more")
    return new_text


def copy_shipped_chip(
    name: str, *, template: str = DEFAULT_TEMPLATE, force: bool = False
) -> tuple[Path, str]:
    """Write the shipped chip ``template`` to the file :func:`init_target` names for ``name``,
    renamed to ``name``; return the file and the chip's name.

    Refuses (:class:`InputError`) an unknown template, a directory, the installed file itself,
    and an existing file unless ``force``.
    """
    shipped = shipped_chip_names()
    stem = template.removesuffix(".yaml")
    if stem not in shipped:
        raise InputError(
            f"--from {template}: no shipped chip of that name (shipped chips: {', '.join(shipped)})"
        )
    source = CHIPS_DIR / f"{stem}.yaml"
    target, chip_name = init_target(name)
    if target.is_dir():
        raise InputError(f"{target} is a directory; name a file for the new chip")
    if target.exists() and target.resolve().parent == CHIPS_DIR.resolve():
        # any installed chip, not only the template: --force must never overwrite one
        installed = target.resolve().stem
        raise InputError(f"{target} is the installed {installed} chip itself; copy it elsewhere")
    if target.exists() and not force:
        raise InputError(f"{target} already exists; pass --force to overwrite it")
    text = renamed_chip_text(read_text(source, "a shipped chip YAML file"), chip_name, source)
    document = load_yaml_text(text, source)
    if isinstance(document, dict) and "extends" in document:
        # a shipped chip extends another by its shipped name, which resolves from anywhere: the
        # copy keeps building on it, and validates as the shipped file renamed
        load_chip(source, overrides=[f"name={chip_name}"])
    else:
        chip_from_dict(document, target)  # the copy validates before it is written
    write_atomic(target, text)
    return target, chip_name
