//! The one mapping from core errors to Python exceptions.

use pyo3::create_exception;
use pyo3::exceptions::{PyKeyError, PyRuntimeError, PyValueError};
use pyo3::prelude::*;

use crate::error::EngineError;

create_exception!(
    _core,
    TickstepError,
    PyRuntimeError,
    "Base class of tickstep's own errors."
);
create_exception!(
    _core,
    OrderError,
    PyValueError,
    "An order the broker refuses (size, prices, side)."
);
create_exception!(
    _core,
    UnknownSymbolError,
    PyKeyError,
    "A symbol the market does not hold."
);
create_exception!(
    _core,
    ConfigError,
    PyValueError,
    "An engine option out of range."
);

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add("TickstepError", py.get_type::<TickstepError>())?;
    m.add("OrderError", py.get_type::<OrderError>())?;
    m.add("UnknownSymbolError", py.get_type::<UnknownSymbolError>())?;
    m.add("ConfigError", py.get_type::<ConfigError>())?;
    Ok(())
}

/// Core error to Python. A strategy's own exception comes back as itself (its type and
/// traceback intact) with a note naming where it happened.
pub fn to_pyerr(py: Python<'_>, err: EngineError) -> PyErr {
    match err {
        EngineError::InvalidOrder(m) => OrderError::new_err(m),
        EngineError::UnknownSymbol(m) => UnknownSymbolError::new_err(m),
        EngineError::InvalidConfig(m) => ConfigError::new_err(m),
        EngineError::InvalidMarket(m) => PyValueError::new_err(format!("invalid market data: {m}")),
        EngineError::State(m) => TickstepError::new_err(m),
        EngineError::Strategy {
            symbol,
            timestamp,
            source,
        } => {
            let note = match &symbol {
                Some(s) => format!(
                    "tickstep: raised by the strategy while handling symbol {s:?} at {}",
                    iso_time(timestamp)
                ),
                None => format!(
                    "tickstep: raised by the strategy at {}",
                    iso_time(timestamp)
                ),
            };
            let err = match source.downcast::<PyErr>() {
                Ok(e) => *e,
                Err(other) => TickstepError::new_err(other.to_string()),
            };
            // A failed note must not hide the strategy's own error.
            let _ = err.add_note(py, note);
            err
        }
    }
}

/// Nanoseconds since the epoch as an ISO-8601 UTC string (for messages).
pub fn iso_time(ns: i64) -> String {
    if ns == i64::MIN {
        return "start-up (before the first tick)".into();
    }
    let secs = ns.div_euclid(1_000_000_000);
    let nanos = ns.rem_euclid(1_000_000_000);
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400);
    // Civil date from days since 1970-01-01 (proleptic Gregorian).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    let frac = if nanos == 0 {
        String::new()
    } else {
        format!(".{nanos:09}")
    };
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}{frac} UTC",
        sod / 3600,
        sod % 3600 / 60,
        sod % 60
    )
}

pub trait IntoPyResult<T> {
    fn py_err(self, py: Python<'_>) -> PyResult<T>;
}

impl<T> IntoPyResult<T> for Result<T, EngineError> {
    fn py_err(self, py: Python<'_>) -> PyResult<T> {
        self.map_err(|e| to_pyerr(py, e))
    }
}
