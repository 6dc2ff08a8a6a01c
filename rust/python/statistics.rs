//! The statistics' arithmetic the Python side asks of the core.

use numpy::{PyArray1, PyReadonlyArray1, PyReadonlyArray2};
use pyo3::prelude::*;
use pyo3::types::PyDict;

use crate::results::{self, TradeSums};

/// `results::exact_sum` of a float64 array: its sum rounded once, the same bits in any
/// order (`tickstep.metrics` sums trade columns with it).
#[pyfunction]
pub fn exact_sum(values: PyReadonlyArray1<'_, f64>) -> PyResult<f64> {
    Ok(results::exact_sum(values.as_slice()?))
}

/// `results::exact_sum` of each row of a float64 matrix (the report sums a sector's
/// symbols at every equity sample with it).
#[pyfunction]
pub fn exact_row_sums<'py>(
    py: Python<'py>,
    values: PyReadonlyArray2<'py, f64>,
) -> Bound<'py, PyArray1<f64>> {
    let matrix = values.as_array();
    let sums = matrix
        .rows()
        .into_iter()
        .map(|row| match row.as_slice() {
            Some(row) => results::exact_sum(row),
            None => results::exact_sum(&row.to_vec()),
        })
        .collect();
    PyArray1::from_vec(py, sums)
}

/// `results::TradeSums` of the closed trades' columns (float64 arrays), as a dict: what
/// the trade statistics sum, each exactly.
#[pyfunction]
pub fn trade_sums<'py>(
    py: Python<'py>,
    pnl: PyReadonlyArray1<'py, f64>,
    return_pct: PyReadonlyArray1<'py, f64>,
    mae: PyReadonlyArray1<'py, f64>,
    mfe: PyReadonlyArray1<'py, f64>,
    commission: PyReadonlyArray1<'py, f64>,
    duration: PyReadonlyArray1<'py, i64>,
) -> PyResult<Bound<'py, PyDict>> {
    let sums = TradeSums::of(
        pnl.as_slice()?,
        return_pct.as_slice()?,
        mae.as_slice()?,
        mfe.as_slice()?,
        commission.as_slice()?,
        duration.as_slice()?,
    );
    trade_sums_dict(py, &sums)
}

/// `TradeSums` as the dict `tickstep.metrics` reads.
pub(super) fn trade_sums_dict<'py>(py: Python<'py>, s: &TradeSums) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("gross_profit", s.gross_profit)?;
    d.set_item("wins", s.wins)?;
    d.set_item("gross_loss", s.gross_loss)?;
    d.set_item("losses", s.losses)?;
    d.set_item("pnl", s.pnl)?;
    d.set_item("squared_deviations", s.squared_deviations)?;
    d.set_item("return_pct", s.return_pct)?;
    d.set_item("mae", s.mae)?;
    d.set_item("mfe", s.mfe)?;
    d.set_item("commission", s.commission)?;
    d.set_item("duration", s.duration)?;
    d.set_item("longest_duration", s.longest)?;
    Ok(d)
}
