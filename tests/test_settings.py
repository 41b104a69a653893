"""RestoreSettings: validated once, frozen, picklable (runtime.batch ships it to Ray actors), and its errors name the
field for API callers and the option for command-line users."""

from __future__ import annotations

import dataclasses
import pickle

import pytest

from runtime.infer import build_parser
from runtime.settings import OPTIONS, RestoreSettings, SettingError

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
