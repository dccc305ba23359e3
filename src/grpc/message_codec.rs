//! The gRPC message codec: prost's, except that a large message is decoded (and a large answer encoded) with the
//! async runtime told that this thread blocks, so that one client's huge message never stalls other requests,
//! health checks included.

use std::marker::PhantomData;

use bytes::Buf;
use tonic::codec::{BufferSettings, Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::Status;
use tonic_prost::{ProstDecoder, ProstEncoder};

/// Messages from this size on are decoded or encoded as blocking work (prost decodes a few hundred MB/s of
/// many-small-tensor messages: a 5 MB message of 150k tensors is tens of milliseconds).
pub const BLOCKING_MESSAGE_BYTES: usize = 1 << 20;

/// Runs `work` as blocking work when it is large and the current runtime can hand this worker's other tasks to
/// another thread (`block_in_place`; a current-thread runtime, as in some tests, runs it inline).
fn maybe_blocking<R>(large: bool, work: impl FnOnce() -> R) -> R {
    let multi_thread = large
        && tokio::runtime::Handle::try_current()
            .is_ok_and(|h| h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread);
    if multi_thread {
        tokio::task::block_in_place(work)
    } else {
        work()
    }
}

/// The codec the generated server and client use (`codec_path` in build.rs).
#[derive(Debug, Clone)]
pub struct OffRuntimeCodec<T, U>(PhantomData<(T, U)>);

impl<T, U> Default for OffRuntimeCodec<T, U> {
    fn default() -> Self {
        OffRuntimeCodec(PhantomData)
    }
}

impl<T, U> Codec for OffRuntimeCodec<T, U>
where
    T: prost::Message + Send + 'static,
    U: prost::Message + Default + Send + 'static,
{
    type Encode = T;
    type Decode = U;
    type Encoder = OffRuntimeEncoder<T>;
    type Decoder = OffRuntimeDecoder<U>;

    fn encoder(&mut self) -> Self::Encoder {
        OffRuntimeEncoder(ProstEncoder::default())
    }

    fn decoder(&mut self) -> Self::Decoder {
        OffRuntimeDecoder(ProstDecoder::default())
    }
}

/// prost's encoder; a large message is encoded as blocking work.
#[derive(Debug, Clone)]
pub struct OffRuntimeEncoder<T>(ProstEncoder<T>);

impl<T: prost::Message> Encoder for OffRuntimeEncoder<T> {
    type Item = T;
    type Error = Status;

    fn encode(&mut self, item: T, buf: &mut EncodeBuf<'_>) -> Result<(), Status> {
        let large = item.encoded_len() >= BLOCKING_MESSAGE_BYTES;
        maybe_blocking(large, || self.0.encode(item, buf))
    }

    fn buffer_settings(&self) -> BufferSettings {
        self.0.buffer_settings()
    }
}

/// prost's decoder; a large message is decoded as blocking work.
#[derive(Debug, Clone)]
pub struct OffRuntimeDecoder<U>(ProstDecoder<U>);

impl<U: prost::Message + Default + 'static> Decoder for OffRuntimeDecoder<U> {
    type Item = U;
    type Error = Status;

    fn decode(&mut self, buf: &mut DecodeBuf<'_>) -> Result<Option<U>, Status> {
        // Only inference requests: their decode time grows with their tensor count (150k one-element tensors in
        // 5 MB). Any other message (a 10 MB model name) is one copy, cheaper inline than moving the runtime's work
        // to a new thread, whose allocations land in another glibc arena and stay there (measured: +120 MB kept
        // after 20 repository calls with 10 MB names when they were decoded this way, +2 MB inline).
        let large = buf.remaining() >= BLOCKING_MESSAGE_BYTES
            && std::any::TypeId::of::<U>()
                == std::any::TypeId::of::<super::pb::ModelInferRequest>();
        maybe_blocking(large, || self.0.decode(buf))
    }

    fn buffer_settings(&self) -> BufferSettings {
        self.0.buffer_settings()
    }
}
