//! The protobuf codec of every generated service and client (`build.rs`
//! names it with `codec_path`).
//!
//! Owns: how a message is written into tonic's send buffer. Decoding is
//! prost's, unchanged. Must not: look at what a message means.
//!
//! tonic's own prost encoder lets prost grow the buffer as it writes: a
//! FetchResponse of 100 events of 1 KiB reallocates and copies the buffer
//! seven times on its way to 100 KiB (the buffer starts at 8 KiB and
//! doubles), so every payload byte is copied about twice more than
//! needed. Here the buffer is grown once, to the message's encoded length,
//! before prost writes into it.
//!
//! Every RPC of the integration tests goes through this codec on both
//! ends (tonic's `EncodeBuf` cannot be built outside tonic, so there is no
//! unit test of its own).

use std::marker::PhantomData;

use prost::Message;
use tonic::Status;
use tonic::codec::{BufferSettings, Codec, EncodeBuf, Encoder};

/// A prost codec whose encoder reserves a message's whole length first.
#[derive(Debug, Clone)]
pub struct ReservingCodec<T, U> {
    _pd: PhantomData<(T, U)>,
}

impl<T, U> Default for ReservingCodec<T, U> {
    fn default() -> Self {
        Self { _pd: PhantomData }
    }
}

impl<T, U> Codec for ReservingCodec<T, U>
where
    T: Message + Send + 'static,
    U: Message + Default + Send + 'static,
{
    type Encode = T;
    type Decode = U;
    type Encoder = ReservingEncoder<T>;
    type Decoder = <tonic_prost::ProstCodec<T, U> as Codec>::Decoder;

    fn encoder(&mut self) -> Self::Encoder {
        ReservingEncoder { _pd: PhantomData }
    }

    fn decoder(&mut self) -> Self::Decoder {
        tonic_prost::ProstCodec::<T, U>::raw_decoder(BufferSettings::default())
    }
}

/// Encodes `T` after reserving its encoded length in the buffer.
#[derive(Debug, Clone)]
pub struct ReservingEncoder<T> {
    _pd: PhantomData<T>,
}

impl<T: Message> Encoder for ReservingEncoder<T> {
    type Item = T;
    type Error = Status;

    fn encode(&mut self, item: T, buf: &mut EncodeBuf<'_>) -> Result<(), Status> {
        buf.reserve(item.encoded_len());
        item.encode(buf)
            .map_err(|e| Status::internal(format!("encoding a message: {e}")))
    }

    fn buffer_settings(&self) -> BufferSettings {
        BufferSettings::default()
    }
}
