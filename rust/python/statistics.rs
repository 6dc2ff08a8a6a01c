//! The statistics' arithmetic the Python side asks of the core.

use numpy::PyReadonlyArray1;
use pyo3::prelude::*;

use crate::results;

/// `results::exact_sum` of a float64 array: its sum rounded once, the same bits in any
/// order (`tickstep.metrics` sums trade columns with it).
#[pyfunction]
pub fn exact_sum(values: PyReadonlyArray1<'_, f64>) -> PyResult<f64> {
    Ok(results::exact_sum(values.as_slice()?))
}
