//! The trait through which any strategy — Rust-native (benches, tests) or the Python
//! adapter in the bindings — is driven by the engine. Callbacks receive a tick context
//! (`context`), never the engine itself.

use crate::context::{Setup, TickContext};
use crate::error::Result;

pub trait Strategy {
    /// Called once before the first tick: declare indicators, read parameters.
    fn init(&mut self, _setup: &mut Setup<'_>) -> Result<()> {
        Ok(())
    }

    /// Called for each symbol that has a bar at this tick, in symbol order.
    fn on_bar(&mut self, _ctx: &mut TickContext<'_>, _symbol: usize) -> Result<()> {
        Ok(())
    }

    /// Called once per tick after every `on_bar`, for portfolio-level decisions.
    fn on_tick(&mut self, _ctx: &mut TickContext<'_>) -> Result<()> {
        Ok(())
    }

    /// Whether `on_bar` does anything (skipping the call saves the per-symbol dispatch).
    fn wants_bars(&self) -> bool {
        true
    }

    /// Whether `on_tick` does anything.
    fn wants_ticks(&self) -> bool {
        false
    }

    /// Polled every few thousand ticks so a long run can be interrupted (Ctrl-C).
    fn check_interrupt(&mut self) -> Result<()> {
        Ok(())
    }
}

/// A strategy that does nothing: measures the bare cost of the loop.
pub struct NoOp;

impl Strategy for NoOp {}
