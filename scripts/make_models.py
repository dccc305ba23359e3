#!/usr/bin/env python3
"""Generate oxinfer's bundled example model repository, deterministically.

    scripts/make-models.sh                      # sets up .venv-models, then runs this
    python scripts/make_models.py --out model-repository

For each model below this writes ``<out>/<name>/model.onnx`` and an MLServer-style
``<out>/<name>/model-settings.json``; it also writes ``<out>/README.md`` and, only if it
does not exist yet, ``<out>/settings.json``.

Models (ONNX opset 17, IR version 8, dynamic dims are named ``dim_param``s):

  iris           LogisticRegression on scikit-learn's bundled iris data set:
                 input FP32 [N,4] -> label INT64 [N], probabilities FP32 [N,3]
  iris-labels    the same, trained on the class names:
                 input FP32 [N,4] -> label STRING [N], probabilities FP32 [N,3]
  datatypes      one Identity per datatype: input_<t> [N_<t>,M_<t>] -> output_<t>
                 for t in bool, int8..int64, uint8..uint64, fp16, fp32, fp64, string
  simple         Triton's ``simple``: INPUT0, INPUT1 INT32 [N,16] ->
                 OUTPUT0 = INPUT0 + INPUT1, OUTPUT1 = INPUT0 - INPUT1
  simple_string  Triton's ``simple_string``: the same on STRING tensors of decimal integers
  identity_string  Identity on one STRING tensor: INPUT0 [N] -> OUTPUT0 [N], for BYTES that are any
                 bytes (NUL, not UTF-8): ONNX Runtime's strings carry their length

With ``--fixtures DIR`` it also writes test fixtures (not served by default) to DIR:

  iris_zipmap.onnx          skl2onnx ``to_onnx`` defaults on LogisticRegression (iris, labels 0/1/2):
                            output_label INT64 [N], output_probability seq(map(int64, float))
  iris_zipmap_strings.onnx  the same trained on the class names: seq(map(string, float))
  seq_output.onnx           x FP32 [N,2] -> y = x (tensor), ys = [x, x] seq(tensor(float)),
                            yo = Optional(x) optional(tensor(float)): outputs V2 cannot carry
  slow_identity.onnx        x FP32 [N,M] -> y = x + 0, after a [2048,2048] MatMul of zeros made from x
                            (not foldable): a fixed cost per execution, whatever the batch size, so tests can
                            keep an instance busy while requests queue (batching, timeouts, backpressure)

Nothing is downloaded (iris ships inside scikit-learn) and every seed is fixed, so the
same pinned package versions (see make-models.sh) give byte-identical model.onnx files.
Every model is checked with ``onnx.checker.check_model(full_check=True)`` and run once
with onnxruntime, whose outputs are asserted, before the script reports success.
"""
import argparse
import hashlib
import json
import os

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper

SEED = 0
OPSET = 17
ML_OPSET = 3  # ai.onnx.ml opset that goes with ai.onnx 17 / IR 8
IR_VERSION = 8
PRODUCER = "oxinfer-make-models"
PRODUCER_VERSION = "1"
IMPLEMENTATION = "oxinfer.OnnxModel"

# Sample rows the iris models are checked on (and that the Rust tests use).
IRIS_SAMPLE = [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]]

# datatype suffix -> (ONNX element type, numpy dtype, KServe V2 datatype)
DATATYPES = [
    ("bool", TensorProto.BOOL, np.bool_, "BOOL"),
    ("int8", TensorProto.INT8, np.int8, "INT8"),
    ("int16", TensorProto.INT16, np.int16, "INT16"),
    ("int32", TensorProto.INT32, np.int32, "INT32"),
    ("int64", TensorProto.INT64, np.int64, "INT64"),
    ("uint8", TensorProto.UINT8, np.uint8, "UINT8"),
    ("uint16", TensorProto.UINT16, np.uint16, "UINT16"),
    ("uint32", TensorProto.UINT32, np.uint32, "UINT32"),
    ("uint64", TensorProto.UINT64, np.uint64, "UINT64"),
    ("fp16", TensorProto.FLOAT16, np.float16, "FP16"),
    ("fp32", TensorProto.FLOAT, np.float32, "FP32"),
    ("fp64", TensorProto.DOUBLE, np.float64, "FP64"),
    ("string", TensorProto.STRING, object, "BYTES"),
]


# --------------------------------------------------------------------------- helpers


def tensor(name, elem_type, shape):
    return helper.make_tensor_value_info(name, elem_type, shape)


def finish_model(graph, ml=False):
    """Wrap a graph in a model with fixed opsets, IR version and producer fields."""
    opsets = [helper.make_opsetid("", OPSET)]
    if ml:
        opsets.append(helper.make_opsetid("ai.onnx.ml", ML_OPSET))
    model = helper.make_model(
        graph,
        opset_imports=opsets,
        producer_name=PRODUCER,
        producer_version=PRODUCER_VERSION,
    )
    model.ir_version = IR_VERSION
    model.doc_string = ""
    return model


def session(path):
    return ort.InferenceSession(path, providers=["CPUExecutionProvider"])


# Class labels for the classification extension (model-settings outputs[].parameters.labels).
LABELS = {"iris": {"probabilities": ["setosa", "versicolor", "virginica"]}}

# Declared inputs (content types for the codecs) per model.
INPUTS = {
    "image_stats": [
        {
            "name": "image",
            "datatype": "UINT8",
            "shape": [-1, 32, 32, 3],
            "parameters": {"content_type": "img", "resize": True},
        }
    ]
}


def save(out, name, model):
    """Check and write <out>/<name>/model.onnx and its model-settings.json; return the path."""
    onnx.checker.check_model(model, full_check=True)
    d = os.path.join(out, name)
    os.makedirs(d, exist_ok=True)
    path = os.path.join(d, "model.onnx")
    with open(path, "wb") as f:
        f.write(model.SerializeToString())
    # Round-trip through the file, as the server will see it.
    onnx.checker.check_model(onnx.load(path), full_check=True)
    settings = {
        "name": name,
        "implementation": IMPLEMENTATION,
        "parameters": {"uri": "./model.onnx"},
    }
    if name in INPUTS:
        settings["inputs"] = INPUTS[name]
    if name in LABELS:
        settings["outputs"] = [
            {"name": output, "parameters": {"labels": labels}} for output, labels in LABELS[name].items()
        ]
    write_text(os.path.join(d, "model-settings.json"), json.dumps(settings, indent=2) + "\n")
    return path


def write_text(path, text):
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        f.write(text)


# --------------------------------------------------------------------------- iris


def make_iris(out, name, string_labels):
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    iris = load_iris()  # bundled with scikit-learn: no download
    X = iris.data
    y = iris.target_names[iris.target] if string_labels else iris.target
    clf = LogisticRegression(max_iter=1000, random_state=SEED).fit(X, y)

    converted = convert_sklearn(
        clf,
        initial_types=[("input", FloatTensorType([None, 4]))],
        options={id(clf): {"zipmap": False}},
        target_opset={"": OPSET, "ai.onnx.ml": ML_OPSET},
    )
    # Keep only skl2onnx's nodes (and initializers, if any) and rebuild the model around
    # them: fixed graph name (skl2onnx uses a random uuid), named dynamic batch dims,
    # clean opset imports, fixed producer fields.
    renames = {"output_label": "label", "output_probability": "probabilities"}
    nodes = []
    for node in converted.graph.node:
        node.input[:] = [renames.get(i, i) for i in node.input]
        node.output[:] = [renames.get(o, o) for o in node.output]
        node.doc_string = ""
        nodes.append(node)
    label_type = TensorProto.STRING if string_labels else TensorProto.INT64
    graph = helper.make_graph(
        nodes,
        name,
        [tensor("input", TensorProto.FLOAT, ["N", 4])],
        [tensor("label", label_type, ["N"]), tensor("probabilities", TensorProto.FLOAT, ["N", 3])],
        initializer=list(converted.graph.initializer),
    )
    path = save(out, name, finish_model(graph, ml=True))

    # Run it: agrees with scikit-learn on all 150 rows and on the sample rows.
    sess = session(path)
    X32 = X.astype(np.float32)
    label, prob = sess.run(["label", "probabilities"], {"input": X32})
    assert label.shape == (150,) and prob.shape == (150, 3), name
    assert (label == clf.predict(X32)).all(), f"{name}: labels differ from scikit-learn"
    assert np.allclose(prob, clf.predict_proba(X32), atol=1e-5), f"{name}: probabilities differ"
    assert np.allclose(prob.sum(axis=1), 1.0, atol=1e-6), name

    sample = np.array(IRIS_SAMPLE, dtype=np.float32)
    label, prob = sess.run(["label", "probabilities"], {"input": sample})
    want = ["setosa", "virginica"] if string_labels else [0, 2]
    assert list(label) == want, f"{name}: sample labels {list(label)} != {want}"
    assert prob.dtype == np.float32 and prob.shape == (2, 3)
    assert prob[0, 0] > 0.95 and prob[1, 2] > 0.9, f"{name}: sample probabilities {prob}"
    return path, label, prob


# --------------------------------------------------------------------------- datatypes


def make_datatypes(out):
    name = "datatypes"
    inputs, outputs, nodes = [], [], []
    for suffix, elem, _, _ in DATATYPES:
        shape = [f"N_{suffix}", f"M_{suffix}"]
        inputs.append(tensor(f"input_{suffix}", elem, shape))
        outputs.append(tensor(f"output_{suffix}", elem, shape))
        nodes.append(
            helper.make_node("Identity", [f"input_{suffix}"], [f"output_{suffix}"], name=f"identity_{suffix}")
        )
    path = save(out, name, finish_model(helper.make_graph(nodes, name, inputs, outputs)))

    # Round-trip every type, each with its own (independent) shape.
    sess = session(path)
    rng = np.random.default_rng(SEED)
    feeds = {}
    for k, (suffix, _, dtype, _) in enumerate(DATATYPES):
        shape = (1 + k % 3, 2 + k % 4)
        if dtype is np.bool_:
            v = rng.integers(0, 2, size=shape).astype(np.bool_)
        elif dtype is object:
            v = np.array([f"s{i}é" for i in range(shape[0] * shape[1])], dtype=object).reshape(shape)
        elif np.issubdtype(dtype, np.integer):
            info = np.iinfo(dtype)
            v = rng.integers(info.min, info.max, size=shape, dtype=dtype, endpoint=True)
            v.flat[0], v.flat[-1] = info.min, info.max
        else:
            v = rng.standard_normal(size=shape).astype(dtype)
        feeds[f"input_{suffix}"] = v
    names = [f"output_{s}" for s, *_ in DATATYPES]
    got = dict(zip(names, sess.run(names, feeds)))
    for suffix, _, dtype, _ in DATATYPES:
        a, b = feeds[f"input_{suffix}"], got[f"output_{suffix}"]
        assert b.dtype == a.dtype and b.shape == a.shape, (suffix, b.dtype, b.shape)
        assert (a == b).all(), f"datatypes: {suffix} did not round-trip"
    return path


# --------------------------------------------------------------------------- simple


def make_simple(out):
    name = "simple"
    shape = ["N", 16]
    graph = helper.make_graph(
        [
            helper.make_node("Add", ["INPUT0", "INPUT1"], ["OUTPUT0"], name="add"),
            helper.make_node("Sub", ["INPUT0", "INPUT1"], ["OUTPUT1"], name="sub"),
        ],
        name,
        [tensor("INPUT0", TensorProto.INT32, shape), tensor("INPUT1", TensorProto.INT32, shape)],
        [tensor("OUTPUT0", TensorProto.INT32, shape), tensor("OUTPUT1", TensorProto.INT32, shape)],
    )
    path = save(out, name, finish_model(graph))

    # Triton's simple client example: INPUT0 = 0..15, INPUT1 = all ones.
    a = np.arange(16, dtype=np.int32).reshape(1, 16)
    b = np.ones((1, 16), dtype=np.int32)
    s, d = session(path).run(["OUTPUT0", "OUTPUT1"], {"INPUT0": a, "INPUT1": b})
    assert s.dtype == np.int32 and d.dtype == np.int32
    assert (s == a + b).all() and (d == a - b).all()
    return path


def make_image_stats(out):
    """UINT8 HWC pixels [N,32,32,3] -> per-channel mean FP32 [N,3]: an image model with its preprocessing in the graph."""
    name = "image_stats"
    graph = helper.make_graph(
        [
            helper.make_node("Cast", ["image"], ["pixels"], name="to_float", to=TensorProto.FLOAT),
            helper.make_node("ReduceMean", ["pixels"], ["mean"], name="mean", axes=[1, 2], keepdims=0),
        ],
        name,
        [tensor("image", TensorProto.UINT8, ["N", 32, 32, 3])],
        [tensor("mean", TensorProto.FLOAT, ["N", 3])],
    )
    path = save(out, name, finish_model(graph))
    img = np.zeros((1, 32, 32, 3), dtype=np.uint8)
    img[..., 0] = 255
    img[:, :16, :, 2] = 100
    (mean,) = session(path).run(["mean"], {"image": img})
    assert np.allclose(mean, [[255.0, 0.0, 50.0]]), mean
    return path


def make_simple_string(out):
    name = "simple_string"
    shape = ["N", 16]
    graph = helper.make_graph(
        [
            helper.make_node("Cast", ["INPUT0"], ["a"], to=TensorProto.INT32, name="parse0"),
            helper.make_node("Cast", ["INPUT1"], ["b"], to=TensorProto.INT32, name="parse1"),
            helper.make_node("Add", ["a", "b"], ["sum"], name="add"),
            helper.make_node("Sub", ["a", "b"], ["diff"], name="sub"),
            helper.make_node("Cast", ["sum"], ["OUTPUT0"], to=TensorProto.STRING, name="format0"),
            helper.make_node("Cast", ["diff"], ["OUTPUT1"], to=TensorProto.STRING, name="format1"),
        ],
        name,
        [tensor("INPUT0", TensorProto.STRING, shape), tensor("INPUT1", TensorProto.STRING, shape)],
        [tensor("OUTPUT0", TensorProto.STRING, shape), tensor("OUTPUT1", TensorProto.STRING, shape)],
    )
    path = save(out, name, finish_model(graph))

    sess = session(path)
    a = np.arange(16, dtype=np.int64).reshape(1, 16)
    a[0, 0], a[0, 1], a[0, 2] = 1, -5, 1000000
    b = np.ones((1, 16), dtype=np.int64)
    b[0, 0], b[0, 1], b[0, 2] = 2, 0, -7
    to_str = np.vectorize(str, otypes=[object])
    s, d = sess.run(["OUTPUT0", "OUTPUT1"], {"INPUT0": to_str(a), "INPUT1": to_str(b)})
    assert s.shape == (1, 16) and d.shape == (1, 16)
    assert s[0, 0] == "3" and s[0, 1] == "-5" and d[0, 1] == "-5", (s, d)
    assert (s == to_str(a + b)).all() and (d == to_str(a - b)).all(), (s, d)
    return path


def make_identity_string(out):
    name = "identity_string"
    graph = helper.make_graph(
        [helper.make_node("Identity", ["INPUT0"], ["OUTPUT0"], name="identity")],
        name,
        [tensor("INPUT0", TensorProto.STRING, ["N"])],
        [tensor("OUTPUT0", TensorProto.STRING, ["N"])],
    )
    path = save(out, name, finish_model(graph))
    # numpy object arrays of str: onnxruntime's Python binding passes text, so this checks the graph, not bytes.
    x = np.array(["a", "", "é"], dtype=object)
    (y,) = session(path).run(["OUTPUT0"], {"INPUT0": x})
    assert y.shape == (3,) and list(y) == list(x), y
    return path


# --------------------------------------------------------------------------- test fixtures


def make_iris_zipmap(fixtures, string_labels):
    """skl2onnx's default conversion, untouched: probabilities as a ZipMap (a sequence of maps)."""
    from skl2onnx import to_onnx
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    iris = load_iris()
    X = iris.data.astype(np.float32)
    y = iris.target_names[iris.target] if string_labels else iris.target
    clf = LogisticRegression(max_iter=1000, random_state=SEED).fit(X, y)
    model = to_onnx(clf, X[:1])  # deterministic: fixed graph name, opsets and IR version
    onnx.checker.check_model(model, full_check=True)
    name = "iris_zipmap_strings.onnx" if string_labels else "iris_zipmap.onnx"
    path = os.path.join(fixtures, name)
    with open(path, "wb") as f:
        f.write(model.SerializeToString())

    sess = session(path)
    sample = np.array(IRIS_SAMPLE, dtype=np.float32)
    label, maps = sess.run(None, {"X": sample})
    assert list(label) == list(clf.predict(sample)), name
    keys = list(clf.classes_)
    prob = np.array([[m[k] for k in keys] for m in maps], dtype=np.float32)
    assert np.allclose(prob, clf.predict_proba(sample), atol=1e-5), name
    return path, keys, label, prob


def make_seq_output(fixtures):
    """A tensor output next to a sequence of tensors and an optional tensor."""
    graph = helper.make_graph(
        [
            helper.make_node("Identity", ["x"], ["y"], name="copy"),
            helper.make_node("SequenceConstruct", ["x", "x"], ["ys"], name="twice"),
            helper.make_node("Optional", ["x"], ["yo"], name="maybe"),
        ],
        "seq_output",
        [tensor("x", TensorProto.FLOAT, ["N", 2])],
        [
            tensor("y", TensorProto.FLOAT, ["N", 2]),
            helper.make_tensor_sequence_value_info("ys", TensorProto.FLOAT, ["N", 2]),
            helper.make_value_info(
                "yo", helper.make_optional_type_proto(helper.make_tensor_type_proto(TensorProto.FLOAT, ["N", 2]))
            ),
        ],
    )
    model = finish_model(graph)
    onnx.checker.check_model(model, full_check=True)
    path = os.path.join(fixtures, "seq_output.onnx")
    with open(path, "wb") as f:
        f.write(model.SerializeToString())
    x = np.array([[1.0, 2.0]], dtype=np.float32)
    y, ys, yo = session(path).run(None, {"x": x})
    assert (y == x).all() and len(ys) == 2 and (yo == x).all()
    return path


def make_slow_identity(fixtures):
    """y = x, after a large MatMul that depends on x (so ONNX Runtime cannot fold it at load)."""
    k = 2048
    graph = helper.make_graph(
        [
            helper.make_node("ReduceSum", ["x"], ["s"], name="sum", keepdims=0),
            helper.make_node("Mul", ["s", "zero"], ["z"], name="to_zero"),
            helper.make_node("Expand", ["z", "square"], ["zs"], name="spread"),
            helper.make_node("MatMul", ["zs", "zs"], ["p"], name="work"),
            helper.make_node("ReduceSum", ["p"], ["q"], name="collapse", keepdims=0),
            helper.make_node("Add", ["x", "q"], ["y"], name="add_zero"),
        ],
        "slow_identity",
        [tensor("x", TensorProto.FLOAT, ["N", "M"])],
        [tensor("y", TensorProto.FLOAT, ["N", "M"])],
        [
            helper.make_tensor("zero", TensorProto.FLOAT, [], [0.0]),
            helper.make_tensor("square", TensorProto.INT64, [2], [k, k]),
        ],
    )
    model = finish_model(graph)
    onnx.checker.check_model(model, full_check=True)
    path = os.path.join(fixtures, "slow_identity.onnx")
    with open(path, "wb") as f:
        f.write(model.SerializeToString())
    x = np.array([[1.0, 2.0], [3.0, 4.0]], dtype=np.float32)
    (y,) = session(path).run(None, {"x": x})
    assert (y == x).all()
    return path


def make_fixtures(fixtures):
    os.makedirs(fixtures, exist_ok=True)
    results = [make_iris_zipmap(fixtures, False), make_iris_zipmap(fixtures, True)]
    paths = [p for p, *_ in results] + [make_seq_output(fixtures), make_slow_identity(fixtures)]
    for p in paths:
        data = open(p, "rb").read()
        print(f"{os.path.relpath(p, fixtures)}: {len(data)} B sha256 {hashlib.sha256(data).hexdigest()}")
    for path, keys, label, prob in results:
        print(f"{os.path.basename(path)} on {IRIS_SAMPLE}: keys {keys}, label {label.tolist()}")
        print(f"  probabilities (exact as f64) {[[repr(float(x)) for x in row] for row in prob]}")


# --------------------------------------------------------------------------- repo files


def describe(path):
    sess = session(path)

    def fmt(v):
        dims = ",".join(str(d) for d in v.shape)
        return f"`{v.name}` {v.type.replace('tensor(', '').rstrip(')')} [{dims}]"

    return [fmt(i) for i in sess.get_inputs()], [fmt(o) for o in sess.get_outputs()]


README_HEAD = """\
# Example model repository

Example ONNX models for oxinfer, laid out as an MLServer model repository: one folder per
model, each with `model.onnx` and an MLServer-style `model-settings.json`
(`"implementation": "oxinfer.OnnxModel"`, `"parameters": {"uri": "./model.onnx"}`).

All models use ONNX opset 17 (ai.onnx.ml 3 for the iris models) and IR version 8. Dynamic
dimensions are named (`N`, `N_int8`, ...): every input of `datatypes` has its own.

| model | inputs | outputs | computes |
| --- | --- | --- | --- |
| `iris` | `input` FP32 [N,4] | `label` INT64 [N], `probabilities` FP32 [N,3] | scikit-learn LogisticRegression on the iris data set; labels 0/1/2 |
| `iris-labels` | `input` FP32 [N,4] | `label` BYTES (string) [N], `probabilities` FP32 [N,3] | the same, labels `setosa`/`versicolor`/`virginica` |
| `datatypes` | `input_<t>` [N_<t>,M_<t>] for each t | `output_<t>`, same type and shape | Identity per datatype; t = bool, int8, int16, int32, int64, uint8, uint16, uint32, uint64, fp16, fp32, fp64, string |
| `simple` | `INPUT0`, `INPUT1` INT32 [N,16] | `OUTPUT0`, `OUTPUT1` INT32 [N,16] | Triton's `simple`: `OUTPUT0 = INPUT0 + INPUT1`, `OUTPUT1 = INPUT0 - INPUT1` |
| `simple_string` | `INPUT0`, `INPUT1` BYTES (string) [N,16] | `OUTPUT0`, `OUTPUT1` BYTES (string) [N,16] | Triton's `simple_string`: decimal integer strings, their sum and difference as strings |
| `identity_string` | `INPUT0` BYTES (string) [N] | `OUTPUT0` BYTES (string) [N] | Identity: any bytes (NUL, not UTF-8) come back as sent |

Regenerate (needs python3 and PyPI; builds `.venv-models/` with pinned packages, then runs
`scripts/make_models.py`, which checks and runs every model before writing it):

    scripts/make-models.sh

The same pinned versions give byte-identical `model.onnx` files:

"""


def write_repo_files(out, paths):
    settings = os.path.join(out, "settings.json")
    if not os.path.exists(settings):  # the server's own settings: never overwritten
        write_text(settings, json.dumps({"debug": False}, indent=2) + "\n")
    lines = ["| file | bytes | sha256 |", "| --- | --- | --- |"]
    for p in paths:
        rel = os.path.relpath(p, out).replace(os.sep, "/")
        data = open(p, "rb").read()
        lines.append(f"| `{rel}` | {len(data)} | `{hashlib.sha256(data).hexdigest()}` |")
    write_text(os.path.join(out, "README.md"), README_HEAD + "\n".join(lines) + "\n")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True, help="model repository folder to write")
    ap.add_argument("--fixtures", help="also write the test fixtures (tests/models) to this folder")
    args = ap.parse_args()
    out = os.path.abspath(args.out)
    os.makedirs(out, exist_ok=True)

    np.set_printoptions(precision=9, floatmode="maxprec")
    iris, iris_label, iris_prob = make_iris(out, "iris", string_labels=False)
    labels, labels_label, labels_prob = make_iris(out, "iris-labels", string_labels=True)
    paths = [iris, labels, make_datatypes(out), make_simple(out), make_simple_string(out), make_image_stats(out),
             make_identity_string(out)]
    write_repo_files(out, paths)

    for p in paths:
        ins, outs = describe(p)
        size = os.path.getsize(p)
        sha = hashlib.sha256(open(p, "rb").read()).hexdigest()
        print(f"{os.path.relpath(p, out)}: {size} B sha256 {sha}")
        print(f"  in  {', '.join(ins)}")
        print(f"  out {', '.join(outs)}")
    for name, label, prob in [("iris", iris_label, iris_prob), ("iris-labels", labels_label, labels_prob)]:
        print(f"{name} on {IRIS_SAMPLE}:")
        print(f"  label         {label.tolist()}")
        print(f"  probabilities (f32, shortest) {[[str(x) for x in row] for row in prob]}")
        print(f"  probabilities (exact as f64) {[[repr(float(x)) for x in row] for row in prob]}")
        print(f"  (float32 hex) {[[x.astype('<f4').tobytes().hex() for x in row] for row in prob]}")
    print(f"ok: {len(paths)} models in {out}")
    if args.fixtures:
        make_fixtures(os.path.abspath(args.fixtures))


if __name__ == "__main__":
    main()
