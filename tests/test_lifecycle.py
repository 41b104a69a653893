"""Explicit lifecycles: ``Restorer.close()`` and ``with Restorer(...)`` release every backend at once (an embedder on
a GPU must not wait for garbage collection), close is idempotent, and a closed Restorer or backend refuses work."""

from __future__ import annotations

import gc

import numpy as np
import pytest
from skimage import data

from runtime import Restorer
from runtime.backends.onnxruntime import OrtBackend
from runtime.model_files import resolve_models
from tests.conftest import tiny_model

RGB = data.astronaut()[:40, :56]


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return tiny_model(tmp_path_factory)


def _backends(restorer: Restorer) -> list:
    return [engine.backend for engine in restorer._engines.values()]


def test_close_releases_the_backends_is_idempotent_and_refuses_later_work(model, tmp_path):
    restorer = Restorer(model, backend="ort-cpu", tile=32)
    backends = _backends(restorer)
    assert backends and all(b.session is not None for b in backends)
    restorer.close()
    assert all(b.session is None for b in backends) and not restorer._engines
    restorer.close()  # idempotent
    with pytest.raises(RuntimeError, match="Restorer is closed"):
        restorer(RGB)
    with pytest.raises(RuntimeError, match="Restorer is closed"):
        restorer.restore_file(tmp_path / "any.jpg", tmp_path / "any.png")
    assert not (tmp_path / "any.png").exists()


def test_with_closes_on_leaving_and_on_an_exception(model):
    with Restorer(model, backend="ort-cpu", tile=32) as restorer:
        assert restorer(RGB).shape == RGB.shape
        backends = _backends(restorer)
    assert all(b.session is None for b in backends)
    with pytest.raises(ZeroDivisionError), Restorer(model, backend="ort-cpu", tile=32) as failing:
        backends = _backends(failing)
        _ = 1 / 0
    assert all(b.session is None for b in backends)
    with pytest.raises(RuntimeError, match="closed"):
        failing(RGB)


def test_backends_close_idempotently_and_as_context_managers(model):
    file = resolve_models(model).for_quality(None).file()
    x = np.full((1, 3, 32, 32), 0.5, np.float32)
    with OrtBackend(file.onnx, file.spec, (32, 32), 1) as backend:
        assert backend.run(x).shape == x.shape
    backend.close()
    with pytest.raises(RuntimeError, match="closed"):
        backend.run(x)
    ov = pytest.importorskip("runtime.backends.openvino", reason="OpenVINO is an extra")
    try:
        openvino = ov.OpenVinoBackend(file.onnx, file.spec, (32, 32), 1)
    except ov.BackendUnavailable as e:
        pytest.skip(f"OpenVINO cannot run here: {e}")
    with openvino:
        assert openvino.run(x).shape == x.shape
    openvino.close()
    with pytest.raises(RuntimeError, match="closed"):
        openvino.run(x)


def test_a_ray_actor_releases_its_restorer_when_it_ends(model):
    """Ray Data deletes a pool's callable as its actor shuts down: the actor's Restorer is closed then (its ONNX
    Runtime sessions released, not left to the interpreter's exit), or earlier by ``close()``."""
    from runtime.batch import RestoreActor
    from runtime.settings import RestoreSettings

    actor = RestoreActor(str(model), RestoreSettings(backend="ort-cpu", tile=32), None)
    backends = _backends(actor.restorer)
    assert backends and all(b.session is not None for b in backends)
    del actor
    gc.collect()
    assert all(b.session is None for b in backends)

    actor = RestoreActor(str(model), RestoreSettings(backend="ort-cpu", tile=32), None)
    actor.close()
    with pytest.raises(RuntimeError, match="Restorer is closed"):
        actor.restorer(RGB)
