//! The statistics' arithmetic the Python side asks of the core.

use numpy::{PyArray1, PyReadonlyArray1, PyReadonlyArray2};
use pyo3::prelude::*;

use crate::results;

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
