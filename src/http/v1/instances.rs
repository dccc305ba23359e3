//! KServe's V1 protocol over tensors, transport-free: a request's `instances` (or `inputs`, which KServe's model
//! server reads first) become the model's input tensors, and output tensors become `predictions`.
//!
//! - A single-input model takes each instance as one row of that input: `[[5.1, 3.5, 1.4, 0.2], ...]` is a
//!   `[N, 4]` tensor (numpy's reading of the list: rows must be rectangular).
//! - Any model takes instances as objects keyed by input name, `[{"a": [...], "b": [...]}, ...]`: each input is
//!   the stack of its rows. A model of several inputs needs that form.
//! - One output: `predictions` is that tensor as nested lists (one entry per instance when its first dimension
//!   is the batch). Several outputs: one object per instance, keyed by output name, holding that instance's row.
//!
//! The limits are those of the V2 JSON path ([`Limits`]): rank, elements per tensor, BYTES elements per request;
//! nesting is refused past `max_shape_rank` before it is descended into, and nothing is allocated per element
//! before the element count has been checked.

use std::fmt;

use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde::ser::{Serialize, SerializeMap, SerializeSeq, Serializer};
use serde::Deserialize;
use serde_json::value::RawValue;

use crate::error::{shape_text, short, Error};
use crate::http::json::{decode_data, JsonData};
use crate::model::TensorSpec;
use crate::tensor::limits::{BytesBudget, Limits};
use crate::tensor::{element_count, DataType, Tensor};

/// A decoded V1 request: the model's inputs and the number of instances (rows) they hold.
#[derive(Debug)]
pub struct Instances {
    pub inputs: Vec<Tensor>,
    pub count: usize,
}

/// The fields of a V1 request that are read; the others are skipped.
#[derive(Deserialize)]
struct Envelope<'a> {
    #[serde(borrow, default)]
    instances: Option<&'a RawValue>,
    #[serde(borrow, default)]
    inputs: Option<&'a RawValue>,
}

/// Reads a V1 request `body` for a model of inputs `specs` (named `model` in messages).
pub fn decode(
    body: &[u8],
    model: &str,
    specs: &[TensorSpec],
    limits: &Limits,
) -> Result<Instances, Error> {
    let envelope: Envelope = serde_json::from_slice(body)
        .map_err(|e| Error::InvalidInput(format!("the body is not a V1 request: {e}")))?;
    // KServe's model server reads "inputs" when present, else "instances".
    let (field, raw) = match (envelope.inputs, envelope.instances) {
        (Some(raw), _) => ("inputs", raw),
        (None, Some(raw)) => ("instances", raw),
        (None, None) => {
            return Err(Error::InvalidInput(
                "the request needs \"instances\" (or \"inputs\"): a list of instances".into(),
            ))
        }
    };
    let text = raw.get();
    let Some(items) = text.strip_prefix('[') else {
        return Err(Error::InvalidInput(format!(
            "Expected \"{field}\" to be a list"
        )));
    };
    let items = items.trim_start();
    if items.starts_with(']') {
        return Err(Error::InvalidInput(format!(
            "\"{field}\" is empty: send at least one instance"
        )));
    }
    let mut budget = limits.bytes_budget();
    if items.starts_with('{') {
        return by_name(field, raw, model, specs, limits, &mut budget);
    }
    let [spec] = specs else {
        return Err(Error::InvalidInput(format!(
            "model {} has {} inputs ({}): send each of \"{field}\" as an object keyed by input name",
            short(model),
            specs.len(),
            names(specs)
        )));
    };
    let tensor = tensor_of(field, spec, raw, limits, &mut budget)?;
    let count = tensor.shape().first().copied().unwrap_or(0);
    Ok(Instances {
        inputs: vec![tensor],
        count,
    })
}

/// The input names, for messages.
fn names(specs: &[TensorSpec]) -> String {
    let names: Vec<_> = specs.iter().map(|s| short(&s.name)).collect();
    names.join(", ")
}

/// A serde error without its position in the text (which is not the body's).
fn clean(e: &serde_json::Error) -> String {
    let text = e.to_string();
    text.split(" at line ").next().unwrap_or(&text).to_string()
}

/// The tensor of input `spec` from `raw`, a list of its rows: its shape read first (rectangular, within the rank
/// and element limits), then its elements decoded as the input's datatype.
fn tensor_of(
    field: &str,
    spec: &TensorSpec,
    raw: &RawValue,
    limits: &Limits,
    budget: &mut BytesBudget,
) -> Result<Tensor, Error> {
    let name = &spec.name;
    let mut scan = ShapeScan {
        dims: Vec::new(),
        array_depth: 0,
        leaf_depth: None,
        max_rank: limits.max_rank,
    };
    let mut de = serde_json::Deserializer::from_str(raw.get());
    Scan {
        depth: 0,
        state: &mut scan,
    }
    .deserialize(&mut de)
    .map_err(|e| {
        Error::InvalidInput(format!(
            "\"{field}\" for input '{}': {}",
            short(name),
            clean(&e)
        ))
    })?;
    let shape: Vec<usize> = scan.dims.iter().map(|d| d.unwrap_or(0)).collect();
    limits.check_rank(name, shape.len())?;
    let count = element_count(name, &shape)?;
    limits.check_elements(name, &shape, count)?;
    if spec.datatype == DataType::Bytes {
        budget.take(name, count)?;
    }
    let data = decode_data(name, spec.datatype, count, raw)?;
    Tensor::new(name.clone(), shape, data)
}

/// What the shape scan has seen: each depth's array length, the deepest array, and the depth of the elements.
struct ShapeScan {
    /// The length of the arrays at each depth (all arrays at one depth must agree).
    dims: Vec<Option<usize>>,
    /// One past the deepest array entered so far.
    array_depth: usize,
    /// The depth of the elements (scalars), once one has been seen.
    leaf_depth: Option<usize>,
    max_rank: usize,
}

/// One value of the list at `depth` (0: the list itself).
struct Scan<'s> {
    depth: usize,
    state: &'s mut ShapeScan,
}

impl<'de> DeserializeSeed<'de> for Scan<'_> {
    type Value = ();
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl Scan<'_> {
    fn leaf<E: de::Error>(self) -> Result<(), E> {
        let state = self.state;
        match state.leaf_depth {
            None if self.depth < state.array_depth || self.depth == 0 => Err(ragged()),
            None => {
                state.leaf_depth = Some(self.depth);
                Ok(())
            }
            Some(depth) if depth != self.depth => Err(ragged()),
            Some(_) => Ok(()),
        }
    }
}

fn ragged<E: de::Error>() -> E {
    E::custom("the instances are not rectangular (rows of different lengths or depths)")
}

impl<'de> Visitor<'de> for Scan<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a list of rows (numbers, booleans, strings or nested lists)")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let depth = self.depth;
        let state = self.state;
        if state.leaf_depth.is_some_and(|leaf| depth >= leaf) {
            return Err(ragged());
        }
        if depth >= state.max_rank {
            return Err(de::Error::custom(format!(
                "nested deeper than {} levels, the limit (setting max_shape_rank)",
                state.max_rank
            )));
        }
        state.array_depth = state.array_depth.max(depth + 1);
        let mut n = 0usize;
        while seq
            .next_element_seed(Scan {
                depth: depth + 1,
                state: &mut *state,
            })?
            .is_some()
        {
            n += 1;
        }
        if state.dims.len() <= depth {
            state.dims.resize(depth + 1, None);
        }
        match state.dims[depth] {
            None => state.dims[depth] = Some(n),
            Some(m) if m != n => return Err(ragged()),
            Some(_) => {}
        }
        Ok(())
    }
    fn visit_map<A: MapAccess<'de>>(self, _: A) -> Result<(), A::Error> {
        Err(de::Error::custom(
            "an object among lists: send every instance in one form (lists, or objects keyed by input name)",
        ))
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<(), E> {
        self.leaf()
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<(), E> {
        self.leaf()
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<(), E> {
        self.leaf()
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<(), E> {
        self.leaf()
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<(), E> {
        self.leaf()
    }
    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        self.leaf()
    }
}

/// Instances as objects keyed by input name: each input's rows gathered (as JSON text, in instance order), then
/// read as that input's list of rows.
fn by_name(
    field: &str,
    raw: &RawValue,
    model: &str,
    specs: &[TensorSpec],
    limits: &Limits,
    budget: &mut BytesBudget,
) -> Result<Instances, Error> {
    let mut columns = Columns {
        specs,
        model,
        rows: vec![String::from("["); specs.len()],
        present: vec![false; specs.len()],
        count: 0,
        max: limits.max_elements,
    };
    let mut de = serde_json::Deserializer::from_str(raw.get());
    de::Deserializer::deserialize_seq(&mut de, &mut columns)
        .map_err(|e| Error::InvalidInput(format!("\"{field}\": {}", clean(&e))))?;
    let count = columns.count;
    let mut inputs = Vec::with_capacity(specs.len());
    for (spec, mut rows) in specs.iter().zip(columns.rows) {
        rows.push(']');
        let rows = RawValue::from_string(rows)
            .map_err(|e| Error::Internal(format!("rows of input '{}': {e}", short(&spec.name))))?;
        inputs.push(tensor_of(field, spec, &rows, limits, budget)?);
    }
    Ok(Instances { inputs, count })
}

/// The rows of each input, gathered instance by instance.
struct Columns<'m> {
    specs: &'m [TensorSpec],
    model: &'m str,
    /// Per input: `[` and its rows so far, comma-separated.
    rows: Vec<String>,
    /// Which inputs the current instance has given.
    present: Vec<bool>,
    count: usize,
    /// Most instances (each brings at least one element of every input): `max_tensor_elements`.
    max: usize,
}

impl<'de> Visitor<'de> for &mut Columns<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a list of objects keyed by input name")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq.next_element_seed(Instance(&mut *self))?.is_some() {
            self.count += 1;
            if self.count > self.max {
                return Err(de::Error::custom(format!(
                    "more than {} instances, the limit (setting max_tensor_elements)",
                    self.max
                )));
            }
        }
        Ok(())
    }
}

/// One instance object.
struct Instance<'c, 'm>(&'c mut Columns<'m>);

impl<'de> DeserializeSeed<'de> for Instance<'_, '_> {
    type Value = ();
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Instance<'_, '_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "instance {} as an object keyed by input name",
            self.0.count
        )
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let columns = self.0;
        columns.present.iter_mut().for_each(|p| *p = false);
        while let Some(index) = map.next_key_seed(InputKey(columns.specs, columns.model))? {
            if std::mem::replace(&mut columns.present[index], true) {
                return Err(de::Error::custom(format!(
                    "instance {} gives input '{}' twice",
                    columns.count,
                    short(&columns.specs[index].name)
                )));
            }
            let value: &RawValue = map.next_value()?;
            let rows = &mut columns.rows[index];
            if rows.len() > 1 {
                rows.push(',');
            }
            rows.push_str(value.get());
        }
        if let Some(missing) = columns.present.iter().position(|p| !p) {
            return Err(de::Error::custom(format!(
                "instance {} lacks input '{}' (the model's inputs: {})",
                columns.count,
                short(&columns.specs[missing].name),
                names(columns.specs)
            )));
        }
        Ok(())
    }
}

/// A key of an instance object: the index of the input it names.
struct InputKey<'m>(&'m [TensorSpec], &'m str);

impl<'de> DeserializeSeed<'de> for InputKey<'_> {
    type Value = usize;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<usize, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for InputKey<'_> {
    type Value = usize;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an input name")
    }
    fn visit_str<E: de::Error>(self, key: &str) -> Result<usize, E> {
        self.0.iter().position(|s| s.name == key).ok_or_else(|| {
            E::custom(format!(
                "'{}' is not an input of model {} (its inputs: {})",
                short(key),
                short(self.1),
                names(self.0)
            ))
        })
    }
}

/// Writes `{"predictions": ...}` for the outputs of `count` instances.
pub fn write_predictions(outputs: &[Tensor], count: usize) -> Result<Vec<u8>, Error> {
    if let [output] = outputs {
        return write(&Nested::of(
            &JsonData::new(output.data()),
            output.shape(),
            0,
        ));
    }
    for output in outputs {
        if output.shape().first() != Some(&count) {
            return Err(Error::Unsupported(format!(
                "output '{}' has shape {}, not one row per instance ({count}): the V1 protocol cannot return it; use /v2/models/{{name}}/infer",
                short(&output.name),
                shape_text(output.shape())
            )));
        }
    }
    let columns: Vec<(&str, JsonData, &[usize])> = outputs
        .iter()
        .map(|o| (o.name.as_str(), JsonData::new(o.data()), &o.shape()[1..]))
        .collect();
    write(&Objects {
        columns: &columns,
        count,
    })
}

fn write(predictions: &impl Serialize) -> Result<Vec<u8>, Error> {
    #[derive(serde::Serialize)]
    struct Body<'a, T> {
        predictions: &'a T,
    }
    serde_json::to_vec(&Body { predictions })
        .map_err(|e| Error::Internal(format!("cannot write the predictions: {e}")))
}

/// The elements of `data` from `offset` as nested lists of `shape`.
struct Nested<'a> {
    data: &'a JsonData<'a>,
    shape: &'a [usize],
    offset: usize,
}

impl<'a> Nested<'a> {
    fn of(data: &'a JsonData<'a>, shape: &'a [usize], offset: usize) -> Self {
        Nested {
            data,
            shape,
            offset,
        }
    }
}

impl Serialize for Nested<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let Some((&first, rest)) = self.shape.split_first() else {
            return self.data.element(self.offset).serialize(serializer);
        };
        let stride: usize = rest.iter().product();
        let mut seq = serializer.serialize_seq(Some(first))?;
        for i in 0..first {
            seq.serialize_element(&Nested::of(self.data, rest, self.offset + i * stride))?;
        }
        seq.end()
    }
}

/// One object per instance, keyed by output name, each holding that instance's row of the output.
struct Objects<'a> {
    columns: &'a [(&'a str, JsonData<'a>, &'a [usize])],
    count: usize,
}

impl Serialize for Objects<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut seq = serializer.serialize_seq(Some(self.count))?;
        for i in 0..self.count {
            seq.serialize_element(&Row(self, i))?;
        }
        seq.end()
    }
}

struct Row<'a>(&'a Objects<'a>, usize);

impl Serialize for Row<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.0.columns.len()))?;
        for (name, data, shape) in self.0.columns {
            let stride: usize = shape.iter().product();
            map.serialize_entry(name, &Nested::of(data, shape, self.1 * stride))?;
        }
        map.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tensor::TensorData;
    use serde_json::json;

    fn spec(name: &str, datatype: DataType, shape: &[i64]) -> TensorSpec {
        TensorSpec {
            name: name.into(),
            datatype,
            shape: shape.to_vec(),
            parameters: None,
        }
    }

    fn iris() -> Vec<TensorSpec> {
        vec![spec("input", DataType::Fp32, &[-1, 4])]
    }

    fn simple() -> Vec<TensorSpec> {
        vec![
            spec("INPUT0", DataType::Int32, &[-1, 2]),
            spec("INPUT1", DataType::Int32, &[-1, 2]),
        ]
    }

    fn read(body: serde_json::Value, specs: &[TensorSpec]) -> Result<Instances, String> {
        decode(body.to_string().as_bytes(), "m", specs, &Limits::default())
            .map_err(|e| e.to_string())
    }

    #[test]
    fn rows_of_a_single_input() {
        let got = read(
            json!({"instances": [[1, 2, 3, 4], [5, 6, 7, 8.5]]}),
            &iris(),
        )
        .unwrap();
        assert_eq!(got.count, 2);
        assert_eq!(got.inputs[0].shape(), vec![2, 4]);
        assert_eq!(
            *got.inputs[0].data(),
            TensorData::Fp32(vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.5])
        );
        // "inputs" wins over "instances", as in KServe's model server.
        let got = read(
            json!({"inputs": [[1, 2, 3, 4]], "instances": [[0]]}),
            &iris(),
        )
        .unwrap();
        assert_eq!(got.inputs[0].shape(), vec![1, 4]);
        let got = read(
            json!({"instances": ["a", "b"]}),
            &[spec("s", DataType::Bytes, &[-1])],
        )
        .unwrap();
        assert_eq!(got.inputs[0].shape(), vec![2]);
    }

    #[test]
    fn objects_keyed_by_input_name() {
        let body = json!({"instances": [{"INPUT1": [1, 2], "INPUT0": [3, 4]}, {"INPUT0": [5, 6], "INPUT1": [7, 8]}]});
        let got = read(body, &simple()).unwrap();
        assert_eq!(got.count, 2);
        assert_eq!(got.inputs[0].name, "INPUT0");
        assert_eq!(*got.inputs[0].data(), TensorData::Int32(vec![3, 4, 5, 6]));
        assert_eq!(*got.inputs[1].data(), TensorData::Int32(vec![1, 2, 7, 8]));
        let got = read(json!({"instances": [{"input": [1, 2, 3, 4]}]}), &iris()).unwrap();
        assert_eq!(got.inputs[0].shape(), vec![1, 4]);
    }

    #[test]
    fn bad_requests_name_the_field() {
        let cases = [
            (json!({}), "needs \"instances\""),
            (
                json!({"instances": {"input": [1]}}),
                "Expected \"instances\" to be a list",
            ),
            (json!({"inputs": 5}), "Expected \"inputs\" to be a list"),
            (json!({"instances": []}), "\"instances\" is empty"),
            (json!({"instances": [[1, 2], [3]]}), "not rectangular"),
            (json!({"instances": [[1, 2], 3]}), "not rectangular"),
            (json!({"instances": [1, [2]]}), "not rectangular"),
            (
                json!({"instances": [[1, 2], {"a": 1}]}),
                "an object among lists",
            ),
            (
                json!({"instances": [[1, "x", 3, 4]]}),
                "input 'input' (FP32)",
            ),
        ];
        for (body, needle) in cases {
            let e = read(body.clone(), &iris()).unwrap_err();
            assert!(e.contains(needle), "{body}: {e}");
        }
        let e = read(json!({"instances": [[1, 2], [3, 4]]}), &simple()).unwrap_err();
        assert!(
            e.contains("2 inputs (INPUT0, INPUT1)") && e.contains("object keyed by input name"),
            "{e}"
        );
        let cases = [
            (
                json!({"instances": [{"INPUT0": [1, 2]}]}),
                "instance 0 lacks input 'INPUT1'",
            ),
            (
                json!({"instances": [{"INPUT0": [1, 2], "INPUT1": [1, 2], "x": 1}]}),
                "'x' is not an input of model m",
            ),
            (
                json!({"instances": [{"INPUT0": [1, 2], "INPUT1": [1, 2]}, [1]]}),
                "expected instance 1 as an object",
            ),
        ];
        for (body, needle) in cases {
            let e = read(body.clone(), &simple()).unwrap_err();
            assert!(e.contains(needle), "{body}: {e}");
        }
        let e = decode(
            br#"{"instances": [[1, 2], [3, 4]], "instances": 1}"#,
            "m",
            &iris(),
            &Limits::default(),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("duplicate field"), "{e}");
        let e = decode(
            br#"{"instances": [{"INPUT0": [1, 2], "INPUT0": [1, 2]}]}"#,
            "m",
            &simple(),
            &Limits::default(),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("gives input 'INPUT0' twice"), "{e}");
    }

    #[test]
    fn limits_apply_before_decoding() {
        let limits = Limits {
            max_rank: 3,
            max_elements: 6,
            max_bytes_elements: 2,
            ..Limits::default()
        };
        let deep = format!(
            "{{\"instances\": {}1{}}}",
            "[".repeat(100_000),
            "]".repeat(100_000)
        );
        let e = decode(deep.as_bytes(), "m", &iris(), &limits)
            .unwrap_err()
            .to_string();
        assert!(e.contains("max_shape_rank"), "{e}");
        let e = decode(
            br#"{"instances": [[1,2,3,4],[1,2,3,4]]}"#,
            "m",
            &iris(),
            &limits,
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("max_tensor_elements"), "{e}");
        let many = format!(
            "{{\"instances\": [{}]}}",
            [r#"{"INPUT0":1,"INPUT1":1}"#; 7].join(",")
        );
        let e = decode(many.as_bytes(), "m", &simple(), &limits)
            .unwrap_err()
            .to_string();
        assert!(e.contains("more than 6 instances"), "{e}");
        let strings = [spec("s", DataType::Bytes, &[-1])];
        let e = decode(br#"{"instances": ["a","b","c"]}"#, "m", &strings, &limits)
            .unwrap_err()
            .to_string();
        assert!(e.contains("max_bytes_elements"), "{e}");
    }

    fn tensor(name: &str, shape: Vec<usize>, data: TensorData) -> Tensor {
        Tensor::new(name, shape, data).unwrap()
    }

    fn predictions(outputs: &[Tensor], count: usize) -> serde_json::Value {
        serde_json::from_slice(&write_predictions(outputs, count).unwrap()).unwrap()
    }

    #[test]
    fn predictions_are_rows_or_objects() {
        let label = tensor("label", vec![2], TensorData::Int64(vec![0, 2]));
        let probs = tensor(
            "p",
            vec![2, 2],
            TensorData::Fp32(vec![0.5, 0.5, f32::NAN, 1.0]),
        );
        assert_eq!(
            predictions(std::slice::from_ref(&label), 2),
            json!({"predictions": [0, 2]})
        );
        assert_eq!(
            predictions(std::slice::from_ref(&probs), 2),
            json!({"predictions": [[0.5, 0.5], ["NaN", 1.0]]})
        );
        assert_eq!(
            predictions(&[label.clone(), probs], 2),
            json!({"predictions": [{"label": 0, "p": [0.5, 0.5]}, {"label": 2, "p": ["NaN", 1.0]}]})
        );
        let scalar = tensor(
            "s",
            vec![],
            TensorData::Bytes(crate::tensor::BytesBuf::from_iter([&b"x"[..]])),
        );
        assert_eq!(
            predictions(std::slice::from_ref(&scalar), 2),
            json!({"predictions": "x"})
        );
        let e = write_predictions(&[label, scalar], 2).unwrap_err();
        assert!(
            matches!(e, Error::Unsupported(_)) && e.to_string().contains("output 's'"),
            "{e}"
        );
    }
}
