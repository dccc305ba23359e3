"""k8s/seldon/*.yaml validated against Seldon Core v2's own CustomResourceDefinitions.

The CRDs (Model, Server, ServerConfig) are vendored unchanged under tests/deploy/crds/seldon/ from SeldonIO/seldon-core
tag v2.10.2, with Seldon's licence. Each manifest is checked against the openAPIV3Schema of the version its
apiVersion names, strictly, as the API server prunes and `kubectl apply --validate=strict` refuses: an object
schema that lists properties admits no others unless it says x-kubernetes-preserve-unknown-fields.

Run: "$(bash scripts/python-env.sh deploy)/bin/python" -m pytest tests/deploy -q -p no:cacheprovider
"""

from __future__ import annotations

import copy
from pathlib import Path

import jsonschema
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
CRDS = Path(__file__).resolve().parent / "crds" / "seldon"
SELDON_TAG = "v2.10.2"
KINDS = {"Model", "Server", "ServerConfig"}


def load_crds() -> dict[tuple[str, str, str], dict]:
    """(group, version, kind) -> the version's openAPIV3Schema, for every served version."""
    schemas = {}
    for path in sorted(CRDS.glob("*.yaml")):
        crd = yaml.safe_load(path.read_text())
        assert crd["kind"] == "CustomResourceDefinition", path
        spec = crd["spec"]
        for version in spec["versions"]:
            if version.get("served"):
                key = (spec["group"], version["name"], spec["names"]["kind"])
                schemas[key] = version["schema"]["openAPIV3Schema"]
    return schemas


def strict(schema):
    """A copy where every object schema with properties refuses others (unless it preserves unknown fields)."""
    if isinstance(schema, list):
        return [strict(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {key: strict(value) for key, value in schema.items()}
    if (
        "properties" in schema
        and "additionalProperties" not in schema
        and not schema.get("x-kubernetes-preserve-unknown-fields")
    ):
        out["additionalProperties"] = False
    return out


SCHEMAS = load_crds()


def seldon_docs() -> list[tuple[Path, dict]]:
    docs = []
    for path in sorted((ROOT / "k8s" / "seldon").glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc is not None:
                docs.append((path, doc))
    return docs


def validate(doc: dict) -> None:
    group, _, version = doc["apiVersion"].partition("/")
    key = (group, version, doc["kind"])
    assert key in SCHEMAS, f"no served CRD version for {key}"
    validator = jsonschema.Draft7Validator(strict(SCHEMAS[key]))
    errors = sorted(validator.iter_errors(doc), key=lambda e: list(e.absolute_path))
    assert not errors, "\n".join(f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in errors)


def test_the_vendored_crds_are_seldons_pinned_release():
    assert {kind for (_, _, kind) in SCHEMAS} == KINDS
    for path in CRDS.glob("*.yaml"):
        header = path.read_text().split("\n", 3)[:3]
        assert all(line.startswith("#") for line in header), path
        assert f"tag {SELDON_TAG}" in "\n".join(header), path
    licence = (CRDS / "LICENSE").read_text()
    assert "Seldon Technologies" in licence and "Business Source License" in licence


@pytest.mark.parametrize("path,doc", seldon_docs(), ids=lambda x: getattr(x, "name", None) or x.get("kind"))
def test_seldon_manifest_is_valid_against_the_crd(path, doc):
    validate(doc)


def test_every_seldon_kind_is_covered():
    assert {doc["kind"] for _, doc in seldon_docs()} == KINDS


def first(kind: str) -> dict:
    return copy.deepcopy(next(doc for _, doc in seldon_docs() if doc["kind"] == kind))


@pytest.mark.parametrize(
    "kind,spoil",
    [
        # A misspelt field of the Model spec.
        ("Model", lambda d: d["spec"].__setitem__("requirement", ["onnx"])),
        # A wrong type in a Model parameter (values are strings).
        ("Model", lambda d: d["spec"]["parameters"][0].__setitem__("value", 2)),
        # A misspelt probe field deep inside the ServerConfig's pod.
        ("ServerConfig", lambda d: d["spec"]["podSpec"]["containers"][2]["readinessProbe"].__setitem__("httpGett", {})),
        # An unknown Server field.
        ("Server", lambda d: d["spec"].__setitem__("serverConfigs", "oxinfer")),
    ],
)
def test_validation_is_strict(kind, spoil):
    doc = first(kind)
    validate(doc)
    spoil(doc)
    with pytest.raises(AssertionError):
        validate(doc)
