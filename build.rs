//! Compiles `proto/eventbus/v1/pubsub_api.proto` into Rust with tonic-prost-build
//! and writes the encoded file descriptor set next to it (server reflection
//! serves it). A vendored `protoc` is used so no system one is needed.
use std::path::PathBuf;

fn main() -> anyhow::Result<()> {
    let protoc = protoc_bin_vendored::protoc_bin_path()?;
    // SAFETY of intent: build scripts run single-threaded, so setting the
    // variable cannot race with another thread reading the environment.
    unsafe { std::env::set_var("PROTOC", protoc) };
    let out = PathBuf::from(std::env::var("OUT_DIR")?);
    let protos = [
        "proto/eventbus/v1/pubsub_api.proto",
        "proto/eventbus/admin/v1/admin.proto",
        "proto/eventbus/admin/v1/cdc.proto",
        "proto/eventbus/admin/v1/channels.proto",
        "proto/eventbus/admin/v1/faults.proto",
    ];
    tonic_prost_build::configure()
        .bytes(".")
        // Reserves a message's length before encoding (src/api/codec.rs).
        .codec_path("crate::api::codec::ReservingCodec")
        .file_descriptor_set_path(out.join("eventbus_descriptor.bin"))
        .compile_protos(&protos, &["proto"])?;
    for p in protos {
        println!("cargo:rerun-if-changed={p}");
    }
    Ok(())
}
