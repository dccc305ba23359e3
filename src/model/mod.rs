//! Model execution: the synchronous backend trait, the ONNX Runtime backend, and the instance threads that run it.

pub mod batching;
pub mod job;
pub mod onnx;
pub mod onnx_graph;
pub mod ort_strings;
pub mod ort_values;
pub mod providers;
pub mod queue;
pub mod stats;
pub mod worker;
pub mod zipmap;

use serde::Serialize;

use crate::error::Error;
use crate::telemetry::Timings;
use crate::tensor::{DataType, Parameters, Tensor};

/// One input or output as a model declares it (`-1` marks a variable dimension).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TensorSpec {
    pub name: String,
    pub datatype: DataType,
    pub shape: Vec<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parameters: Option<Parameters>,
}

/// The inputs and outputs of a model, in the model's order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Signature {
    pub inputs: Vec<TensorSpec>,
    pub outputs: Vec<TensorSpec>,
    /// Outputs the model has but V2 cannot carry (a sequence of tensors, an optional value, ...): left out
    /// of `outputs` and the metadata; a request that names one is refused with the reason.
    pub unserved: Vec<UnservedOutput>,
}

/// A model output oxinfer does not serve, and why.
#[derive(Debug, Clone, PartialEq)]
pub struct UnservedOutput {
    pub name: String,
    /// The whole sentence a refused request gets, naming the output and its ONNX type.
    pub reason: String,
}

/// A loaded model that can run one request at a time; built on the loading thread, run by its instance's thread
/// (a new one after each idle spell, `worker.rs`).
pub trait Backend: Send {
    /// The model's inputs and outputs.
    fn signature(&self) -> &Signature;
    /// Runs the model on `inputs` (already validated, in any order) and returns the `outputs` asked for
    /// (all of them, in model order, when `None`), with the time each phase took.
    fn run(
        &mut self,
        inputs: Vec<Tensor>,
        outputs: Option<&[String]>,
    ) -> Result<(Vec<Tensor>, Timings), Error>;
}
