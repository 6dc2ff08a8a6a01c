//! tickstep core: a deterministic, barrier-synchronised multi-symbol tick loop.
//!
//! Plain Rust, no Python types: the PyO3 bindings live in `python/` behind the
//! `python` feature, so the engine is testable and benchable without an interpreter.

pub mod candles;
pub mod rolling;

#[cfg(feature = "python")]
mod python;
