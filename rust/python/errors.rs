//! The one mapping from core errors to Python exceptions.

use pyo3::exceptions::{PyException, PyKeyError, PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyDict, PyTuple, PyType};

use crate::clock::iso_time;
use crate::error::EngineError;

/// tickstep's exception classes, created once per interpreter. Each one subclasses
/// `TickstepError` and the builtin a caller would naturally catch (`ValueError` for a bad
/// value, `KeyError` for an unknown name, ...), so both `except tickstep.TickstepError`
/// and `except ValueError` work. They are built with `type()` because a class with two
/// bases cannot be declared with `create_exception!`.
struct ErrorTypes {
    tickstep: Py<PyType>,
    order: Py<PyType>,
    unknown_symbol: Py<PyType>,
    config: Py<PyType>,
    state: Py<PyType>,
}

static TYPES: PyOnceLock<ErrorTypes> = PyOnceLock::new();

fn new_class(
    py: Python<'_>,
    name: &str,
    doc: &str,
    bases: &[Bound<'_, PyType>],
) -> PyResult<Py<PyType>> {
    let namespace = PyDict::new(py);
    namespace.set_item("__doc__", doc)?;
    namespace.set_item("__module__", "tickstep")?;
    let class = py
        .get_type::<PyType>()
        .call1((name, PyTuple::new(py, bases)?, namespace))?;
    Ok(class.cast_into::<PyType>()?.unbind())
}

fn types(py: Python<'_>) -> &ErrorTypes {
    TYPES.get_or_init(py, || {
        let make = || -> PyResult<ErrorTypes> {
            let root = new_class(
                py,
                "TickstepError",
                "Base class of every error tickstep raises on its own account.",
                &[py.get_type::<PyException>()],
            )?;
            let base = root.bind(py).clone();
            let sub = |name: &str, doc: &str, builtin: Bound<'_, PyType>| {
                new_class(py, name, doc, &[base.clone(), builtin])
            };
            Ok(ErrorTypes {
                order: sub(
                    "OrderError",
                    "An order refused: its size, prices, side, or an order that cannot be changed.",
                    py.get_type::<PyValueError>(),
                )?,
                unknown_symbol: sub(
                    "UnknownSymbolError",
                    "A symbol the market does not hold.",
                    py.get_type::<PyKeyError>(),
                )?,
                config: sub(
                    "ConfigError",
                    "An engine or backtest option out of range.",
                    py.get_type::<PyValueError>(),
                )?,
                state: sub(
                    "StateError",
                    "Something asked at the wrong time: a context outside a running backtest, a study declared outside init(), an engine run twice.",
                    py.get_type::<PyRuntimeError>(),
                )?,
                tickstep: root,
            })
        };
        make().expect("creating tickstep's exception classes")
    })
}

fn raise(py: Python<'_>, ty: &Py<PyType>, message: String) -> PyErr {
    PyErr::from_type(ty.bind(py).clone(), message)
}

pub fn tickstep_error(py: Python<'_>, message: impl Into<String>) -> PyErr {
    raise(py, &types(py).tickstep, message.into())
}

pub fn order_error(py: Python<'_>, message: impl Into<String>) -> PyErr {
    raise(py, &types(py).order, message.into())
}

pub fn unknown_symbol(py: Python<'_>, message: impl Into<String>) -> PyErr {
    raise(py, &types(py).unknown_symbol, message.into())
}

pub fn config_error(py: Python<'_>, message: impl Into<String>) -> PyErr {
    raise(py, &types(py).config, message.into())
}

pub fn state_error(py: Python<'_>, message: impl Into<String>) -> PyErr {
    raise(py, &types(py).state, message.into())
}

/// Bad market data is a `tickstep.data.DataError`, defined once with the door (it carries
/// symbol/row/rule attributes); the core's own market checks raise that same class.
fn data_error(py: Python<'_>, message: String) -> PyErr {
    let class = py
        .import("tickstep.data")
        .and_then(|m| m.getattr("DataError"))
        .and_then(|c| Ok(c.cast_into::<PyType>()?));
    match class {
        Ok(class) => PyErr::from_type(class, message),
        Err(_) => PyValueError::new_err(message),
    }
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    let t = types(py);
    m.add("TickstepError", t.tickstep.bind(py))?;
    m.add("OrderError", t.order.bind(py))?;
    m.add("UnknownSymbolError", t.unknown_symbol.bind(py))?;
    m.add("ConfigError", t.config.bind(py))?;
    m.add("StateError", t.state.bind(py))?;
    Ok(())
}

/// Core error to Python. A strategy's own exception comes back as itself (its type and
/// traceback intact) with a note naming where it happened.
pub fn to_pyerr(py: Python<'_>, err: EngineError) -> PyErr {
    match err {
        EngineError::InvalidOrder(m) => order_error(py, m),
        EngineError::UnknownSymbol(m) => unknown_symbol(py, m),
        EngineError::InvalidConfig(m) => config_error(py, m),
        EngineError::InvalidMarket(m) => data_error(py, format!("invalid market data: {m}")),
        EngineError::State(m) => state_error(py, m),
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
                Err(other) => tickstep_error(py, other.to_string()),
            };
            // A failed note must not hide the strategy's own error.
            let _ = err.add_note(py, note);
            err
        }
    }
}

pub trait IntoPyResult<T> {
    fn py_err(self, py: Python<'_>) -> PyResult<T>;
}

impl<T> IntoPyResult<T> for Result<T, EngineError> {
    fn py_err(self, py: Python<'_>) -> PyResult<T> {
        self.map_err(|e| to_pyerr(py, e))
    }
}
