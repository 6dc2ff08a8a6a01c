//! tickstep core: a deterministic, barrier-synchronised multi-symbol tick loop.
//!
//! Plain Rust, no Python types: the PyO3 bindings live in `python/` behind the
//! `python` feature, so the engine is testable and benchable without an interpreter.

pub mod book;
pub mod broker;
pub mod candles;
pub mod clock;
pub mod config;
pub mod context;
pub mod engine;
pub mod error;
pub mod holding;
pub mod market;
pub mod orders;
pub mod portfolio;
pub mod results;
pub mod rolling;
pub mod signals;
pub mod strategy;
pub mod studies;
pub mod symbol_set;

#[cfg(test)]
mod engine_tests;
#[cfg(test)]
mod market_phase_tests;
#[cfg(test)]
mod test_draws;

#[cfg(feature = "python")]
mod python;

pub use config::{Commission, Config, FillAt};
pub use context::{Setup, TickContext};
pub use engine::Engine;
pub use error::{EngineError, Result};
pub use market::{Market, SymbolBars};
pub use orders::{OrderRequest, Role, Side, Status};
pub use strategy::{NoOp, Strategy};
