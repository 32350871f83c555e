"""The foundation (hwsim.core): statistics, number formats, JSON lines and the out-dir guard.

Known answers only: hand-computed statistics, exact strings, files on disk before and after.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from hwsim.core.errors import InputError
from hwsim.core.files import MANIFEST, append_jsonl, claim_out_dir, read_jsonl, write_atomic
from hwsim.core.stats import describe, finite, mean_std
from hwsim.core.units import format_mean_std, format_number

# --------------------------------------------------------------------------- statistics


def test_mean_and_sample_std_by_hand():
    # 1, 2, 3, 4: mean 2.5; squared deviations 2.25 + 0.25 + 0.25 + 2.25 = 5; 5 / (4 − 1) = 5/3
    mean, std = mean_std([1, 2, 3, 4])
    assert mean == 2.5 and std == pytest.approx(math.sqrt(5 / 3), rel=1e-15)


def test_one_value_has_no_spread_and_none_has_no_mean():
    assert mean_std([0.7]) == (0.7, None)
    assert mean_std([]) == (None, None)


def test_only_finite_numbers_count():
    values = [1.0, math.nan, None, 3.0, math.inf, True]
    assert [v for v in values if finite(v)] == [1.0, 3.0]
    assert describe(values) == {
        "mean": 2.0,
        "std": pytest.approx(math.sqrt(2)),
        "n": 2,
        "values": [1.0, 3.0],
    }


# --------------------------------------------------------------------------- number formats


def test_mean_std_text():
    assert format_mean_std(0.91234, 0.01234) == "0.912 ± 0.012"
    assert format_mean_std(0.91234, None) == "0.912"
    assert format_mean_std(None, None) == "—"
    assert format_number(None) == "—" and format_number(2.0, ".2f") == "2.00"


# --------------------------------------------------------------------------- JSON lines


def test_jsonl_round_trip_and_torn_tail(tmp_path):
    path = tmp_path / "points.jsonl"
    append_jsonl(path, {"a": 1})
    append_jsonl(path, {"a": 2})
    with open(path, "a") as handle:
        handle.write('{"a": 3')  # a crash mid-append
    with pytest.raises(InputError, match=r"points\.jsonl:3: invalid JSON"):
        read_jsonl(path, "points")
    assert read_jsonl(path, "points", drop_torn_tail=True) == [{"a": 1}, {"a": 2}]
    assert path.read_text() == '{"a": 1}\n{"a": 2}\n'  # the torn line is gone from the file


def test_jsonl_errors_name_file_and_line(tmp_path):
    path = tmp_path / "metrics.jsonl"
    path.write_text('{"epoch": 0}\n\n[1, 2]\n')
    with pytest.raises(InputError, match=r"metrics\.jsonl:3: not a JSON object; expected rows"):
        read_jsonl(path, "rows")
    with pytest.raises(InputError, match="missing; expected rows"):
        read_jsonl(tmp_path / "absent.jsonl", "rows")
    assert read_jsonl(tmp_path / "absent.jsonl", "rows", missing_ok=True) == []


# --------------------------------------------------------------------------- the out-dir guard


def _claim(out, identity, *, force=False, finished=None):
    claim_out_dir(
        out,
        what="sweep",
        identity_file="spec.json",
        identity=identity,
        load=json.loads,
        force=force,
        finished=finished,
    )


def test_guard_accepts_new_empty_and_same_directories(tmp_path):
    _claim(tmp_path / "new", {"k": 1})  # does not exist yet: created, with its manifest
    assert (tmp_path / "new" / MANIFEST).read_text() == ""
    (tmp_path / "empty").mkdir()
    _claim(tmp_path / "empty", {"k": 1})
    same = tmp_path / "same"
    same.mkdir()
    (same / "spec.json").write_text('{"k": 1}')
    _claim(same, {"k": 1})  # resume (a run of an older hwsim has no manifest yet)


def test_guard_refusals(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(InputError, match="exists and is not a directory"):
        _claim(tmp_path / "file", {"k": 1})
    other = tmp_path / "other"
    other.mkdir()
    (other / "spec.json").write_text('{"k": 2}')
    with pytest.raises(InputError, match=r"holds a sweep with a different spec\.json"):
        _claim(other, {"k": 1})
    (other / "spec.json").write_text("not json")
    with pytest.raises(InputError, match=r"different spec\.json"):
        _claim(other, {"k": 1})
    foreign = tmp_path / "foreign"  # a user's directory: hwsim wrote nothing there
    (foreign / "runs").mkdir(parents=True)
    (foreign / "notes.txt").write_text("mine")
    with pytest.raises(InputError, match=r"is not empty and is not a sweep hwsim wrote"):
        _claim(foreign, {"k": 1})
    with pytest.raises(InputError, match=r"--force only replaces hwsim's own files"):
        _claim(foreign, {"k": 1}, force=True)
    assert sorted(p.name for p in foreign.iterdir()) == ["notes.txt", "runs"]  # untouched
    done = tmp_path / "done"
    done.mkdir()
    (done / "spec.json").write_text('{"k": 1}')
    (done / "points.jsonl").write_text("")
    with pytest.raises(InputError, match=r"already holds a finished sweep \(points\.jsonl\)"):
        _claim(done, {"k": 1}, finished="points.jsonl")
    for unwritable in (tmp_path / "file" / "sub", Path("/proc/hwsim-cannot-be-here")):
        with pytest.raises(InputError, match=r"cannot write there"):
            _claim(unwritable, {"k": 1})
        assert not unwritable.exists()


def test_force_removes_exactly_what_hwsim_wrote(tmp_path):
    out = tmp_path / "out"
    _claim(out, {"k": 2})
    write_atomic(out / "spec.json", '{"k": 2}')
    write_atomic(out / "runs" / "a" / "x.pt", b"1")
    append_jsonl(out / "points.jsonl", {"p": 1})
    _claim(out / "runs" / "b", {"k": 2})  # a claimed directory inside: its own manifest
    write_atomic(out / "runs" / "b" / "y.pt", b"2")
    # the user's files, beside and among hwsim's
    (out / "notes.txt").write_text("mine")
    (out / "runs" / "mine.txt").write_text("mine too")
    (out / "photos").mkdir()
    (out / "photos" / "cat.jpg").write_bytes(b"\xff")
    # a hostile manifest line must not reach outside the directory
    (tmp_path / "outside.txt").write_text("keep")
    with open(out / MANIFEST, "a") as handle:
        handle.write("../outside.txt\n" + str(tmp_path / "outside.txt") + "\n")
    listed = (out / MANIFEST).read_text().splitlines()
    assert {"spec.json", "runs/a/x.pt", "points.jsonl", "runs/b/.hwsim-manifest"} <= set(listed)
    _claim(out, {"k": 1}, force=True)
    assert sorted(p.name for p in out.iterdir()) == [MANIFEST, "notes.txt", "photos", "runs"]
    assert sorted(p.name for p in (out / "runs").iterdir()) == ["mine.txt"]  # a/ and b/ gone
    assert (out / "notes.txt").read_text() == "mine"
    assert (out / "photos" / "cat.jpg").read_bytes() == b"\xff"
    assert (tmp_path / "outside.txt").read_text() == "keep"
    assert (out / MANIFEST).read_text() == ""  # a fresh start
