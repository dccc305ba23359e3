//! Reads what ONNX Runtime does not expose from an .onnx file's graph: the keys a ZipMap node gives its maps.
//!
//! Only the fields needed are declared (numbers from the ONNX spec's `onnx.proto`); prost skips the rest
//! (initializers, types, docs) without allocating them. Node attributes stay undecoded bytes until the node
//! is a ZipMap, so a large tree ensemble's attribute arrays are never expanded.

use std::collections::HashMap;

use bytes::Bytes;
use prost::Message;

/// `ModelProto`: only its graph.
#[derive(Clone, PartialEq, Message)]
struct ModelProto {
    #[prost(message, optional, tag = "7")]
    graph: Option<GraphProto>,
}

/// `GraphProto`: only its nodes (top level; subgraphs of If/Loop are not searched).
#[derive(Clone, PartialEq, Message)]
struct GraphProto {
    #[prost(message, repeated, tag = "1")]
    node: Vec<NodeProto>,
}

/// `NodeProto`; `attribute` holds each encoded `AttributeProto`, decoded on demand.
#[derive(Clone, PartialEq, Message)]
struct NodeProto {
    #[prost(string, repeated, tag = "1")]
    input: Vec<String>,
    #[prost(string, repeated, tag = "2")]
    output: Vec<String>,
    #[prost(string, tag = "3")]
    name: String,
    #[prost(string, tag = "4")]
    op_type: String,
    #[prost(bytes = "bytes", repeated, tag = "5")]
    attribute: Vec<Bytes>,
    #[prost(string, tag = "7")]
    domain: String,
}

/// `AttributeProto`: name and the two list fields ZipMap uses. ONNX writes `ints` unpacked (proto2); prost
/// reads both encodings.
#[derive(Clone, PartialEq, Message)]
struct AttributeProto {
    #[prost(string, tag = "1")]
    name: String,
    #[prost(int64, repeated, packed = "false", tag = "8")]
    ints: Vec<i64>,
    #[prost(bytes = "vec", repeated, tag = "9")]
    strings: Vec<Vec<u8>>,
}

/// The keys of a ZipMap's maps, in the order the node lists them (`classlabels_int64s` or
/// `classlabels_strings`).
#[derive(Debug, Clone, PartialEq)]
pub enum MapKeys {
    Int64(Vec<i64>),
    String(Vec<String>),
}

impl MapKeys {
    pub fn len(&self) -> usize {
        match self {
            MapKeys::Int64(k) => k.len(),
            MapKeys::String(k) => k.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The keys as JSON values (numbers or strings), for the `labels` parameter.
    pub fn to_json(&self) -> serde_json::Value {
        match self {
            MapKeys::Int64(k) => k.iter().copied().collect(),
            MapKeys::String(k) => k.iter().cloned().collect(),
        }
    }

    /// The keys as text, for the classification extension's labels.
    pub fn to_strings(&self) -> Vec<String> {
        match self {
            MapKeys::Int64(k) => k.iter().map(i64::to_string).collect(),
            MapKeys::String(k) => k.clone(),
        }
    }
}

/// Longest chain of Identity nodes followed back from an output to its ZipMap.
const MAX_IDENTITY_HOPS: usize = 16;

/// For each of `outputs` (graph output names), the keys of the ZipMap node that produces it, or why they
/// cannot be known. `model` is the .onnx file's bytes.
pub fn zipmap_keys(
    model: Bytes,
    outputs: &[&str],
) -> Result<HashMap<String, Result<MapKeys, String>>, String> {
    let model =
        ModelProto::decode(model).map_err(|e| format!("cannot read the ONNX graph: {e}"))?;
    let nodes = model.graph.map(|g| g.node).unwrap_or_default();
    let producers: HashMap<&str, &NodeProto> = nodes
        .iter()
        .flat_map(|n| n.output.iter().map(move |o| (o.as_str(), n)))
        .collect();
    Ok(outputs
        .iter()
        .map(|&name| (name.to_string(), keys_of(&producers, name)))
        .collect())
}

fn keys_of(producers: &HashMap<&str, &NodeProto>, output: &str) -> Result<MapKeys, String> {
    let mut value = output;
    for _ in 0..=MAX_IDENTITY_HOPS {
        let node = producers
            .get(value)
            .ok_or_else(|| format!("no node of the graph produces '{value}'"))?;
        match (node.domain.as_str(), node.op_type.as_str()) {
            ("", "Identity") | ("ai.onnx", "Identity") => match node.input.first() {
                Some(input) => value = input,
                None => return Err(format!("Identity node '{}' has no input", node.name)),
            },
            ("ai.onnx.ml", "ZipMap") => return zipmap_attribute(node),
            (domain, op) => {
                let op = if domain.is_empty() {
                    op.to_string()
                } else {
                    format!("{domain}.{op}")
                };
                return Err(format!(
                    "it comes from a {op} node, not a ZipMap, so its keys are unknown"
                ));
            }
        }
    }
    Err(format!(
        "more than {MAX_IDENTITY_HOPS} Identity nodes lead to it"
    ))
}

fn zipmap_attribute(node: &NodeProto) -> Result<MapKeys, String> {
    for raw in &node.attribute {
        let attribute = AttributeProto::decode(raw.clone())
            .map_err(|e| format!("ZipMap node '{}': bad attribute: {e}", node.name))?;
        match attribute.name.as_str() {
            "classlabels_int64s" => return Ok(MapKeys::Int64(attribute.ints)),
            "classlabels_strings" => {
                let keys = attribute
                    .strings
                    .into_iter()
                    .map(|s| {
                        String::from_utf8(s).map_err(|_| {
                            format!("ZipMap node '{}' has a key that is not UTF-8", node.name)
                        })
                    })
                    .collect::<Result<_, _>>()?;
                return Ok(MapKeys::String(keys));
            }
            _ => {}
        }
    }
    Err(format!(
        "ZipMap node '{}' has neither classlabels_int64s nor classlabels_strings",
        node.name
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(
        op: &str,
        domain: &str,
        inputs: &[&str],
        outputs: &[&str],
        attrs: Vec<AttributeProto>,
    ) -> NodeProto {
        NodeProto {
            input: inputs.iter().map(|s| s.to_string()).collect(),
            output: outputs.iter().map(|s| s.to_string()).collect(),
            name: format!("{op}_node"),
            op_type: op.into(),
            attribute: attrs
                .iter()
                .map(|a| Bytes::from(a.encode_to_vec()))
                .collect(),
            domain: domain.into(),
        }
    }

    fn ints(name: &str, values: Vec<i64>) -> AttributeProto {
        AttributeProto {
            name: name.into(),
            ints: values,
            strings: vec![],
        }
    }

    fn encode(nodes: Vec<NodeProto>) -> Bytes {
        Bytes::from(
            ModelProto {
                graph: Some(GraphProto { node: nodes }),
            }
            .encode_to_vec(),
        )
    }

    #[test]
    fn finds_int_and_string_keys_in_graph_order() {
        let model = encode(vec![
            node(
                "LinearClassifier",
                "ai.onnx.ml",
                &["x"],
                &["label", "scores"],
                vec![],
            ),
            node(
                "ZipMap",
                "ai.onnx.ml",
                &["scores"],
                &["probs"],
                vec![
                    ints("other", vec![7]),
                    ints("classlabels_int64s", vec![2, 0, 1]),
                ],
            ),
            node(
                "ZipMap",
                "ai.onnx.ml",
                &["scores"],
                &["z"],
                vec![AttributeProto {
                    name: "classlabels_strings".into(),
                    ints: vec![],
                    strings: vec![b"setosa".to_vec(), "virgínica".as_bytes().to_vec()],
                }],
            ),
            node("Identity", "", &["probs"], &["copy"], vec![]),
        ]);
        let keys = zipmap_keys(model, &["probs", "z", "copy", "label", "nope"]).unwrap();
        assert_eq!(keys["probs"], Ok(MapKeys::Int64(vec![2, 0, 1])));
        assert_eq!(
            keys["z"],
            Ok(MapKeys::String(vec!["setosa".into(), "virgínica".into()]))
        );
        assert_eq!(keys["copy"], Ok(MapKeys::Int64(vec![2, 0, 1])));
        assert!(keys["label"]
            .as_ref()
            .unwrap_err()
            .contains("ai.onnx.ml.LinearClassifier"));
        assert!(keys["nope"].as_ref().unwrap_err().contains("no node"));
    }

    #[test]
    fn packed_ints_are_read_too() {
        // The same attribute with `ints` packed, as proto3 writers would do.
        #[derive(Clone, PartialEq, Message)]
        struct Packed {
            #[prost(string, tag = "1")]
            name: String,
            #[prost(int64, repeated, tag = "8")]
            ints: Vec<i64>,
        }
        let raw = Packed {
            name: "classlabels_int64s".into(),
            ints: vec![-1, 5, 1 << 40],
        }
        .encode_to_vec();
        let mut zipmap = node("ZipMap", "ai.onnx.ml", &["s"], &["p"], vec![]);
        zipmap.attribute.push(Bytes::from(raw));
        let keys = zipmap_keys(encode(vec![zipmap]), &["p"]).unwrap();
        assert_eq!(keys["p"], Ok(MapKeys::Int64(vec![-1, 5, 1 << 40])));
    }

    #[test]
    fn missing_attribute_bad_bytes_and_identity_loops_are_errors() {
        let bare = encode(vec![node("ZipMap", "ai.onnx.ml", &["s"], &["p"], vec![])]);
        let keys = zipmap_keys(bare, &["p"]).unwrap();
        assert!(keys["p"].as_ref().unwrap_err().contains("neither"));
        let looped = encode(vec![
            node("Identity", "", &["b"], &["a"], vec![]),
            node("Identity", "", &["a"], &["b"], vec![]),
        ]);
        let keys = zipmap_keys(looped, &["a"]).unwrap();
        assert!(keys["a"].as_ref().unwrap_err().contains("Identity"));
        assert!(zipmap_keys(Bytes::from_static(&[0xff, 0xff, 0xff]), &["a"]).is_err());
    }

    #[test]
    fn reads_skl2onnx_default_conversions() {
        let read = |file: &str| {
            let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("tests/models")
                .join(file);
            Bytes::from(std::fs::read(path).unwrap())
        };
        let keys = zipmap_keys(read("iris_zipmap.onnx"), &["output_probability"]).unwrap();
        assert_eq!(
            keys["output_probability"],
            Ok(MapKeys::Int64(vec![0, 1, 2]))
        );
        let keys = zipmap_keys(
            read("iris_zipmap_strings.onnx"),
            &["output_probability", "output_label"],
        )
        .unwrap();
        assert_eq!(
            keys["output_probability"],
            Ok(MapKeys::String(vec![
                "setosa".into(),
                "versicolor".into(),
                "virginica".into()
            ]))
        );
        assert!(keys["output_label"]
            .as_ref()
            .unwrap_err()
            .contains("not a ZipMap"));
    }

    #[test]
    fn keys_as_json_and_text() {
        let ints = MapKeys::Int64(vec![0, 1]);
        assert_eq!(ints.to_json(), serde_json::json!([0, 1]));
        assert_eq!(ints.to_strings(), vec!["0", "1"]);
        let names = MapKeys::String(vec!["a".into()]);
        assert_eq!(names.to_json(), serde_json::json!(["a"]));
        assert_eq!(names.len(), 1);
    }
}
