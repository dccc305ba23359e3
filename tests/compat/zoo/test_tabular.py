"""Tabular models as users export them: skl2onnx pipelines over named mixed-type columns (numbers and strings,
one [N,1] input per column) fed by MLServer's PandasCodec and by tritonclient, and tree ensembles from
scikit-learn, XGBoost and LightGBM (through onnxmltools). Each answer is compared with the library's own
`predict` on the same rows."""

import json

import numpy as np
import pandas as pd
import pytest
from mlserver.codecs import NumpyCodec, PandasCodec
from mlserver.types import InferenceResponse

from zoo_util import clamp_ir, get, infer_binary, infer_grpc, infer_json, post

ROWS = 40
CITIES = ["paris", "lyon", "nice", "lille"]


def frame(seed, n=ROWS):
    """Rows of a small mixed-type table: two float columns, one int column and one string column."""
    rng = np.random.default_rng(seed)
    return pd.DataFrame({
        "age": rng.uniform(18, 80, n).astype(np.float32),
        "income": rng.uniform(1e3, 1e5, n).astype(np.float32),
        "rooms": rng.integers(1, 6, n).astype(np.int64),
        "city": rng.choice(CITIES, n),
    })


def target(df):
    return df.age * 0.3 + df.income / 1e4 + df.rooms * 2 + (df.city == "nice") * 5.0


def preprocessor():
    from sklearn.compose import ColumnTransformer
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    return ColumnTransformer([
        ("num", StandardScaler(), ["age", "income", "rooms"]),
        ("cat", OneHotEncoder(handle_unknown="ignore"), ["city"]),
    ])


@pytest.fixture(scope="module")
def zoo(zoo_server):
    """Fits and converts every model of this module once, and serves them all from one server."""
    from onnxmltools import convert_lightgbm, convert_xgboost
    from onnxmltools.convert.common.data_types import FloatTensorType as MLFloat
    from skl2onnx import to_onnx
    from skl2onnx.common.data_types import FloatTensorType
    from sklearn.ensemble import GradientBoostingRegressor, RandomForestRegressor
    from sklearn.linear_model import LogisticRegression, Ridge
    from sklearn.pipeline import Pipeline
    import lightgbm
    import xgboost

    train = frame(0, 200)
    y = target(train)
    labels = np.where(y < 25, "low", np.where(y < 35, "mid", "high"))
    fitted = {
        "pipeline_regressor": Pipeline([("pre", preprocessor()), ("reg", Ridge())]).fit(train, y),
        "pipeline_classifier": Pipeline([("pre", preprocessor()),
                                         ("clf", LogisticRegression(max_iter=500))]).fit(train, labels),
    }
    # skl2onnx reads the columns' names and types from a frame: one [None, 1] input per column.
    models = {
        "pipeline_regressor": to_onnx(fitted["pipeline_regressor"], train[:1], target_opset=17),
        "pipeline_classifier_nozipmap": to_onnx(fitted["pipeline_classifier"], train[:1], target_opset=17,
                                                options={"zipmap": False}),
    }
    rng = np.random.default_rng(1)
    X = rng.normal(size=(300, 4)).astype(np.float32)
    yx = X[:, 0] * 2 + np.sin(X[:, 1]) - X[:, 2] * X[:, 3]
    trees = {
        "gradient_boosting": GradientBoostingRegressor(n_estimators=20, max_depth=3, random_state=0).fit(X, yx),
        "random_forest": RandomForestRegressor(n_estimators=10, max_depth=5, random_state=0).fit(X, yx),
    }
    for name, est in trees.items():
        models[name] = to_onnx(est, initial_types=[("x", FloatTensorType([None, 4]))], target_opset=17)
    trees["xgboost"] = xgboost.XGBRegressor(n_estimators=20, max_depth=3, n_jobs=1).fit(X, yx)
    trees["lightgbm"] = lightgbm.LGBMRegressor(n_estimators=20, num_leaves=7, n_jobs=1, verbose=-1).fit(X, yx)
    # onnxmltools 1.16 converts tree ensembles up to opset 15.
    models["xgboost"] = convert_xgboost(trees["xgboost"], initial_types=[("x", MLFloat([None, 4]))],
                                        target_opset=15)
    models["lightgbm"] = convert_lightgbm(trees["lightgbm"], initial_types=[("x", MLFloat([None, 4]))],
                                          target_opset=15)
    models = {name: clamp_ir(m) for name, m in models.items()}
    fitted.update(trees)
    # The same regressor with adaptive batching on: string columns are joined and split with the numbers.
    models["pipeline_regressor_batched"] = models["pipeline_regressor"]
    server = zoo_server(models, settings={"pipeline_regressor_batched": {"max_batch_size": 8,
                                                                         "max_batch_time": 0.01}})
    # Converted with defaults, a classifier's probabilities come out as a ZipMap (a sequence of maps). Written
    # into the repository after start-up and loaded through the repository API by its test, so that a load
    # failure is that test's answer and not a server that never gets ready.
    server.add({"pipeline_classifier": clamp_ir(to_onnx(
        fitted["pipeline_classifier"], train[:1], target_opset=17))})
    return server, fitted


def pandas_infer(server, model, df):
    """Posts PandasCodec.encode_request(df) as MLServer users do (`.model_dump()`, nulls and all)."""
    request = PandasCodec.encode_request(df)
    status, answer = post(server, f"/v2/models/{model}/infer", json.loads(request.model_dump_json()))
    assert status == 200, answer
    return InferenceResponse.model_validate(answer)


def test_pipeline_metadata_lists_one_input_per_column(zoo):
    server, _ = zoo
    meta = get(server, "/v2/models/pipeline_regressor")
    assert [(i["name"], i["datatype"], i["shape"]) for i in meta["inputs"]] == [
        ("age", "FP32", [-1, 1]), ("income", "FP32", [-1, 1]), ("rooms", "INT64", [-1, 1]),
        ("city", "BYTES", [-1, 1]),
    ]
    assert [(o["name"], o["datatype"], o["shape"]) for o in meta["outputs"]] == [("variable", "FP32", [-1, 1])]


def test_pipeline_regressor_from_pandas_codec(zoo):
    server, fitted = zoo
    df = frame(7)
    response = pandas_infer(server, "pipeline_regressor", df)
    [output] = response.outputs
    assert output.name == "variable" and output.shape == [ROWS, 1]
    got = NumpyCodec.decode_output(output)
    # The library's prediction (float64 inside scikit-learn; the ONNX graph computes in float32).
    np.testing.assert_allclose(got.ravel(), fitted["pipeline_regressor"].predict(df), rtol=1e-4, atol=1e-3)
    # PandasCodec reads the whole response back as a frame, one column per output.
    back = PandasCodec.decode_response(response)
    assert list(back.columns) == ["variable"] and len(back) == ROWS


def test_pipeline_regressor_unknown_category(zoo):
    """A city the encoder never saw (handle_unknown='ignore') is all zeros, as in scikit-learn."""
    server, fitted = zoo
    df = frame(8, 5)
    df.loc[2, "city"] = "marseille"
    got = NumpyCodec.decode_output(pandas_infer(server, "pipeline_regressor", df).outputs[0])
    np.testing.assert_allclose(got.ravel(), fitted["pipeline_regressor"].predict(df), rtol=1e-4, atol=1e-3)


def columns(df):
    """{column: [N,1] array} as tritonclient and gRPC clients send a frame (strings as an object array)."""
    return {c: df[[c]].to_numpy(dtype=object if c == "city" else df[c].dtype) for c in df.columns}


def test_pipeline_regressor_binary_and_grpc(zoo):
    server, fitted = zoo
    df = frame(9, 7)
    want = fitted["pipeline_regressor"].predict(df)
    got = infer_binary(server, "pipeline_regressor", columns(df))["variable"]
    np.testing.assert_allclose(got.ravel(), want, rtol=1e-4, atol=1e-3)
    got = infer_grpc(server, "pipeline_regressor", columns(df))["variable"]
    np.testing.assert_allclose(got.ravel(), want, rtol=1e-4, atol=1e-3)


def test_pipeline_classifier_without_zipmap(zoo):
    """zipmap=False: string labels come back as BYTES, probabilities as an [N, classes] tensor."""
    server, fitted = zoo
    clf = fitted["pipeline_classifier"]
    df = frame(10)
    response = pandas_infer(server, "pipeline_classifier_nozipmap", df)
    outputs = {o.name: o for o in response.outputs}
    # skl2onnx names them `label` and `probabilities` when the ZipMap is off.
    labels = NumpyCodec.decode_output(outputs["label"])
    assert [x.decode() if isinstance(x, bytes) else x for x in labels.ravel()] == list(clf.predict(df))
    probabilities = NumpyCodec.decode_output(outputs["probabilities"])
    np.testing.assert_allclose(probabilities, clf.predict_proba(df), rtol=1e-4, atol=1e-5)
    # The string labels over gRPC (raw BYTES) and the binary extension.
    for send in (infer_grpc, infer_binary):
        got = send(server, "pipeline_classifier_nozipmap", columns(df))
        assert [x.decode() for x in got["label"].ravel()] == list(clf.predict(df))
        np.testing.assert_allclose(got["probabilities"], clf.predict_proba(df), rtol=1e-4, atol=1e-5)


def test_pipeline_regressor_batched_concurrent_frames(zoo):
    """8 clients post PandasCodec frames of 1-5 rows at once to the batching model: every client gets its own
    rows' predictions (MLServer's users have seen one request get everyone's, MLServer#1306)."""
    from concurrent.futures import ThreadPoolExecutor
    import threading

    server, fitted = zoo
    barrier = threading.Barrier(8)

    def client(c):
        for r in range(4):
            df = frame(100 * c + r, 1 + (c + r) % 5)
            barrier.wait(timeout=60)
            got = NumpyCodec.decode_output(pandas_infer(server, "pipeline_regressor_batched", df).outputs[0])
            np.testing.assert_allclose(got.ravel(), fitted["pipeline_regressor"].predict(df), rtol=1e-4, atol=1e-3)

    # An idle instance runs a request at once (no window), so a batch forms only from requests that arrive while
    # it computes: repeat the rounds until one has (every answer is checked each time).
    for _ in range(25):
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(client, range(8)))
        [stats] = get(server, "/v2/models/pipeline_regressor_batched/stats")["model_stats"]
        if stats["execution_count"] < stats["inference_count"]:
            break
    assert stats["execution_count"] < stats["inference_count"], stats


def test_pipeline_classifier_with_default_zipmap(zoo):
    """skl2onnx's default classifier output: labels plus a ZipMap of {class: probability} per row."""
    server, fitted = zoo
    clf = fitted["pipeline_classifier"]
    df = frame(11, 6)
    status, answer = post(server, "/v2/repository/models/pipeline_classifier/load", {})
    assert status == 200, answer
    status, answer = post(server, "/v2/models/pipeline_classifier/infer",
                          json.loads(PandasCodec.encode_request(df).model_dump_json()))
    assert status == 200, answer
    outputs = {o["name"]: o for o in answer["outputs"]}
    assert outputs["output_label"]["data"] == list(clf.predict(df))
    # The ZipMap is served as [N, K] with the class keys as parameters.labels (README, Non-tensor outputs).
    probability = outputs["output_probability"]
    assert probability["shape"] == [len(df), len(clf.classes_)]
    assert probability["parameters"]["labels"] == [str(c) if isinstance(c, str) else c for c in clf.classes_]
    np.testing.assert_allclose(np.array(probability["data"]).reshape(probability["shape"]),
                               clf.predict_proba(df), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name", ["gradient_boosting", "random_forest", "xgboost", "lightgbm"])
def test_tree_ensembles(zoo, name):
    server, fitted = zoo
    X = np.random.default_rng(2).normal(size=(25, 4)).astype(np.float32)
    want = fitted[name].predict(X)
    meta = get(server, f"/v2/models/{name}")
    assert [(i["name"], i["datatype"], i["shape"]) for i in meta["inputs"]] == [("x", "FP32", [-1, 4])]
    [output] = meta["outputs"]
    got = infer_json(server, name, {"x": X})[output["name"]]
    assert got.shape == (25, 1)
    np.testing.assert_allclose(got.ravel(), want, rtol=1e-4, atol=1e-4)
    got = infer_binary(server, name, {"x": X})[output["name"]]
    np.testing.assert_allclose(got.ravel(), want, rtol=1e-4, atol=1e-4)


def test_tree_ensemble_single_row(zoo):
    """One row at a time (the common online case) gives the same numbers as the batch."""
    server, fitted = zoo
    X = np.random.default_rng(3).normal(size=(3, 4)).astype(np.float32)
    for row in X:
        got = infer_json(server, "lightgbm", {"x": row[None, :]})["variable"]
        np.testing.assert_allclose(got.ravel(), fitted["lightgbm"].predict(row[None, :]), rtol=1e-4, atol=1e-4)
