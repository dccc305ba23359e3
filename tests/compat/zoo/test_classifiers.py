"""Classifiers as their converters export them by default: probabilities as a ZipMap (a sequence of maps), served
as an [N, K] tensor whose `labels` parameter lists the classes; answers compared with the library's own predict and
predict_proba on the iris data set bundled with scikit-learn."""

import json
import urllib.request
import warnings

import numpy as np
import pytest
from sklearn.datasets import load_iris

warnings.filterwarnings("ignore", category=DeprecationWarning)
warnings.filterwarnings("ignore", category=FutureWarning)

IRIS = load_iris()
X = IRIS.data.astype(np.float32)  # trees split in float32: train on what the model will see
Y_INT = IRIS.target
Y_STR = IRIS.target_names[IRIS.target]
ATOL = 1e-5


def servable(model):
    """onnx 1.23 may stamp IR versions ONNX Runtime 1.31 cannot read (it reads up to IR 13); the opsets these
    converters use need no more than IR 10, so cap it there."""
    if model.ir_version > 10:
        model.ir_version = 10
    return model


def skl2onnx_default(clf):
    from skl2onnx import to_onnx

    return servable(to_onnx(clf, X[:1]))


def xgboost_via_skl2onnx(clf):
    """XGBoost inside skl2onnx with onnxmltools' converter registered, the recipe skl2onnx documents: ZipMap
    probabilities like every other scikit-learn classifier."""
    from onnxmltools.convert.xgboost.operator_converters.XGBoost import convert_xgboost
    from skl2onnx import to_onnx, update_registered_converter
    from skl2onnx.common.shape_calculator import calculate_linear_classifier_output_shapes
    from xgboost import XGBClassifier

    update_registered_converter(
        XGBClassifier, "XGBoostXGBClassifier", calculate_linear_classifier_output_shapes, convert_xgboost,
        options={"nocl": [True, False], "zipmap": [True, False, "columns"]},
    )
    # onnxmltools' converter would emit ai.onnx.ml 5, more than skl2onnx 1.20 registers: it asks for this.
    return servable(to_onnx(clf, X[:1], target_opset={"": 17, "ai.onnx.ml": 3}))


def onnxmltools_xgboost(clf):
    """onnxmltools' own entry point: its XGBoost converter returns probabilities as a plain tensor."""
    import onnxmltools
    from onnxmltools.convert.common.data_types import FloatTensorType

    return servable(onnxmltools.convert_xgboost(clf, initial_types=[("input", FloatTensorType([None, 4]))]))


def onnxmltools_lightgbm(clf):
    import onnxmltools
    from onnxmltools.convert.common.data_types import FloatTensorType

    return servable(onnxmltools.convert_lightgbm(clf, initial_types=[("input", FloatTensorType([None, 4]))]))


def build():
    """name -> (fitted classifier, ONNX model, input name, label output, probability output, ZipMap?)."""
    from lightgbm import LGBMClassifier
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LogisticRegression
    from xgboost import XGBClassifier

    logreg = LogisticRegression(max_iter=1000, random_state=0).fit(X, Y_INT)
    forest = RandomForestClassifier(n_estimators=10, max_depth=4, random_state=0).fit(X, Y_INT)
    forest_str = RandomForestClassifier(n_estimators=10, max_depth=4, random_state=0).fit(X, Y_STR)
    xgb = XGBClassifier(n_estimators=10, max_depth=3, random_state=0).fit(X, Y_INT)
    lgbm = LGBMClassifier(n_estimators=10, random_state=0, verbose=-1).fit(X, Y_INT)
    return {
        "logreg": (logreg, skl2onnx_default(logreg), "X", "output_label", "output_probability", True),
        "forest": (forest, skl2onnx_default(forest), "X", "output_label", "output_probability", True),
        "forest-strings": (forest_str, skl2onnx_default(forest_str), "X", "output_label", "output_probability", True),
        "xgboost-skl2onnx": (xgb, xgboost_via_skl2onnx(xgb), "X", "output_label", "output_probability", True),
        "xgboost": (xgb, onnxmltools_xgboost(xgb), "input", "label", "probabilities", False),
        "lightgbm": (lgbm, onnxmltools_lightgbm(lgbm), "input", "label", "probabilities", True),
    }


@pytest.fixture(scope="module")
def zoo(zoo_server):
    models = build()
    for name, (_, model, _, _, probs, zipmap) in models.items():
        output = next(o for o in model.graph.output if o.name == probs)
        kind = output.type.WhichOneof("value")
        assert kind == ("sequence_type" if zipmap else "tensor_type"), (name, kind)
    server = zoo_server({name: entry[1] for name, entry in models.items()})
    return server, models


def rest(server, path, body=None):
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(f"http://{server.http}{path}", data, {"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=60) as r:
        return json.load(r)


def classes(clf):
    return [c.item() if hasattr(c, "item") else c for c in clf.classes_]


def infer(server, name, input_name, rows, outputs=None):
    body = {"inputs": [{"name": input_name, "datatype": "FP32", "shape": list(rows.shape), "data": rows.ravel().tolist()}]}
    if outputs is not None:
        body["outputs"] = outputs
    answer = rest(server, f"/v2/models/{name}/infer", body)
    return {o["name"]: o for o in answer["outputs"]}


@pytest.mark.parametrize("name", ["logreg", "forest", "forest-strings", "xgboost-skl2onnx", "xgboost", "lightgbm"])
def test_metadata_and_predictions_match_the_library(zoo, name):
    server, models = zoo
    clf, _, input_name, label, probs, zipmap = models[name]
    k = len(clf.classes_)
    meta = {o["name"]: o for o in rest(server, f"/v2/models/{name}")["outputs"]}
    assert meta[probs]["datatype"] == "FP32"
    assert meta[probs]["shape"] == [-1, k]
    if zipmap:
        assert meta[probs]["parameters"] == {"labels": classes(clf)}
    else:
        assert "parameters" not in meta[probs]

    outputs = infer(server, name, input_name, X)
    got_probs = np.array(outputs[probs]["data"], dtype=np.float32).reshape(outputs[probs]["shape"])
    assert got_probs.shape == (len(X), k)
    np.testing.assert_allclose(got_probs, clf.predict_proba(X), atol=ATOL)
    got_labels = outputs[label]["data"]
    assert got_labels == [c.item() if hasattr(c, "item") else c for c in clf.predict(X)]
    if zipmap:
        assert outputs[probs]["parameters"] == {"labels": classes(clf)}


@pytest.mark.parametrize("name", ["logreg", "forest-strings", "lightgbm"])
def test_classification_names_the_map_keys(zoo, name):
    server, models = zoo
    clf, _, input_name, _, probs, _ = models[name]
    rows = X[[0, 100]]
    outputs = infer(server, name, input_name, rows, [{"name": probs, "parameters": {"classification": 2}}])
    out = outputs[probs]
    assert out["datatype"] == "BYTES" and out["shape"] == [2, 2]
    expected = clf.predict_proba(rows)
    labels = classes(clf)
    for row, entries in enumerate([out["data"][:2], out["data"][2:]]):
        top = np.argsort(-expected[row], kind="stable")[:2]
        for entry, index in zip(entries, top):
            value, got_index, got_label = entry.split(":")
            assert int(got_index) == index
            assert got_label == str(labels[index])
            assert abs(float(value) - expected[row][index]) < 1e-5


def test_grpc_serves_the_zipmap_output(zoo):
    # tritonclient.grpc cannot be imported beside mlserver (the zoo's other modules): MLServer's own generated
    # messages carry the same V2 wire format.
    import grpc
    from mlserver.grpc import dataplane_pb2 as pb
    from mlserver.grpc import dataplane_pb2_grpc as pb_grpc

    server, models = zoo
    clf = models["forest-strings"][0]
    with grpc.insecure_channel(server.grpc) as channel:
        stub = pb_grpc.GRPCInferenceServiceStub(channel)
        meta = stub.ModelMetadata(pb.ModelMetadataRequest(name="forest-strings"), timeout=30)
        probs = next(o for o in meta.outputs if o.name == "output_probability")
        assert list(probs.shape) == [-1, len(clf.classes_)]

        request = pb.ModelInferRequest(model_name="forest-strings")
        request.inputs.add(name="X", datatype="FP32", shape=list(X.shape))
        request.raw_input_contents.append(np.ascontiguousarray(X, dtype="<f4").tobytes())
        request.outputs.add(name="output_probability")
        request.outputs.add(name="output_label")
        response = stub.ModelInfer(request, timeout=30)
    outputs = {o.name: (i, o) for i, o in enumerate(response.outputs)}
    index, probability = outputs["output_probability"]
    got = np.frombuffer(response.raw_output_contents[index], dtype="<f4").reshape(list(probability.shape))
    np.testing.assert_allclose(got, clf.predict_proba(X), atol=ATOL)
    index, _ = outputs["output_label"]
    raw, labels, at = response.raw_output_contents[index], [], 0
    while at < len(raw):
        n = int.from_bytes(raw[at:at + 4], "little")
        labels.append(raw[at + 4:at + 4 + n].decode())
        at += 4 + n
    assert labels == list(clf.predict(X))
    # A list travels over gRPC as its JSON text (InferParameter has no list type).
    assert json.loads(probability.parameters["labels"].string_param) == classes(clf)
