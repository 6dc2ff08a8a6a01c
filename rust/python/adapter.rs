//! The adapter that turns Python callables into the core's `Strategy`.
//!
//! Per call it only points the Python context at the core's tick context and calls a bound method found once,
//! with a symbol string created once: no Python objects are allocated per bar here.

use pyo3::prelude::*;
use pyo3::types::PyString;

use super::context::PyContext;
use super::indicators::LiveIndicators;
use crate::context::{Setup, TickContext};
use crate::error::{EngineError, Result};
use crate::strategy::Strategy;

pub struct PyStrategy<'py> {
    pub ctx: PyRef<'py, PyContext>,
    pub init: Option<Bound<'py, PyAny>>,
    pub next: Option<Bound<'py, PyAny>>,
    pub on_tick: Option<Bound<'py, PyAny>>,
    pub symbols: Vec<Bound<'py, PyString>>,
    /// The strategy's indicators, given the running symbol's values before its `next`.
    pub indicators: LiveIndicators,
}

impl Drop for PyStrategy<'_> {
    fn drop(&mut self) {
        self.indicators.finish(&self.ctx);
    }
}

fn failed(engine: &TickContext<'_>, symbol: Option<usize>, err: PyErr) -> EngineError {
    EngineError::Strategy {
        symbol: symbol.map(|s| engine.market().name(s).to_string()),
        timestamp: engine.now(),
        source: Box::new(err),
    }
}

impl Strategy for PyStrategy<'_> {
    fn init(&mut self, setup: &mut Setup<'_>) -> Result<()> {
        let Some(init) = &self.init else {
            return Ok(());
        };
        let outcome = {
            let _attached = self.ctx.attach_setup(setup);
            init.call0()
        };
        outcome.map(drop).map_err(|e| failed(setup, None, e))
    }

    #[inline]
    fn on_bar(&mut self, engine: &mut TickContext<'_>, symbol: usize) -> Result<()> {
        let Some(next) = &self.next else {
            return Ok(());
        };
        let outcome = {
            let _attached = self.ctx.attach(engine);
            self.indicators
                .enter_next(self.ctx.py(), &self.ctx, engine, symbol)
                .and_then(|()| next.call1((&self.symbols[symbol],)))
        };
        outcome
            .map(drop)
            .map_err(|e| failed(engine, Some(symbol), e))
    }

    fn on_tick(&mut self, engine: &mut TickContext<'_>) -> Result<()> {
        let Some(on_tick) = &self.on_tick else {
            return Ok(());
        };
        self.indicators.leave_next(&self.ctx);
        let outcome = {
            let _attached = self.ctx.attach(engine);
            on_tick.call0()
        };
        outcome.map(drop).map_err(|e| failed(engine, None, e))
    }

    fn wants_bars(&self) -> bool {
        self.next.is_some()
    }

    fn wants_ticks(&self) -> bool {
        self.on_tick.is_some()
    }

    fn check_interrupt(&mut self) -> Result<()> {
        let py = self.ctx.py();
        py.check_signals().map_err(|e| EngineError::Strategy {
            symbol: None,
            timestamp: i64::MIN,
            source: Box::new(e),
        })
    }
}
