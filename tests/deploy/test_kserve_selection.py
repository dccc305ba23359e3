"""Which ServingRuntime KServe gives each InferenceService, by KServe's own rules (v0.20.0), over our
ClusterServingRuntime and KServe's default ones of the same release (vendored in tests/deploy/crds/kserve/).

The rules are re-implemented from kserve/kserve at tag v0.20.0 (read, not copied):
- pkg/apis/serving/v1beta1/predictor_model.go: `ModelSpec.GetProtocol` (v1 when protocolVersion is unset),
  `GetSupportingRuntimes` (filter: not disabled, multiModel == isMMS, `RuntimeSupportsModel`,
  `IsProtocolVersionSupported`, workerSpec == isMultinode; namespace runtimes first, then cluster ones),
  `RuntimeSupportsModel` / `getServingRuntimeSupportedModelFormatLabelSet` (labels `mt:<name>` and
  `mt:<name>:<version>`, only autoSelect formats unless the runtime is named), `sortClusterServingRuntimeList`
  (lowest protocol enum first, newest first, then name), `sortSupportedRuntimeByPriority` (higher priority of the
  first format with the model's name first; no priority last), `GetProtocolVersionPriority`.
- pkg/apis/serving/v1alpha1/servingruntime_types.go: `IsProtocolVersionSupported` (an empty list supports all),
  `GetPriority`, `IsDisabled`, `IsMultiModelRuntime`, `IsMultiNodeRuntime`.
- pkg/controller/v1beta1/inferenceservice/components/predictor.go (`reconcileModel` runtime part): a named runtime
  is checked (disabled, protocol when set, model format); otherwise the first supporting runtime is taken, and an
  unset protocolVersion becomes the runtime's lowest (`GetProtocolVersionPriority`), after the server-type defaults
  of pkg/apis/serving/v1beta1/inference_service_defaults.go (`SetMlServerDefaults`, `SetTritonDefaults`: v2;
  `SetTorchServeDefaults`: v1) and the webhook default (triton and vLLM model formats: v2).
- pkg/webhook/admission/servingruntime/servingruntime_webhook.go `validateServingRuntimePriority`: two runtimes
  that share a protocol may not give one autoSelect format (name and version) the same priority.
Go's sort.Slice is not stable; Python's sort is, which only matters for runtimes of equal priority (none here).
"""

import copy
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
KSERVE = ROOT / "tests" / "deploy" / "crds" / "kserve"
PROTOCOL_ENUM = {"v1": 1, "v2": 2, "grpc-v1": 3, "grpc-v2": 4}  # constants.GetProtocolVersionInt; else Unknown
UNKNOWN = 5


class NoRuntime(Exception):
    """The InferenceService gets no runtime (KServe's NoSupportingRuntime / RuntimeNotRecognized)."""


def load(path: Path) -> list[dict]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def ours() -> dict:
    [runtime] = load(ROOT / "k8s" / "kserve" / "cluster-serving-runtime.yaml")
    return runtime


def kserve_defaults() -> list[dict]:
    """The ClusterServingRuntimes KServe installs (config/runtimes/kustomization.yaml's resources)."""
    names = yaml.safe_load((KSERVE / "runtimes" / "kustomization.yaml").read_text())["resources"]
    return [load(KSERVE / "runtimes" / name)[0] for name in names]


def openvino() -> dict:
    """Listed in config/runtimes but not installed by default; it claims onnx with priority 2."""
    return load(KSERVE / "runtimes" / "kserve-openvino.yaml")[0]


def examples() -> dict[str, dict]:
    return {d["metadata"]["name"]: d for d in load(ROOT / "k8s" / "kserve" / "inferenceservice.yaml")}


# ---------------------------------------------------------------------------------------------------------------
# KServe's rules.


def webhook_defaults(isvc: dict) -> dict:
    """inference_service_defaults.go: triton and vLLM model formats default to v2."""
    isvc = copy.deepcopy(isvc)
    model = isvc["spec"]["predictor"]["model"]
    if "protocolVersion" not in model and model["modelFormat"]["name"] in ("triton", "vLLM"):
        model["protocolVersion"] = "v2"
    return isvc


def get_protocol(model: dict) -> str:
    return model.get("protocolVersion") or "v1"


def protocol_version_priority(protocols: list[str] | None) -> int:
    if not protocols:
        return UNKNOWN
    return min(PROTOCOL_ENUM.get(p, UNKNOWN) for p in protocols)


def is_protocol_version_supported(spec: dict, protocol: str) -> bool:
    protocols = spec.get("protocolVersions")
    return not protocol or not protocols or protocol in protocols


def model_format_label(model: dict) -> str:
    fmt = model["modelFormat"]
    return f"mt:{fmt['name']}:{fmt['version']}" if fmt.get("version") is not None else f"mt:{fmt['name']}"


def runtime_label_set(model: dict, spec: dict) -> set[str]:
    labels = set()
    for fmt in spec.get("supportedModelFormats", []):
        if model.get("runtime") is not None or fmt.get("autoSelect") is True:
            labels.add(f"mt:{fmt['name']}")
            if fmt.get("version") is not None:
                labels.add(f"mt:{fmt['name']}:{fmt['version']}")
    return labels


def runtime_supports_model(model: dict, spec: dict) -> bool:
    return model_format_label(model) in runtime_label_set(model, spec)


def get_priority(spec: dict, format_name: str):
    for fmt in spec.get("supportedModelFormats", []):
        if fmt["name"] == format_name:
            return fmt.get("priority")
    return None


def get_supporting_runtimes(model: dict, cluster_runtimes: list[dict], is_mms=False, is_multinode=False) -> list:
    protocol = get_protocol(model)
    # sortClusterServingRuntimeList: lowest protocol enum first; creation time (all equal here), then name.
    ordered = sorted(
        cluster_runtimes,
        key=lambda r: (protocol_version_priority(r["spec"].get("protocolVersions")), r["metadata"]["name"]),
    )
    supported = [
        r for r in ordered
        if not r["spec"].get("disabled", False)
        and bool(r["spec"].get("multiModel", False)) == is_mms
        and runtime_supports_model(model, r["spec"])
        and is_protocol_version_supported(r["spec"], protocol)
        and ("workerSpec" in r["spec"]) == is_multinode
    ]

    # sortSupportedRuntimeByPriority: a priority before none, higher before lower.
    def key(r):
        p = get_priority(r["spec"], model["modelFormat"]["name"])
        return (p is None, -(p or 0))

    return sorted(supported, key=key)


def server_type_defaults(runtime: dict, model: dict) -> None:
    server_type = runtime["metadata"].get("annotations", {}).get("serving.kserve.io/server-type")
    default = {"mlserver": "v2", "tritonserver": "v2", "torchserve": "v1"}.get(server_type)
    if default and "protocolVersion" not in model:
        model["protocolVersion"] = default


def select(isvc: dict, cluster_runtimes: list[dict]) -> tuple[str, str]:
    """(runtime name, protocolVersion) KServe's controller settles on, or NoRuntime."""
    isvc = webhook_defaults(isvc)
    model = isvc["spec"]["predictor"]["model"]
    by_name = {r["metadata"]["name"]: r for r in cluster_runtimes}
    if model.get("runtime") is not None:
        runtime = by_name.get(model["runtime"])
        if runtime is None:
            raise NoRuntime("Waiting for runtime to become available")
        if runtime["spec"].get("disabled", False):
            raise NoRuntime("Specified runtime is disabled")
        if "protocolVersion" in model and not is_protocol_version_supported(runtime["spec"], model["protocolVersion"]):
            raise NoRuntime("Specified runtime does not support specified protocol version")
        if not runtime_supports_model(model, runtime["spec"]):
            raise NoRuntime("Specified runtime does not support specified framework/version")
    else:
        runtimes = get_supporting_runtimes(model, cluster_runtimes)
        if not runtimes:
            raise NoRuntime("No runtime found to support specified framework/version")
        runtime = runtimes[0]
    server_type_defaults(runtime, model)
    if "protocolVersion" not in model:
        lowest = protocol_version_priority(runtime["spec"].get("protocolVersions"))
        model["protocolVersion"] = {v: k for k, v in PROTOCOL_ENUM.items()}.get(lowest, "")
    return runtime["metadata"]["name"], model["protocolVersion"]


def priority_conflicts(new: dict, existing: list[dict]) -> list[str]:
    """validateServingRuntimePriority for `new` against each existing runtime."""
    found = []
    for other in existing:
        spec, new_spec = other["spec"], new["spec"]
        if bool(spec.get("multiModel")) != bool(new_spec.get("multiModel")) or spec.get("disabled"):
            continue
        if not set(spec.get("protocolVersions", [])) & set(new_spec.get("protocolVersions", [])):
            continue
        for a in spec.get("supportedModelFormats", []):
            for b in new_spec.get("supportedModelFormats", []):
                same = a["name"].lower() == b["name"].lower() and a.get("version") == b.get("version")
                if a.get("autoSelect") and b.get("autoSelect") and same:
                    if a.get("priority") is not None and a.get("priority") == b.get("priority"):
                        found.append(f"{other['metadata']['name']}: {a['name']}")
    return found


def isvc(fmt: dict, **model) -> dict:
    return {"metadata": {"name": "x"}, "spec": {"predictor": {"model": {"modelFormat": fmt, **model}}}}


# ---------------------------------------------------------------------------------------------------------------
# The examples and the claims of k8s/kserve/README.md.


@pytest.mark.parametrize("name,protocol", [("iris", "v1"), ("iris-v2", "v2"), ("iris-grpc", "grpc-v2")])
def test_each_example_gets_oxinfer(name, protocol):
    runtimes = kserve_defaults() + [ours()]
    assert select(examples()[name], runtimes) == ("kserve-oxinfer", protocol)
    # Also with KServe's optional OpenVINO runtime installed (onnx, priority 2).
    assert select(examples()[name], runtimes + [openvino()]) == ("kserve-oxinfer", protocol)


def test_the_examples_cover_autoselect_and_a_named_runtime():
    models = [d["spec"]["predictor"]["model"] for d in examples().values()]
    assert any("runtime" not in m and "protocolVersion" not in m for m in models), "the default InferenceService"
    assert any("runtime" not in m and m.get("protocolVersion") == "v2" for m in models)
    assert any(m.get("runtime") == "kserve-oxinfer" for m in models)


def test_without_oxinfer_kserve_gives_onnx_to_triton_and_only_over_v2():
    defaults = kserve_defaults()
    with pytest.raises(NoRuntime, match="No runtime found"):
        select(isvc({"name": "onnx"}), defaults)
    assert select(isvc({"name": "onnx"}, protocolVersion="v2"), defaults) == ("kserve-tritonserver", "v2")


def test_without_v1_the_default_inference_service_finds_no_runtime():
    """The bug of issue 21: a runtime that does not list v1 is never auto-selected without protocolVersion."""
    runtime = ours()
    runtime["spec"]["protocolVersions"] = ["v2", "grpc-v2"]
    runtimes = kserve_defaults() + [runtime]
    with pytest.raises(NoRuntime):
        select(examples()["iris"], runtimes)
    assert select(examples()["iris-v2"], runtimes)[0] == "kserve-oxinfer"
    # Named, the runtime is taken and the protocol becomes its lowest, v2.
    named = isvc({"name": "onnx"}, runtime="kserve-oxinfer")
    assert select(named, runtimes) == ("kserve-oxinfer", "v2")


def test_priority_decides_between_runtimes_of_one_protocol():
    runtimes = kserve_defaults() + [ours()]
    lower = ours()
    lower["spec"]["supportedModelFormats"][0]["priority"] = 0
    assert select(isvc({"name": "onnx"}, protocolVersion="grpc-v2"), runtimes)[0] == "kserve-oxinfer"
    assert select(isvc({"name": "onnx"}, protocolVersion="v2"), kserve_defaults() + [lower])[0] == (
        "kserve-tritonserver"
    )
    # autoSelect off: only a named runtime gets it.
    manual = ours()
    manual["spec"]["supportedModelFormats"][0]["autoSelect"] = False
    assert select(isvc({"name": "onnx"}, protocolVersion="v2"), kserve_defaults() + [manual])[0] == (
        "kserve-tritonserver"
    )
    assert select(isvc({"name": "onnx"}, runtime="kserve-oxinfer"), [manual])[0] == "kserve-oxinfer"


def test_model_formats_and_versions_that_do_not_select_oxinfer():
    runtimes = kserve_defaults() + [ours()]
    with pytest.raises(NoRuntime):
        select(isvc({"name": "onnx", "version": "2"}), runtimes)
    assert select(isvc({"name": "sklearn"}), runtimes) == ("kserve-sklearnserver", "v1")
    assert select(isvc({"name": "sklearn"}, protocolVersion="v2"), runtimes)[0] == "kserve-mlserver"
    with pytest.raises(NoRuntime, match="does not support specified framework"):
        select(isvc({"name": "sklearn"}, runtime="kserve-oxinfer"), runtimes)
    with pytest.raises(NoRuntime, match="protocol version"):
        select(isvc({"name": "onnx"}, runtime="kserve-oxinfer", protocolVersion="grpc-v1"), runtimes)


def test_the_runtime_passes_kserves_priority_webhook():
    """Creating kserve-oxinfer beside KServe's runtimes (and OpenVINO's) is allowed: no shared priority."""
    assert priority_conflicts(ours(), kserve_defaults() + [openvino()]) == []
    clash = ours()
    clash["spec"]["supportedModelFormats"][0]["priority"] = 1
    assert priority_conflicts(clash, kserve_defaults()) == ["kserve-tritonserver: onnx"]


def test_the_vendored_runtimes_are_kserves():
    names = {r["metadata"]["name"] for r in kserve_defaults()}
    assert {"kserve-tritonserver", "kserve-mlserver", "kserve-sklearnserver"} <= names
    onnx = [r["metadata"]["name"] for r in kserve_defaults() + [openvino()]
            if any(f["name"] == "onnx" for f in r["spec"]["supportedModelFormats"])]
    assert sorted(onnx) == ["kserve-openvino", "kserve-tritonserver"]
