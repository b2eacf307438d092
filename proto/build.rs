// Compiles proto/emu.proto (emu's gRPC API) and proto/openapiv2.proto (the subset of gnostic's
// OpenAPI v2 messages the API server writes) with protox (pure Rust), so no system `protoc` is
// needed.
fn main() -> Result<(), Box<dyn std::error::Error>> {
    let descriptors = protox::compile(["emu.proto", "openapiv2.proto"], ["proto"])?;
    tonic_prost_build::configure().compile_fds(descriptors)?;
    println!("cargo:rerun-if-changed=proto/emu.proto");
    println!("cargo:rerun-if-changed=proto/openapiv2.proto");
    Ok(())
}
