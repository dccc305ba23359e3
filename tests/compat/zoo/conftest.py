"""The model zoo: models built here with the real libraries users export with (skl2onnx, onnxmltools, onnx),
each dropped into a repository with a name-only model-settings.json and served by the real binary.

A test module builds its models in a module-scoped fixture and asks `zoo_server(models)` for a server on them; every
check compares the server's answer with the library's own prediction."""

import importlib.util
import json
import threading
import urllib.request
from pathlib import Path

import onnx
import pytest

# The Server class of tests/compat/conftest.py (both files are named conftest, so it is loaded by path).
_spec = importlib.util.spec_from_file_location("compat_conftest", Path(__file__).parents[1] / "conftest.py")
_compat = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_compat)
Server = _compat.Server


class ZooServer(Server):
    """The compat Server on a zoo repository (kept as `root`), which gives up at once when a model failed to load
    instead of waiting 60 s for a readiness that cannot come: it stops the process, so the failure shows the
    server's log with the load error."""

    def __init__(self, root):
        self.root = root
        done = threading.Event()
        threading.Thread(target=self._stop_on_failed_load, args=(done,), daemon=True).start()
        try:
            super().__init__(root)
        finally:
            done.set()

    def add(self, models, settings=None):
        """Writes more models into the running server's repository (load them with the repository API)."""
        write_repository(self.root, models, settings)

    def _stop_on_failed_load(self, done):
        while not done.wait(0.2):
            process = getattr(self, "process", None)
            if process is None:
                continue
            request = urllib.request.Request(f"http://{self.http}/v2/repository/index", b"{}",
                                             {"Content-Type": "application/json"})
            try:
                with urllib.request.urlopen(request, timeout=1) as r:
                    index = json.load(r)
            except OSError:
                continue  # not listening yet: the models are still loading
            if any(m["state"] == "UNAVAILABLE" and m.get("reason") for m in index):
                process.terminate()
                return


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
    write_repository); stopped after the module. `server.add(models)` writes more models into its repository
    (`server.root`) later, for tests that load them through the repository API."""
    started = []

    def start(models, settings=None):
        root = write_repository(tmp_path_factory.mktemp("zoo"), models, settings)
        server = ZooServer(root)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()
