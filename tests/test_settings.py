"""RestoreSettings: validated once, frozen, picklable (runtime.batch ships it to Ray actors), and its errors name the
field for API callers and the option for command-line users."""

from __future__ import annotations

import dataclasses
import inspect
import pickle
import re
import sys

import numpy as np
import pytest

from runtime.infer import build_parser
from runtime.restorer import Restorer
from runtime.settings import OPTIONS, RestoreSettings, SettingError
from tests.conftest import tiny_model

API_ONLY = {"align", "progress", "verify"}  # no command-line option sets them


def test_frozen_normalised_and_picklable(tmp_path):
    settings = RestoreSettings(tile=96, overlap=8, cache_dir=tmp_path, backend="ort-cpu")
    assert settings.tile == (96, 96) and RestoreSettings(tile=[64, 32]).tile == (64, 32)
    assert pickle.loads(pickle.dumps(settings)) == settings
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.tile = (32, 32)


@pytest.mark.parametrize(
    ("fields", "api", "cli"),
    [
        ({"tile": 0}, "tile must", "--tile must"),
        ({"tile": (16, 5000)}, "tile must", "--tile must"),
        ({"device_id": -1}, "device_id must", "--device-id must"),
        ({"max_pixels": 0}, "max_pixels must", "--max-pixels must"),
        ({"batch": True}, "batch must", "--batch must"),
        ({"precision": "int4"}, "precision must", "--precision must"),
        ({"backend": "cuda"}, "backend must", "--backend must"),
        ({"backend": "triton"}, "server is required", "--url is required"),
        ({"strength": 0}, "strength must be a number in (0, 1]", "--strength must"),
        ({"strength": float("nan")}, "strength must", "--strength must"),
        ({"tile": 4096, "overlap": 1024, "batch": 256}, "tile (4096, 4096) with overlap", "--tile (4096"),
    ],
)
def test_errors_name_the_field_or_the_option(fields, api, cli):
    with pytest.raises(SettingError) as caught:
        RestoreSettings(**fields)
    assert str(caught.value).startswith(api) and caught.value.for_cli().startswith(cli)
    assert isinstance(caught.value, ValueError)  # what the API has always raised


def test_every_field_has_its_option_and_the_options_exist():
    fields = {f.name for f in dataclasses.fields(RestoreSettings)}
    assert fields == set(OPTIONS) | API_ONLY
    options = set(build_parser()._option_string_actions)
    assert set(OPTIONS.values()) <= options


# a valid value, other than the default, for every field (a new field needs one here)
NON_DEFAULT = {
    "backend": "triton", "tile": (64, 32), "overlap": 8, "batch": 2, "precision": "fp32", "device_id": 1,
    "threads": 2, "spin": True, "cache_dir": "cache", "align": 32, "progress": True, "max_pixels": 1000,
    "verify": False, "server": "host:8000", "remote_model": "m", "strength": 0.5, "consistent": True,
}  # fmt: skip


def test_restorer_keywords_are_the_settings_fields_one_for_one(monkeypatch):
    """``Restorer(model, **keywords)`` repeats RestoreSettings' fields for its signature: the same names in the same
    order with the same defaults and types, each reaching the settings unchanged (a field added to one of the two
    only, or a keyword not passed on, fails here)."""
    fields = dataclasses.fields(RestoreSettings)
    keywords = [p for p in inspect.signature(Restorer.__init__).parameters.values() if p.kind is p.KEYWORD_ONLY]
    assert [(p.name, p.default, p.annotation) for p in keywords] == [(f.name, f.default, f.type) for f in fields]

    assert list(NON_DEFAULT) == [f.name for f in fields]
    assert all(NON_DEFAULT[f.name] != f.default for f in fields)
    opened = []
    monkeypatch.setattr(Restorer, "_open", lambda self, model, settings: opened.append(settings))
    Restorer(None, **NON_DEFAULT)
    assert opened == [RestoreSettings(**NON_DEFAULT)]


# Issue 38 (mutation testing): every bound is the one documented, inclusive at both ends, and each error is the
# whole line a user reads; the buffer bound counts the overlap on both sides of the tile.
RANGES = [
    ("tile", 1, 4096), ("overlap", 0, 1024), ("batch", 1, 256), ("device_id", 0, 1023), ("threads", 1, 4096),
    ("max_pixels", 1, 1 << 40),
]  # fmt: skip


@pytest.mark.parametrize(("field", "lo", "hi"), RANGES)
def test_each_range_is_inclusive_at_both_ends(field, lo, hi):
    for value in (lo, hi):
        RestoreSettings(**{field: value})
    for value in (lo - 1, hi + 1):
        with pytest.raises(SettingError) as caught:
            RestoreSettings(**{field: value})
        assert str(caught.value) == f"{field} must be an integer in {lo}..{hi}, got {value}"
        assert caught.value.for_cli().startswith(f"{OPTIONS[field]} must be an integer in {lo}..{hi}")


def test_quality_option_is_inclusive_at_both_ends():
    """--quality 1 and --quality 100 are accepted before any model loads; 0 and 101 are a usage error whose line
    names the option and the range."""
    from common.cli import UsageError
    from runtime.cli import settings_from_args

    for value in ("1", "100"):
        assert settings_from_args(build_parser().parse_args(["x.jpg", "--quality", value])) == RestoreSettings()
    for value in ("0", "101"):
        with pytest.raises(UsageError) as caught:
            settings_from_args(build_parser().parse_args(["x.jpg", "--quality", value]))
        assert str(caught.value) == f"--quality: JPEG quality must be an integer in 1..100, got {value}"


def test_each_side_of_a_tile_is_checked():
    assert RestoreSettings(tile=(1, 4096)).tile == (1, 4096) and RestoreSettings(tile=(4096, 1)).tile == (4096, 1)
    for tile in ((0, 16), (16, 0), (4097, 16), (16, 4097)):
        with pytest.raises(SettingError, match=r"^tile must be an integer in 1\.\.4096"):
            RestoreSettings(tile=tile)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"backend": "cuda"}, "backend must be one of auto, tensorrt, ort-cuda, ort-cpu, openvino, triton; got 'cuda'"),
        ({"precision": "int4"}, "precision must be one of auto, fp32, fp16, int8; got 'int4'"),
        ({"strength": 1.5}, "strength must be a number in (0, 1], got 1.5"),  # refused, never clamped to 1
        ({"backend": "triton"}, "server is required: the triton backend needs a server address (HOST:PORT)"),
        (
            {"backend": "triton", "server": ""},
            "server is required: the triton backend needs a server address (HOST:PORT)",
        ),
        ({"spin": "yes"}, "spin must be True, False or None, got 'yes'"),
        ({"consistent": "yes"}, "consistent must be True, False or None, got 'yes'"),
        ({"tile": (1, 2, 3)}, "tile must be an int or a pair of ints (height, width), got (1, 2, 3)"),
        ({"tile": (64,)}, "tile must be an int or a pair of ints (height, width), got (64,)"),
        ({"tile": []}, "tile must be an int or a pair of ints (height, width), got []"),
        ({"tile": (16, "a")}, "tile must be an int or a pair of ints (height, width), got (16, 'a')"),
        ({"tile": 5.0}, "tile must be an int or a pair of ints (height, width), got 5.0"),
    ],
)
def test_error_lines_in_full(fields, message):
    with pytest.raises(SettingError) as caught:
        RestoreSettings(**fields)
    assert str(caught.value) == message


@pytest.mark.parametrize("precision", ["auto", "fp32", "fp16", "int8"])
def test_every_documented_precision_is_accepted(precision):
    """``Restorer(precision=...)`` / ``--precision`` take each precision of the documented list (int8 included)."""
    from runtime.cli import settings_from_args

    assert RestoreSettings(precision=precision).precision == precision
    parsed = build_parser().parse_args(["x.jpg", "--precision", precision])
    assert settings_from_args(parsed).precision == precision


def test_a_strength_over_one_is_a_usage_error_before_any_input_is_read(tmp_path, capsys):
    """``runtime.infer a.jpg --strength 1.5``: one line naming the option, exit 2, before any input is looked at."""
    from runtime.infer import main

    assert main([str(tmp_path / "a.jpg"), "--strength", "1.5"]) == 2
    assert capsys.readouterr().err == "error: --strength must be a number in (0, 1], got 1.5\n"


def test_spin_and_consistent_accept_their_values():
    for spin in (None, True, False):
        assert RestoreSettings(spin=spin).spin is spin
    assert RestoreSettings(consistent=False).consistent is False


def test_consistent_without_jpeglib_names_the_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "jpeglib", None)  # as if not installed: its import fails
    with pytest.raises(SettingError) as caught:
        RestoreSettings(consistent=True)
    assert str(caught.value) == "consistent needs the jpeglib package: pip install jpeglib"


# batch 256 of float32 RGB windows: 4 GiB holds 1182² px per window, not 1183²
@pytest.mark.parametrize(
    ("tile", "overlap", "fits"),
    [
        (1182, None, True), (1183, None, False),
        (1100, 41, True), (1101, 41, False),  # the overlap counts on both sides: 1100 + 2·41 = 1182
        ((1000, 1398), None, True), ((1000, 1399), None, False),  # height × width, not a side squared
        (None, 79, True), (None, 80, False),  # no tile: checked at the largest default core, INT8's 1024 + 2·79
    ],
)  # fmt: skip
def test_the_buffer_bound_counts_the_whole_window(tile, overlap, fits):
    if fits:
        RestoreSettings(tile=tile, overlap=overlap, batch=256)
        return
    with pytest.raises(SettingError) as caught:
        RestoreSettings(tile=tile, overlap=overlap, batch=256)
    if tile is None:  # the error names what the user set, not the default tile
        assert caught.value.for_cli() == (
            "--batch 256 with overlap 80 and the default tile (1024, 1024) needs over 4 GiB per batch"
        )
    else:
        assert re.match(r"^tile \(\d+, \d+\) with overlap .* needs over 4 GiB per batch", str(caught.value))


@pytest.mark.parametrize("numpy_int", [np.int64, np.int32, np.uint16])
def test_numpy_integers_are_integers_in_every_integer_field(numpy_int):
    """A size computed with numpy (``np.int64`` from an array's shape or arithmetic) is taken as the same Python int,
    for the tile as one side or as a pair and for every other integer field; the tile is stored as plain ints."""
    assert RestoreSettings(tile=numpy_int(256)) == RestoreSettings(tile=256)
    assert RestoreSettings(tile=(numpy_int(64), numpy_int(32))) == RestoreSettings(tile=(64, 32))
    assert all(type(side) is int for side in RestoreSettings(tile=numpy_int(256)).tile)
    plain = {"overlap": 8, "batch": 2, "device_id": 1, "threads": 2, "max_pixels": 1000}
    assert RestoreSettings(**{k: numpy_int(v) for k, v in plain.items()}) == RestoreSettings(**plain)


@pytest.mark.parametrize("numpy_int", [np.int16, np.int32, np.uint16])
def test_the_buffer_bound_holds_for_numpy_integers(numpy_int):
    """A batch over 4 GiB is refused whatever integer type sets it (the size once wrapped around in a narrow numpy
    type, and the settings took it), and the fields read back as Python ints."""
    with pytest.raises(SettingError) as caught:
        RestoreSettings(tile=4096, overlap=numpy_int(1024), batch=numpy_int(256))
    assert str(caught.value) == "tile (4096, 4096) with overlap 1024 and batch 256 needs over 4 GiB per batch"
    with pytest.raises(SettingError, match=r"^batch 256 with overlap 80 and the default tile"):
        RestoreSettings(overlap=numpy_int(80), batch=numpy_int(256))
    settings = RestoreSettings(overlap=numpy_int(79), batch=numpy_int(256), device_id=numpy_int(1),
                               threads=numpy_int(2), max_pixels=numpy_int(1000))  # fmt: skip
    assert [type(getattr(settings, f)) for f in ("overlap", "batch", "device_id", "threads", "max_pixels")] == [int] * 5


def test_a_restorer_with_a_numpy_tile_restores_as_with_an_int(tmp_path_factory, tmp_path):
    """``Restorer(tile=np.int64(32))`` cuts the same tiles as ``tile=32`` and writes the same pixels."""
    from skimage import data

    from tests.runtime_fixtures import write_jpeg

    model = tiny_model(tmp_path_factory)
    photo = write_jpeg(tmp_path / "photo.jpg", data.astronaut()[:70, :90], 20)
    results = {}
    for tile in (32, np.int64(32)):
        with Restorer(model, backend="ort-cpu", tile=tile, threads=1) as restorer:
            results[type(tile)] = restorer.restore_file(photo, tmp_path / f"{type(tile).__name__}.png")
    plain, numpy_tile = results[int], results[np.int64]
    assert numpy_tile.tiles == plain.tiles > 1
    assert numpy_tile.output.read_bytes() == plain.output.read_bytes()
