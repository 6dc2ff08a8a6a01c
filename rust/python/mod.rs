//! PyO3 bindings: argument conversion, numpy views, error mapping, and the adapter that
//! lets a Python object drive the core's `Strategy` trait. No engine logic lives here.

mod accessors;
mod adapter;
mod context;
mod engine;
mod errors;
mod indicators;
mod market;
mod signals;
mod sizing;
mod statistics;

use pyo3::prelude::*;

#[pymodule(gil_used = true)]
fn _core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<market::PyMarket>()?;
    m.add_class::<engine::PyEngine>()?;
    m.add_class::<engine::PyOrderLog>()?;
    m.add_class::<engine::PyFillLog>()?;
    m.add_class::<engine::PyTradeLog>()?;
    m.add_class::<context::PyContext>()?;
    m.add_class::<indicators::PyIndicator>()?;
    m.add_class::<indicators::PyCrossing>()?;
    m.add_class::<accessors::PyPositionBase>()?;
    m.add_class::<accessors::PyOrdersBase>()?;
    accessors::install_position_truth(m.py())?;
    m.add_class::<accessors::PyHistoryBase>()?;
    m.add_class::<accessors::PyStrategyBase>()?;
    m.add_function(wrap_pyfunction!(signals::run_signals, m)?)?;
    m.add_function(wrap_pyfunction!(signals::round_to_lot, m)?)?;
    m.add_function(wrap_pyfunction!(statistics::exact_sum, m)?)?;
    m.add_function(wrap_pyfunction!(statistics::exact_row_sums, m)?)?;
    m.add_function(wrap_pyfunction!(statistics::trade_sums, m)?)?;
    errors::register(m)?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
