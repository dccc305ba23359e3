"""The model zoo: models built here with the real libraries users export with (skl2onnx, onnxmltools, onnx),
each dropped into a repository with a name-only model-settings.json and served by the real binary.

A test module builds its models in a module-scoped fixture and asks `zoo_server(models)` for a server on them; every
check compares the server's answer with the library's own prediction."""

import importlib.util
import json
from pathlib import Path

import onnx
import pytest

# The Server class of tests/compat/conftest.py (both files are named conftest, so it is loaded by path).
_spec = importlib.util.spec_from_file_location("compat_conftest", Path(__file__).parents[1] / "conftest.py")
_compat = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_compat)
Server = _compat.Server


def write_repository(root, models, settings=None):
    """models: {name: onnx.ModelProto or path-writing callable(folder)}; writes NAME/model.onnx + a name-only
    model-settings.json for each. `settings` ({name: {field: value}}) adds fields to a model's settings file
    (e.g. max_batch_size), for the few checks that need more than the name."""
    for name, model in models.items():
        folder = root / name
        folder.mkdir(parents=True, exist_ok=True)
        if callable(model):
            model(folder)
        else:
            onnx.save(model, str(folder / "model.onnx"))
        fields = {"name": name, **(settings or {}).get(name, {})}
        (folder / "model-settings.json").write_text(json.dumps(fields))
    return root


@pytest.fixture(scope="module")
def zoo_server(tmp_path_factory):
    """zoo_server(models, settings=None) starts one server on a fresh repository holding `models` (see
    write_repository); stopped after the module."""
    started = []

    def start(models, settings=None):
        root = write_repository(tmp_path_factory.mktemp("zoo"), models, settings)
        server = Server(root)
        server.root = root  # for tests that add a model later and load it through the repository API
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()
