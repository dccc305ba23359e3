"""A BERT-shaped encoder built with onnx.helper (no torch): INT64 `input_ids` and `attention_mask` with named
dimensions `batch` and `sequence`, an embedding Gather, a dense layer, the mask applied, and mean pooling, with
a per-token output [batch, sequence, hidden] and a pooled one [batch, hidden]. Concurrent requests of
different sequence lengths go to the model served plainly and with adaptive batching; every answer is
compared with onnx's ReferenceEvaluator on that request alone."""

import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper
from onnx.reference import ReferenceEvaluator

from zoo_util import get, infer_binary, infer_grpc, infer_json, make_model

VOCAB, HIDDEN = 64, 8
LENGTHS = [3, 5, 8, 13]
WORKERS = 8


def encoder():
    rng = np.random.default_rng(0)
    embeddings = rng.normal(size=(VOCAB, HIDDEN)).astype(np.float32)
    weight = (rng.normal(size=(HIDDEN, HIDDEN)) / np.sqrt(HIDDEN)).astype(np.float32)
    bias = rng.normal(size=(HIDDEN,)).astype(np.float32)
    init = [
        numpy_helper.from_array(embeddings, "embeddings"),
        numpy_helper.from_array(weight, "dense.weight"),
        numpy_helper.from_array(bias, "dense.bias"),
        numpy_helper.from_array(np.array([-1], dtype=np.int64), "last_axis"),
        numpy_helper.from_array(np.array([1], dtype=np.int64), "sequence_axis"),
        numpy_helper.from_array(np.array(1e-9, dtype=np.float32), "epsilon"),
    ]
    nodes = [
        helper.make_node("Gather", ["embeddings", "input_ids"], ["embedded"]),          # [b, s, h]
        helper.make_node("MatMul", ["embedded", "dense.weight"], ["projected"]),
        helper.make_node("Add", ["projected", "dense.bias"], ["biased"]),
        helper.make_node("Tanh", ["biased"], ["activated"]),
        helper.make_node("Cast", ["attention_mask"], ["mask"], to=TensorProto.FLOAT),   # [b, s]
        helper.make_node("Unsqueeze", ["mask", "last_axis"], ["mask3"]),                # [b, s, 1]
        helper.make_node("Mul", ["activated", "mask3"], ["last_hidden_state"]),         # [b, s, h]
        helper.make_node("ReduceSum", ["last_hidden_state", "sequence_axis"], ["summed"], keepdims=0),
        helper.make_node("ReduceSum", ["mask3", "sequence_axis"], ["count"], keepdims=0),  # [b, 1]
        helper.make_node("Max", ["count", "epsilon"], ["safe_count"]),
        helper.make_node("Div", ["summed", "safe_count"], ["pooler_output"]),           # [b, h]
    ]
    inputs = [helper.make_tensor_value_info(n, TensorProto.INT64, ["batch", "sequence"])
              for n in ("input_ids", "attention_mask")]
    outputs = [
        helper.make_tensor_value_info("last_hidden_state", TensorProto.FLOAT, ["batch", "sequence", HIDDEN]),
        helper.make_tensor_value_info("pooler_output", TensorProto.FLOAT, ["batch", HIDDEN]),
    ]
    return make_model(nodes, inputs, outputs, init, opset=17)


@pytest.fixture(scope="module")
def zoo(zoo_server):
    model = encoder()
    server = zoo_server({"encoder": model, "encoder_batched": model},
                        settings={"encoder_batched": {"max_batch_size": 8, "max_batch_time": 0.01}})
    return server, ReferenceEvaluator(model)


def tokens(seed, batch, length):
    """Token ids with right padding: every row keeps at least one real token."""
    rng = np.random.default_rng(seed)
    ids = rng.integers(1, VOCAB, size=(batch, length), dtype=np.int64)
    mask = np.ones((batch, length), dtype=np.int64)
    for row in range(batch):
        real = int(rng.integers(1, length + 1))
        mask[row, real:] = 0
        ids[row, real:] = 0
    return {"input_ids": ids, "attention_mask": mask}


def expected(reference, arrays):
    """onnx's reference evaluator on one request (test_reference_matches_numpy checks it against numpy)."""
    hidden, pooled = reference.run(None, arrays)
    return {"last_hidden_state": hidden, "pooler_output": pooled}


def check(got, want, names=("last_hidden_state", "pooler_output")):
    assert sorted(got) == sorted(names), f"outputs {sorted(got)}, asked for {sorted(names)}"
    for name in names:
        assert got[name].shape == want[name].shape, name
        np.testing.assert_allclose(got[name], want[name], rtol=1e-5, atol=1e-5, err_msg=name)


def test_metadata_has_named_dimensions_as_variable(zoo):
    server, _ = zoo
    meta = get(server, "/v2/models/encoder")
    assert [(i["name"], i["datatype"], i["shape"]) for i in meta["inputs"]] == [
        ("input_ids", "INT64", [-1, -1]), ("attention_mask", "INT64", [-1, -1])]
    assert [(o["name"], o["datatype"], o["shape"]) for o in meta["outputs"]] == [
        ("last_hidden_state", "FP32", [-1, -1, HIDDEN]), ("pooler_output", "FP32", [-1, HIDDEN])]


def test_reference_matches_numpy(zoo):
    """The reference evaluator agrees with a direct numpy mean pooling (so it is a fair judge)."""
    _, reference = zoo
    arrays = tokens(1, 2, 5)
    want = expected(reference, arrays)
    mask = arrays["attention_mask"][..., None].astype(np.float32)
    pooled = (want["last_hidden_state"] * mask).sum(1) / mask.sum(1)
    np.testing.assert_allclose(want["pooler_output"], pooled, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("send", [infer_json, infer_binary, infer_grpc], ids=["json", "binary", "grpc"])
def test_one_request_each_transport(zoo, send):
    server, reference = zoo
    arrays = tokens(2, 3, 7)
    check(send(server, "encoder", arrays), expected(reference, arrays))


@pytest.mark.parametrize("model", ["encoder", "encoder_batched"])
def test_concurrent_requests_of_different_lengths(zoo, model):
    """8 workers send rounds of requests together; in each round two workers share each sequence length (so a
    batch can form) and the others differ (so it cannot hold them all). Each answer is that request's own, with
    only the outputs it asked for (some ask for the pooled output alone)."""
    server, reference = zoo
    rounds = 6
    barrier = threading.Barrier(WORKERS)

    def pooled_only(server, model, arrays):
        return infer_json(server, model, arrays, outputs=[{"name": "pooler_output"}])

    sends = [infer_json, infer_binary, infer_grpc, pooled_only]

    def worker(w):
        failures = []
        for r in range(rounds):
            length = LENGTHS[(w + r) % len(LENGTHS)]
            batch = 1 + (w + r) % 3
            arrays = tokens(1000 * w + r, batch, length)
            barrier.wait(timeout=60)
            # Workers w and w + 4 share a length, not a transport: batches mix transports and output choices.
            send = sends[(w // 4 + r) % len(sends)]
            got = send(server, model, arrays)
            try:
                if send is pooled_only:
                    check(got, expected(reference, arrays), names=("pooler_output",))
                else:
                    check(got, expected(reference, arrays))
            except AssertionError as e:
                failures.append(f"worker {w} round {r} (batch {batch}, length {length}): {e}")
        return failures

    # An idle instance runs a request at once (no window), so a batch forms only from requests that arrive while
    # it computes: the batched model repeats the rounds until one has (every answer is checked each time).
    for _ in range(10 if model == "encoder_batched" else 1):
        with ThreadPoolExecutor(WORKERS) as pool:
            failures = [f for fs in pool.map(worker, range(WORKERS)) for f in fs]
        assert not failures, "\n".join(failures)
        if model != "encoder_batched":
            break
        [stats] = get(server, f"/v2/models/{model}/stats")["model_stats"]
        if stats["execution_count"] < stats["inference_count"]:
            break
    if model == "encoder_batched":
        # Requests that shared a length were run together at least once.
        assert stats["execution_count"] < stats["inference_count"], stats
