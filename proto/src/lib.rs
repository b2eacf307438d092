//! The gRPC API of emu: generated client and server code for `proto/emu.proto`.
#![allow(clippy::all)]

pub mod v1 {
    tonic::include_proto!("emu.v1");
}

pub use v1::*;
