"""Model shapes beyond plain [batch, features] tensors, built with onnx.helper and checked against onnx's
ReferenceEvaluator or numpy: weights in an external data file, an old-IR model that lists its initializers as
graph inputs, outputs whose shape depends on the data (NonZero, TopK with k as an input, Compress), rank-0
(scalar) inputs and outputs, and FP16 end to end — each over REST JSON, the binary extension and gRPC."""

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper
from onnx.reference import ReferenceEvaluator

from zoo_util import get, infer_binary, infer_grpc, infer_json, make_model, post

TRANSPORTS = {"json": infer_json, "binary": infer_binary, "grpc": infer_grpc}
RNG = np.random.default_rng(0)
WEIGHT = RNG.normal(size=(16, 32)).astype(np.float32)
BIAS = RNG.normal(size=(32,)).astype(np.float32)


def value(name, elem, shape):
    return helper.make_tensor_value_info(name, elem, shape)


def dense():
    """y = x @ W + b with 2 KiB of weights, to be saved with its weights in a separate file."""
    init = [numpy_helper.from_array(WEIGHT, "W"), numpy_helper.from_array(BIAS, "b")]
    nodes = [helper.make_node("MatMul", ["x", "W"], ["xw"]), helper.make_node("Add", ["xw", "b"], ["y"])]
    return make_model(nodes, [value("x", TensorProto.FLOAT, ["N", 16])],
                      [value("y", TensorProto.FLOAT, ["N", 32])], init)


def external(location):
    """A folder writer: model.onnx plus every tensor in one external file at `location` (relative)."""
    def write(folder):
        onnx.save_model(dense(), str(folder / "model.onnx"), save_as_external_data=True,
                        all_tensors_to_one_file=True, location=location, size_threshold=0)
    return write


def old_ir():
    """As exporters wrote before IR 4: opset 9, IR 3, and the initializers W and b listed as graph inputs too."""
    init = [numpy_helper.from_array(WEIGHT[:, :4], "W"), numpy_helper.from_array(BIAS[:4], "b")]
    nodes = [helper.make_node("Gemm", ["x", "W", "b"], ["y"])]
    inputs = [value("x", TensorProto.FLOAT, ["N", 16]), value("W", TensorProto.FLOAT, [16, 4]),
              value("b", TensorProto.FLOAT, [4])]
    return make_model(nodes, inputs, [value("y", TensorProto.FLOAT, ["N", 4])], init, opset=9, ir_version=3)


def nonzero():
    """The positions of a vector's non-zero entries: INT64 [1, count], count known only after running."""
    return make_model([helper.make_node("NonZero", ["x"], ["positions"])],
                      [value("x", TensorProto.FLOAT, ["N"])], [value("positions", TensorProto.INT64, [1, "K"])])


def topk():
    """The k largest entries of each row, with k an input: [N, k] values and indices."""
    return make_model([helper.make_node("TopK", ["x", "k"], ["values", "indices"], axis=-1)],
                      [value("x", TensorProto.FLOAT, ["N", "M"]), value("k", TensorProto.INT64, [1])],
                      [value("values", TensorProto.FLOAT, ["N", "K"]), value("indices", TensorProto.INT64, ["N", "K"])])


def compress():
    """The rows of x where `keep` is true: [count, 3]."""
    return make_model([helper.make_node("Compress", ["x", "keep"], ["kept"], axis=0)],
                      [value("x", TensorProto.FLOAT, ["N", 3]), value("keep", TensorProto.BOOL, ["N"])],
                      [value("kept", TensorProto.FLOAT, ["K", 3])])


def scalars():
    """A rank-0 `scale` input next to a vector; a rank-0 `total` output next to the scaled vector."""
    nodes = [helper.make_node("Mul", ["x", "scale"], ["scaled"]),
             helper.make_node("ReduceSum", ["scaled"], ["total"], keepdims=0)]
    return make_model(nodes, [value("x", TensorProto.FLOAT, ["N"]), value("scale", TensorProto.FLOAT, [])],
                      [value("scaled", TensorProto.FLOAT, ["N"]), value("total", TensorProto.FLOAT, [])])


def half():
    """FP16 in and out, computed in FP16: y = x * 2 + 1 and a row sum (also FP16)."""
    init = [numpy_helper.from_array(np.array(2, np.float16), "two"),
            numpy_helper.from_array(np.array(1, np.float16), "one"),
            numpy_helper.from_array(np.array([1], np.int64), "axis")]
    nodes = [helper.make_node("Mul", ["x", "two"], ["doubled"]), helper.make_node("Add", ["doubled", "one"], ["y"]),
             helper.make_node("ReduceSum", ["x", "axis"], ["row_sum"], keepdims=0)]
    return make_model(nodes, [value("x", TensorProto.FLOAT16, ["N", 3])],
                      [value("y", TensorProto.FLOAT16, ["N", 3]), value("row_sum", TensorProto.FLOAT16, ["N"])],
                      init)


def exporter_names():
    """Tensor names as exporters write them: PyTorch's `input.1`, tf2onnx's `serving_default_x:0`, `Identity:0`."""
    nodes = [helper.make_node("Add", ["input.1", "serving_default_x:0"], ["Identity:0"])]
    return make_model(nodes, [value("input.1", TensorProto.FLOAT, ["N", 2]),
                              value("serving_default_x:0", TensorProto.FLOAT, ["N", 2])],
                      [value("Identity:0", TensorProto.FLOAT, ["N", 2])])


def dynamic_quantize():
    """DynamicQuantizeLinear, the first step of a dynamically quantized model: UINT8 values plus a scalar FP32
    scale and a scalar UINT8 zero point, all computed from the data."""
    return make_model([helper.make_node("DynamicQuantizeLinear", ["x"], ["q", "scale", "zero_point"])],
                      [value("x", TensorProto.FLOAT, ["N", 4])],
                      [value("q", TensorProto.UINT8, ["N", 4]), value("scale", TensorProto.FLOAT, []),
                       value("zero_point", TensorProto.UINT8, [])])


MODELS = {"external_data": external("weights.bin"), "old_ir": old_ir(), "nonzero": nonzero(), "topk": topk(),
          "compress": compress(), "scalars": scalars(), "fp16": half(), "exporter_names": exporter_names(),
          "dynamic_quantize": dynamic_quantize()}


@pytest.fixture(scope="module")
def server(zoo_server):
    # Again with adaptive batching on: Compress's output rows do not follow its input rows, and
    # DynamicQuantizeLinear's scalar scale belongs to the whole batch it ran on.
    batched = {f"{name}_batched": MODELS[name] for name in ("compress", "dynamic_quantize")}
    policy = {"max_batch_size": 8, "max_batch_time": 0.01}
    return zoo_server({**MODELS, **batched}, settings={name: policy for name in batched})


def reference(name):
    model = MODELS[name]
    return ReferenceEvaluator(dense() if callable(model) else model)


# --- weights in an external data file --------------------------------------------------------------------------

def test_external_data_is_read_from_the_model_folder(server):
    folder = server.root / "external_data"
    assert (folder / "weights.bin").stat().st_size == WEIGHT.nbytes + BIAS.nbytes
    assert (folder / "model.onnx").stat().st_size < 1024  # the weights are not inside
    x = RNG.normal(size=(5, 16)).astype(np.float32)
    for send in TRANSPORTS.values():
        got = send(server, "external_data", {"x": x})["y"]
        np.testing.assert_allclose(got, x @ WEIGHT + BIAS, rtol=1e-5, atol=1e-5)


def test_external_data_missing_file_is_a_clear_load_error(server):
    server.add({"external_missing": external("weights.bin")})
    (server.root / "external_missing" / "weights.bin").unlink()
    status, answer = post(server, "/v2/repository/models/external_missing/load", {})
    assert status == 400, answer
    assert "external_missing" in answer["error"] and "weights.bin" in answer["error"], answer


@pytest.mark.parametrize("where", ["parent", "absolute"])
def test_external_data_outside_the_model_folder_is_refused(server, where):
    """A model file cannot make the server read files outside its own folder through external data (onnx's
    writer refuses such locations, so the location is rewritten by hand, as a hostile file would have it)."""
    name = f"external_escape_{where}"
    server.add({name: external("weights.bin")})
    folder = server.root / name
    outside = server.root / f"{name}.bin"
    (folder / "weights.bin").rename(outside)
    location = "../" + outside.name if where == "parent" else str(outside)
    model = onnx.load(str(folder / "model.onnx"), load_external_data=False)
    for tensor in model.graph.initializer:
        for entry in tensor.external_data:
            if entry.key == "location":
                entry.value = location
    onnx.save(model, str(folder / "model.onnx"))
    status, answer = post(server, f"/v2/repository/models/{name}/load", {})
    assert status == 400, answer
    # ONNX Runtime itself refuses it ("escapes model directory", "Absolute path not allowed").
    assert name in answer["error"] and "external data" in answer["error"].lower(), answer


def test_newest_ir_is_refused_with_the_reason(server):
    """onnx 1.23 saves IR 14 by default; ONNX Runtime 1.31 reads up to IR 13. Such a file is refused at load
    with the versions in the message (re-save it with `model.ir_version = 10`, as this suite does)."""
    model = helper.make_model(helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "relu",
                                                [value("x", TensorProto.FLOAT, ["N"])],
                                                [value("y", TensorProto.FLOAT, ["N"])]),
                              opset_imports=[helper.make_opsetid("", 17)], ir_version=14)
    server.add({"ir14": model})
    status, answer = post(server, "/v2/repository/models/ir14/load", {})
    assert status == 400, answer
    assert "ir14" in answer["error"] and "IR version: 14" in answer["error"], answer
    assert "model.ir_version = 10" in answer["error"], "the error says what to do"


# --- old IR: initializers listed as graph inputs ----------------------------------------------------------------

def test_old_ir_metadata_lists_only_the_real_inputs(server):
    meta = get(server, "/v2/models/old_ir")
    assert [(i["name"], i["datatype"], i["shape"]) for i in meta["inputs"]] == [("x", "FP32", [-1, 16])]
    assert [(o["name"], o["shape"]) for o in meta["outputs"]] == [("y", [-1, 4])]


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_old_ir_runs_on_the_real_inputs_alone(server, transport):
    x = RNG.normal(size=(3, 16)).astype(np.float32)
    got = TRANSPORTS[transport](server, "old_ir", {"x": x})["y"]
    [want] = reference("old_ir").run(None, {"x": x})
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_old_ir_initializer_is_not_an_input(server):
    """W is a weight, not an input the client may send: naming it is the same error as any unknown input."""
    x = np.zeros((1, 16), np.float32)
    body = {"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 16], "data": x.ravel().tolist()},
                       {"name": "W", "datatype": "FP32", "shape": [16, 4], "data": [0.0] * 64}]}
    status, answer = post(server, "/v2/models/old_ir/infer", body)
    assert status == 400 and "'W'" in answer["error"], answer


# --- outputs whose shape depends on the data --------------------------------------------------------------------

@pytest.mark.parametrize("transport", TRANSPORTS)
def test_nonzero_shape_follows_the_data(server, transport):
    for x in ([0, 1.5, 0, -2, 3], [0, 0, 0], [7], [1, 2, 3, 4, 5, 6, 0, 8]):
        x = np.array(x, np.float32)
        got = TRANSPORTS[transport](server, "nonzero", {"x": x})["positions"]
        want = np.array(np.nonzero(x), np.int64)
        assert got.shape == want.shape, (x, got)
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_topk_with_k_as_input(server, transport):
    x = RNG.normal(size=(4, 9)).astype(np.float32)
    for k in (1, 3, 9):
        got = TRANSPORTS[transport](server, "topk", {"x": x, "k": np.array([k], np.int64)})
        order = np.argsort(-x, axis=1, kind="stable")[:, :k]
        assert got["values"].shape == got["indices"].shape == (4, k)
        np.testing.assert_array_equal(got["indices"], order)
        np.testing.assert_array_equal(got["values"], np.take_along_axis(x, order, axis=1))


def test_topk_k_larger_than_the_row_is_a_bad_input(server):
    body = {"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 3], "data": [1, 2, 3]},
                       {"name": "k", "datatype": "INT64", "shape": [1], "data": [5]}]}
    status, answer = post(server, "/v2/models/topk/infer", body)
    assert status == 400 and "could not run" in answer["error"], answer


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_compress_keeps_the_chosen_rows(server, transport):
    x = RNG.normal(size=(6, 3)).astype(np.float32)
    for keep in ([1, 0, 1, 1, 0, 0], [0] * 6, [1] * 6):
        keep = np.array(keep, bool)
        got = TRANSPORTS[transport](server, "compress", {"x": x, "keep": keep})["kept"]
        assert got.shape == (int(keep.sum()), 3)
        np.testing.assert_array_equal(got, x[keep])


def concurrently(clients, rounds, call):
    """Runs call(client, round) for 8 clients at once, round by round (so requests meet in the batcher)."""
    import threading
    from concurrent.futures import ThreadPoolExecutor

    barrier = threading.Barrier(clients)

    def client(c):
        for r in range(rounds):
            barrier.wait(timeout=60)
            call(c, r)

    with ThreadPoolExecutor(clients) as pool:
        list(pool.map(client, range(clients)))


def test_compress_under_adaptive_batching(server):
    """A batch of Compress requests yields fewer rows than it was given, so it cannot be split by rows: each
    request must still get its own rows (the server runs them one by one)."""
    def call(c, r):
        rng = np.random.default_rng(10 * c + r)
        x = rng.normal(size=(4, 3)).astype(np.float32)
        keep = rng.random(4) < 0.5
        got = infer_json(server, "compress_batched", {"x": x, "keep": keep})["kept"]
        np.testing.assert_array_equal(got, x[keep])

    concurrently(8, 3, call)


def test_dynamic_quantize_under_adaptive_batching(server):
    """Each request gets the scale and zero point of its own data, not of the batch it was gathered into."""
    def call(c, r):
        x = (np.random.default_rng(10 * c + r).normal(size=(1 + c % 3, 4)) * (c + 1)).astype(np.float32)
        got = infer_json(server, "dynamic_quantize_batched", {"x": x})
        q, scale, zero_point = reference("dynamic_quantize").run(None, {"x": x})
        np.testing.assert_array_equal(got["q"], q)
        np.testing.assert_allclose(got["scale"], scale, rtol=1e-6)
        np.testing.assert_array_equal(got["zero_point"], zero_point)

    concurrently(8, 3, call)


# --- scalars ----------------------------------------------------------------------------------------------------

def test_scalar_metadata(server):
    meta = get(server, "/v2/models/scalars")
    assert {i["name"]: i["shape"] for i in meta["inputs"]} == {"x": [-1], "scale": []}
    assert {o["name"]: o["shape"] for o in meta["outputs"]} == {"scaled": [-1], "total": []}


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_scalar_input_and_output(server, transport):
    x = np.array([1.5, -2, 4.25], np.float32)
    scale = np.array(2.0, np.float32)
    got = TRANSPORTS[transport](server, "scalars", {"x": x, "scale": scale})
    assert got["total"].shape == () and got["scaled"].shape == (3,)
    np.testing.assert_array_equal(got["scaled"], x * scale)
    assert got["total"] == np.float32(7.5)


def test_scalar_over_json_wire(server):
    """On the wire a scalar is shape [] with one element in `data`."""
    body = {"inputs": [{"name": "x", "datatype": "FP32", "shape": [2], "data": [1, 2]},
                       {"name": "scale", "datatype": "FP32", "shape": [], "data": [3]}]}
    status, answer = post(server, "/v2/models/scalars/infer", body)
    assert status == 200, answer
    total = next(o for o in answer["outputs"] if o["name"] == "total")
    assert total["shape"] == [] and total["data"] == [9.0] and total["datatype"] == "FP32"


def test_scalar_from_mlserver_numpy_codec(server):
    """MLServer's NumpyCodec sends a 0-d array as [1] and a vector as [N, 1]; both are fitted to the model's rank
    (the documented [N] <-> [N, 1] rule), and the scalar output reads back with NumpyCodec."""
    from mlserver.codecs import NumpyCodec
    from mlserver.types import InferenceRequest, InferenceResponse

    x = np.array([1.5, -2, 4.25], np.float32)
    request = InferenceRequest(inputs=[NumpyCodec.encode_input("x", x),
                                       NumpyCodec.encode_input("scale", np.array(2.0, np.float32))])
    assert [i.shape for i in request.inputs] == [[3, 1], [1]]
    status, answer = post(server, "/v2/models/scalars/infer", request.model_dump())
    assert status == 200, answer
    outputs = {o.name: o for o in InferenceResponse.model_validate(answer).outputs}
    assert outputs["total"].shape == []
    assert NumpyCodec.decode_output(outputs["total"]) == np.float32(7.5)
    np.testing.assert_array_equal(NumpyCodec.decode_output(outputs["scaled"]), x * 2)


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_dynamic_quantize_uint8_and_scalar_outputs(server, transport):
    x = RNG.normal(size=(3, 4)).astype(np.float32)
    got = TRANSPORTS[transport](server, "dynamic_quantize", {"x": x})
    want = dict(zip(("q", "scale", "zero_point"), reference("dynamic_quantize").run(None, {"x": x})))
    assert got["q"].dtype == np.uint8 and got["zero_point"].shape == () and got["scale"].shape == ()
    np.testing.assert_array_equal(got["q"], want["q"])
    np.testing.assert_array_equal(got["zero_point"], want["zero_point"])
    np.testing.assert_allclose(got["scale"], want["scale"], rtol=1e-6)


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_exporter_tensor_names(server, transport):
    meta = get(server, "/v2/models/exporter_names")
    assert [i["name"] for i in meta["inputs"]] == ["input.1", "serving_default_x:0"]
    a, b = RNG.normal(size=(2, 2)).astype(np.float32), RNG.normal(size=(2, 2)).astype(np.float32)
    got = TRANSPORTS[transport](server, "exporter_names", {"input.1": a, "serving_default_x:0": b})
    np.testing.assert_array_equal(got["Identity:0"], a + b)


# --- FP16 end to end --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("transport", TRANSPORTS)
def test_fp16_end_to_end(server, transport):
    # Values FP16 holds exactly or nearly, including a subnormal and the largest finite one.
    x = np.array([[0.5, -1.25, 3.0], [1e-3, 6.0e-5, 65504 / 4], [-0.0, 2049.0, 0.1]], np.float16)
    got = TRANSPORTS[transport](server, "fp16", {"x": x})
    assert got["y"].dtype == np.float16 and got["row_sum"].dtype == np.float16
    np.testing.assert_array_equal(got["y"], x * np.float16(2) + np.float16(1))
    np.testing.assert_allclose(got["row_sum"].astype(np.float32), x.astype(np.float32).sum(1), rtol=2e-3)


def test_fp16_from_tritonclient_json_and_mlserver_codec(server):
    """tritonclient.http with binary_data=False sends FP16 as JSON numbers (Triton itself refuses them;
    MLServer accepts them), and MLServer's NumpyCodec does the same."""
    from mlserver.codecs import NumpyCodec
    from mlserver.types import InferenceRequest, InferenceResponse

    x = np.array([[0.1, 1, -2.5], [3.140625, 1000, -0.0]], np.float16)
    want = x * np.float16(2) + np.float16(1)
    got = infer_binary(server, "fp16", {"x": x}, binary=False)["y"]
    assert got.dtype == np.float16
    np.testing.assert_array_equal(got, want)
    request = InferenceRequest(inputs=[NumpyCodec.encode_input("x", x)])
    status, answer = post(server, "/v2/models/fp16/infer", request.model_dump())
    assert status == 200, answer
    y = next(o for o in InferenceResponse.model_validate(answer).outputs if o.name == "y")
    np.testing.assert_array_equal(NumpyCodec.decode_output(y), want)


def test_fp16_metadata_and_json_numbers(server):
    meta = get(server, "/v2/models/fp16")
    assert [(i["name"], i["datatype"]) for i in meta["inputs"]] == [("x", "FP16")]
    body = {"inputs": [{"name": "x", "datatype": "FP16", "shape": [1, 3], "data": [0.1, 1, -2.5]}]}
    status, answer = post(server, "/v2/models/fp16/infer", body)
    assert status == 200, answer
    y = next(o for o in answer["outputs"] if o["name"] == "y")
    assert y["datatype"] == "FP16"
    # JSON carries the FP16 values as numbers; each reads back to the same half.
    want = np.array([0.1, 1, -2.5], np.float16) * np.float16(2) + np.float16(1)
    np.testing.assert_array_equal(np.array(y["data"], np.float16), want)
