//! What a sizer is told, made in one call: an instance of `tickstep.sizing.SizingRequest`
//! (a frozen dataclass with slots) filled from the core's figures.
//!
//! Why here: the dataclass's own `__init__` sets each of its ten fields through
//! `object.__setattr__` (it is frozen), about 1.5 µs per sized order — most of what a
//! sized `buy()` cost. The core allocates the object and stores each field in its slot
//! directly, as that `__init__` would (no `__post_init__` exists to skip), so the object
//! is the same: same class, equality, repr, hash and immutability.

use pyo3::exceptions::{PyOverflowError, PyTypeError, PyValueError};
use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::{PyFloat, PyInt, PyString, PyType};

use crate::orders::ShareAtFill;

/// The request's fields in the dataclass's order (`tickstep.sizing.SizingRequest`).
const FIELDS: [&str; 11] = [
    "symbol",
    "side",
    "price",
    "stop_loss",
    "equity",
    "cash",
    "position",
    "open_positions",
    "gross_exposure",
    "pending_entries",
    "multiplier",
];

/// The request class and the byte offset of each field's slot.
pub struct RequestLayout {
    class: Py<PyType>,
    offsets: [isize; 11],
}

impl RequestLayout {
    pub fn new(class: &Bound<'_, PyType>) -> PyResult<Self> {
        let order: Vec<String> = class
            .getattr("__dataclass_fields__")?
            .call_method0("keys")?
            .try_iter()?
            .map(|k| k?.extract())
            .collect::<PyResult<_>>()?;
        if order != FIELDS {
            return Err(PyTypeError::new_err(format!(
                "a sizing request class has the fields {FIELDS:?}, got {order:?}"
            )));
        }
        let mut offsets = [0; 11];
        for (at, name) in offsets.iter_mut().zip(FIELDS) {
            *at = super::indicators::slot_offset(class, name)?;
        }
        Ok(RequestLayout {
            class: class.clone().unbind(),
            offsets,
        })
    }

    pub fn is_for(&self, class: &Bound<'_, PyType>) -> bool {
        self.class.is(class)
    }

    /// A new request holding `values` (in the order of `FIELDS`).
    pub fn make<'py>(
        &self,
        py: Python<'py>,
        values: [Bound<'py, PyAny>; 11],
    ) -> PyResult<Bound<'py, PyAny>> {
        let ty = self.class.bind(py).as_type_ptr();
        // SAFETY: `ty` is the dataclass whose slots are at `offsets` (checked in `new`);
        // its `tp_alloc` gives an object with every slot NULL, each set once below with a
        // new reference, as its `__init__` would through `object.__setattr__`.
        unsafe {
            let alloc = (*ty).tp_alloc.unwrap_or(ffi::PyType_GenericAlloc);
            let obj = alloc(ty, 0);
            if obj.is_null() {
                return Err(PyErr::fetch(py));
            }
            for (at, value) in self.offsets.iter().zip(values) {
                let slot = obj.cast::<u8>().offset(*at).cast::<*mut ffi::PyObject>();
                *slot = value.into_ptr();
            }
            Ok(Bound::from_owned_ptr(py, obj))
        }
    }
}

/// The figures of a request as Python objects, in the order of `FIELDS`.
#[allow(clippy::too_many_arguments)]
pub fn request_values<'py>(
    py: Python<'py>,
    symbol: &Bound<'py, PyString>,
    buy: bool,
    price: Bound<'py, PyAny>,
    stop_loss: Bound<'py, PyAny>,
    (equity, cash, position): (f64, f64, f64),
    open_positions: usize,
    gross_exposure: f64,
    (pending_entries, multiplier): (usize, f64),
) -> [Bound<'py, PyAny>; 11] {
    [
        symbol.clone().into_any(),
        PyInt::new(py, if buy { 1 } else { -1 }).into_any(),
        price,
        stop_loss,
        PyFloat::new(py, equity).into_any(),
        PyFloat::new(py, cash).into_any(),
        PyFloat::new(py, position).into_any(),
        PyInt::new(py, open_positions).into_any(),
        PyFloat::new(py, gross_exposure).into_any(),
        PyInt::new(py, pending_entries).into_any(),
        PyFloat::new(py, multiplier).into_any(),
    ]
}

/// How a strategy's orders without a size are sized: the shipped sizers whose rule is a
/// formula of the core's figures are computed here (no request object, no call into
/// Python per order); any other sizer is called with a request.
pub struct Sizing {
    /// The strategy's sizer (named in errors; called unless its rule is computed here).
    pub sizer: Py<PyAny>,
    pub rule: Rule,
}

pub enum Rule {
    /// `FixedSize(units, lot_size)`.
    Fixed { units: f64, lot: Option<f64> },
    /// `PercentOfEquity(fraction, lot_size)`.
    PercentOfEquity { fraction: f64, lot: Option<f64> },
    /// `PercentOfEquity(fraction, lot_size, at="fill")`: sized by the book when the order
    /// fills (`ShareAtFill`); the units given at placement (the order's estimate until
    /// then) are `PercentOfEquity`'s without lots.
    AtFill(ShareAtFill),
    /// Any other sizer, called with a `SizingRequest` (of class `request`).
    Called { request: Py<PyType> },
}

impl Sizing {
    /// The sizing of `sizer`: `native` is what `tickstep.sizing` says of a shipped sizer
    /// computed here — `(kind, amount, lot_size)` with kind "fixed", "percent" or
    /// "percent_at_fill" — or None.
    pub fn new(
        sizer: Bound<'_, PyAny>,
        request: Bound<'_, PyType>,
        native: Option<(String, f64, Option<f64>)>,
    ) -> PyResult<Self> {
        let rule = match native {
            None => Rule::Called {
                request: request.unbind(),
            },
            Some((kind, amount, lot)) => match kind.as_str() {
                "fixed" => Rule::Fixed { units: amount, lot },
                "percent" => Rule::PercentOfEquity {
                    fraction: amount,
                    lot,
                },
                "percent_at_fill" => Rule::AtFill(ShareAtFill {
                    fraction: amount,
                    lot,
                }),
                other => {
                    return Err(PyTypeError::new_err(format!(
                        "native sizing {other:?}: must be 'fixed', 'percent' or 'percent_at_fill'"
                    )))
                }
            },
        };
        Ok(Sizing {
            sizer: sizer.unbind(),
            rule,
        })
    }

    pub fn clone_ref(&self, py: Python<'_>) -> Self {
        let rule = match &self.rule {
            Rule::Fixed { units, lot } => Rule::Fixed {
                units: *units,
                lot: *lot,
            },
            Rule::PercentOfEquity { fraction, lot } => Rule::PercentOfEquity {
                fraction: *fraction,
                lot: *lot,
            },
            Rule::AtFill(share) => Rule::AtFill(*share),
            Rule::Called { request } => Rule::Called {
                request: request.clone_ref(py),
            },
        };
        Sizing {
            sizer: self.sizer.clone_ref(py),
            rule,
        }
    }
}

/// `tickstep.sizing.round_to_lot` by the same float operations (so the same units):
/// down to whole lots, never below 0; 0 for a non-finite size.
pub fn round_to_lot(units: f64, lot: Option<f64>) -> PyResult<f64> {
    if !units.is_finite() {
        return Ok(0.0);
    }
    // Python's max(x, 0.0): x unless 0.0 is greater.
    let at_least_zero = |x: f64| if 0.0 > x { 0.0 } else { x };
    match lot {
        Some(lot) if lot != 0.0 => {
            let lots = units / lot + 1e-9;
            if !lots.is_finite() {
                // What math.floor says of it.
                return Err(if lots.is_nan() {
                    PyValueError::new_err("cannot convert float NaN to integer")
                } else {
                    PyOverflowError::new_err("cannot convert float infinity to integer")
                });
            }
            Ok(at_least_zero(lots.floor() * lot))
        }
        _ => Ok(at_least_zero(units)),
    }
}

/// The units of a computed rule for an order with `equity`, one unit being worth `unit`
/// (its price times its symbol's multiplier, `portfolio::worth`).
pub fn computed_units(rule: &Rule, equity: f64, unit: f64) -> PyResult<f64> {
    match *rule {
        Rule::Fixed { units, lot } => round_to_lot(units, lot),
        // An order sized at its fill reads until then as what its fraction of equity buys
        // now, in any units: its lots are taken at the fill, which decides.
        Rule::AtFill(ShareAtFill { fraction, .. }) => computed_units(
            &Rule::PercentOfEquity {
                fraction,
                lot: None,
            },
            equity,
            unit,
        ),
        Rule::PercentOfEquity { fraction, lot } => {
            if equity <= 0.0 || unit.is_nan() || unit <= 0.0 {
                return Ok(0.0);
            }
            round_to_lot(fraction * equity / unit, lot)
        }
        Rule::Called { .. } => Err(PyTypeError::new_err("a called sizer is not computed")),
    }
}
