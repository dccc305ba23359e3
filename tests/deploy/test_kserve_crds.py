"""k8s/kserve/*.yaml against the real KServe CRD schemas (kserve/kserve v0.20.0, config/crd/full, vendored gzipped
in tests/deploy/crds/kserve/ with KServe's licence): each document's openAPIV3Schema, with unknown fields refused
(the API server would prune them silently: a misspelt field must fail here instead)."""

import copy
import gzip
import hashlib
from pathlib import Path

import jsonschema
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
CRDS = ROOT / "tests" / "deploy" / "crds" / "kserve"
# sha256 of each CRD as `git show v0.20.0:config/crd/full/<file>` prints it (see crds/kserve/README.md).
PINNED = {
    "serving.kserve.io_inferenceservices.yaml": "57c3bf13f77de94678bf2ae3748056ec071ad2b9e88d6a28f44fb4710758fcff",
    "serving.kserve.io_clusterservingruntimes.yaml": "c6f6bbb1b4b11afd1e38bd6d7255a8795b86efa2b7d14946ccff9d23592e6846",
    "serving.kserve.io_servingruntimes.yaml": "380a3e1e1444cef9b8b88819596692728868205a2147dc66423be469a4a7bbb1",
}


def crd_text(name: str) -> bytes:
    return gzip.decompress((CRDS / f"{name}.gz").read_bytes())


def strict(schema):
    """Refuses unknown fields wherever the schema lists properties and does not keep unknown fields."""
    if isinstance(schema, dict):
        schema = {k: strict(v) for k, v in schema.items()}
        if (schema.get("type") == "object" and "properties" in schema and "additionalProperties" not in schema
                and not schema.get("x-kubernetes-preserve-unknown-fields")):
            schema["additionalProperties"] = False
        return schema
    if isinstance(schema, list):
        return [strict(s) for s in schema]
    return schema


def validators() -> dict:
    """(apiVersion, kind) -> a validator of that CRD version's schema."""
    out = {}
    for name in PINNED:
        crd = yaml.safe_load(crd_text(name))
        group, kind = crd["spec"]["group"], crd["spec"]["names"]["kind"]
        for version in crd["spec"]["versions"]:
            schema = strict(version["schema"]["openAPIV3Schema"])
            out[(f"{group}/{version['name']}", kind)] = jsonschema.Draft7Validator(schema)
    return out


VALIDATORS = validators()


def manifests():
    for path in sorted((ROOT / "k8s" / "kserve").glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc:
                yield path.name, doc


def errors(doc: dict) -> list[str]:
    validator = VALIDATORS[(doc["apiVersion"], doc["kind"])]
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(doc)]


def test_the_vendored_crds_are_kserve_v0_20_0():
    for name, digest in PINNED.items():
        assert hashlib.sha256(crd_text(name)).hexdigest() == digest, name
    assert "Apache License" in (CRDS / "LICENSE").read_text()


@pytest.mark.parametrize("name,doc", list(manifests()), ids=lambda v: v if isinstance(v, str) else v["metadata"]["name"])
def test_manifest_validates_against_the_kserve_crd(name, doc):
    assert (doc["apiVersion"], doc["kind"]) in VALIDATORS, f"{name}: no vendored CRD for {doc['kind']}"
    assert errors(doc) == [], name


def test_kserves_own_runtimes_validate_too():
    """The strict reading accepts what KServe ships (no false alarms)."""
    for path in sorted((CRDS / "runtimes").glob("kserve-*.yaml")):
        doc = yaml.safe_load(path.read_text())
        assert errors(doc) == [], path.name


def test_validation_bites():
    docs = dict((d["kind"], d) for _, d in manifests())
    runtime = copy.deepcopy(docs["ClusterServingRuntime"])
    runtime["spec"]["supportedModelFormats"][0]["autoselect"] = True
    assert any("autoselect" in e for e in errors(runtime))
    runtime = copy.deepcopy(docs["ClusterServingRuntime"])
    runtime["spec"]["protocolVersions"] = "v2"
    assert errors(runtime)
    isvc = copy.deepcopy(docs["InferenceService"])
    isvc["spec"]["predictor"]["model"]["storageURI"] = "s3://x"
    assert any("storageURI" in e for e in errors(isvc))
    isvc = copy.deepcopy(docs["InferenceService"])
    isvc["spec"]["predictor"]["model"]["ports"] = [{"name": "h2c"}]
    assert any("containerPort" in e for e in errors(isvc))
