//! Checks a request against the model before it is queued: inputs, requested outputs and the deadline.

use std::collections::HashSet;
use std::time::Instant;

use crate::classification;
use crate::error::{shape_text, short, Error};
use crate::model::worker::parse_timeout;
use crate::model::TensorSpec;
use crate::repository::LoadedModel;
use crate::tensor::lookup::NameIndex;
use crate::tensor::DataType;

use super::InferRequest;

/// When the request must be answered by: its `timeout` parameter (seconds), else the model's default.
pub(super) fn deadline(
    model: &LoadedModel,
    request: &InferRequest,
    started: Instant,
) -> Result<Option<Instant>, Error> {
    let timeout = match request.parameters.get("timeout") {
        None | Some(serde_json::Value::Null) => model.workers.default_timeout(),
        Some(value) => {
            Some(parse_timeout(value, "request parameter 'timeout'").map_err(Error::InvalidInput)?)
        }
    };
    Ok(timeout.and_then(|t| started.checked_add(t)))
}

/// Checks inputs (names, datatypes, ranks, fixed dimensions) and requested outputs; returns the output names
/// to compute (`None` = all). Linear in the request's tensors: names are looked up in indexes, not searched.
pub(super) fn validate(
    model: &LoadedModel,
    request: &InferRequest,
) -> Result<Option<Vec<String>>, Error> {
    let label = match &model.version {
        Some(v) => format!("{} (version {v})", model.name),
        None => model.name.clone(),
    };
    let names = |specs: &[TensorSpec]| {
        let listed = specs
            .iter()
            .map(|s| s.name.as_str())
            .collect::<Vec<_>>()
            .join(", ");
        short(&listed).into_owned()
    };
    let input_specs = NameIndex::new(&model.signature.inputs, |s| s.name.as_str());
    let mut seen = HashSet::with_capacity(request.inputs.len());
    for input in &request.inputs {
        let shown = short(&input.name);
        if !seen.insert(input.name.as_str()) {
            return Err(Error::InvalidInput(format!(
                "input '{shown}' is given more than once"
            )));
        }
        let spec = input_specs.get(&input.name).ok_or_else(|| {
            Error::InvalidInput(format!(
                "unexpected input '{shown}' for model {label}; its inputs are: {}",
                names(&model.signature.inputs)
            ))
        })?;
        if input.datatype() != spec.datatype {
            return Err(Error::InvalidInput(format!(
                "input '{shown}' has datatype {} but model {label} expects {}",
                input.datatype(),
                spec.datatype
            )));
        }
        let fits = input.shape().len() == spec.shape.len()
            && input
                .shape()
                .iter()
                .zip(&spec.shape)
                .all(|(&got, &want)| want < 0 || got as i64 == want);
        if !fits {
            return Err(Error::InvalidInput(format!(
                "input '{shown}' has shape {} but model {label} expects {} (-1 = any size)",
                shape_text(input.shape()),
                shape_text(&spec.shape)
            )));
        }
    }
    if let Some(missing) = model
        .signature
        .inputs
        .iter()
        .find(|s| !seen.contains(s.name.as_str()))
    {
        return Err(Error::InvalidInput(format!(
            "missing input '{}' for model {label}",
            missing.name
        )));
    }
    if request.outputs.is_empty() {
        return Ok(None);
    }
    let output_specs = NameIndex::new(&model.signature.outputs, |s| s.name.as_str());
    let mut wanted = Vec::with_capacity(request.outputs.len());
    let mut wanted_names = HashSet::with_capacity(request.outputs.len());
    for output in &request.outputs {
        let shown = short(&output.name);
        let Some(spec) = output_specs.get(&output.name) else {
            if let Some(unserved) = model
                .signature
                .unserved
                .iter()
                .find(|u| u.name == output.name)
            {
                return Err(Error::Unsupported(unserved.reason.clone()));
            }
            return Err(Error::InvalidInput(format!(
                "unknown output '{shown}' requested from model {label}; its outputs are: {}",
                names(&model.signature.outputs)
            )));
        };
        if classification::requested(&output.parameters, &output.name)?.is_some()
            && spec.datatype == DataType::Bytes
        {
            return Err(Error::InvalidInput(format!(
                "output '{shown}' is BYTES and cannot be classified"
            )));
        }
        if !wanted_names.insert(output.name.as_str()) {
            return Err(Error::InvalidInput(format!(
                "output '{shown}' is requested more than once"
            )));
        }
        wanted.push(output.name.clone());
    }
    Ok(Some(wanted))
}
