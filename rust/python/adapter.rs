//! The adapter that turns Python callables into the core's `Strategy`.
//!
//! Per call it only points the Python context at the core's tick context and calls the
//! strategy's `next` with a symbol string created once: no Python objects are allocated
//! per bar here. `next` is almost always a bound method of a Python function: it is then
//! called as its function with the strategy as first argument, through the function's
//! own vectorcall entry found once (no method object, no argument tuple, no look-up of
//! the entry per bar).

use std::ptr;

use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::{PyString, PyType};

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
    /// Whether `next` is given the symbol (`next(symbol)`), or called without it
    /// (backtesting.py's `next()`, the running symbol being the context's).
    takes_symbol: bool,
    /// `next` unbound, when it is a bound method with a vectorcall entry.
    direct: Option<Direct<'py>>,
}

/// A bound method taken apart: its function, the object it is bound to, and the
/// function's vectorcall entry.
struct Direct<'py> {
    function: Bound<'py, PyAny>,
    receiver: Bound<'py, PyAny>,
    entry: ffi::vectorcallfunc,
}

impl<'py> Direct<'py> {
    /// `method` taken apart if it is a bound method (`types.MethodType`) whose function
    /// has a vectorcall entry (every Python function has); None otherwise.
    fn of(method: &Bound<'py, PyAny>) -> PyResult<Option<Self>> {
        let py = method.py();
        let method_type = py.import("types")?.getattr("MethodType")?;
        if !method.get_type().is(method_type.cast::<PyType>()?) {
            return Ok(None);
        }
        let function = method.getattr("__func__")?;
        let receiver = method.getattr("__self__")?;
        // SAFETY: a live object under the GIL.
        let entry = unsafe { ffi::PyVectorcall_Function(function.as_ptr()) };
        Ok(entry.map(|entry| Direct {
            function,
            receiver,
            entry,
        }))
    }

    /// `function(receiver, symbol)`, what calling the bound method does; without the
    /// symbol (`function(receiver)`) when it is None.
    #[inline]
    fn call(&self, py: Python<'py>, symbol: Option<&Bound<'py, PyString>>) -> PyResult<()> {
        // One slot before the arguments, as PY_VECTORCALL_ARGUMENTS_OFFSET allows the
        // callee to use.
        let given = symbol.map_or(ptr::null_mut(), |s| s.as_ptr());
        let mut args = [ptr::null_mut(), self.receiver.as_ptr(), given];
        let count = if symbol.is_some() { 2 } else { 1 };
        // SAFETY: the entry is the function's own (found on it, which we hold); the
        // arguments are live objects borrowed for the call; the GIL is held. A NULL result
        // comes with the exception set (fetched below); a result is a new reference.
        unsafe {
            let result = (self.entry)(
                self.function.as_ptr(),
                args.as_mut_ptr().add(1),
                count | ffi::PY_VECTORCALL_ARGUMENTS_OFFSET,
                ptr::null_mut(),
            );
            if result.is_null() {
                return Err(PyErr::fetch(py));
            }
            ffi::Py_DECREF(result);
        }
        Ok(())
    }
}

impl<'py> PyStrategy<'py> {
    /// The adapter of one run: the context's own name objects are what `next(symbol)`
    /// receives (a name handed back is known by identity).
    pub fn new(
        ctx: PyRef<'py, PyContext>,
        init: Option<Bound<'py, PyAny>>,
        next: Option<Bound<'py, PyAny>>,
        on_tick: Option<Bound<'py, PyAny>>,
        takes_symbol: bool,
    ) -> PyResult<Self> {
        let py = ctx.py();
        let symbols = ctx.names().iter().map(|n| n.bind(py).clone()).collect();
        let direct = match &next {
            Some(next) => Direct::of(next)?,
            None => None,
        };
        Ok(PyStrategy {
            ctx,
            init,
            next,
            on_tick,
            symbols,
            indicators: LiveIndicators::default(),
            takes_symbol,
            direct,
        })
    }
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
                .and_then(|()| {
                    let py = self.ctx.py();
                    let name = &self.symbols[symbol];
                    match (&self.direct, self.takes_symbol) {
                        (Some(direct), true) => direct.call(py, Some(name)),
                        (Some(direct), false) => direct.call(py, None),
                        (None, true) => next.call1((name,)).map(drop),
                        (None, false) => next.call0().map(drop),
                    }
                })
        };
        outcome.map_err(|e| failed(engine, Some(symbol), e))
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
