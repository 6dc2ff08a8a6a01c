//! `Context`: the one reusable object through which a Python strategy talks to the core
//! while it runs. It points at the core's tick context (`crate::context`) only for the
//! duration of a callback — never at the engine — so Python reaches exactly what a Rust
//! strategy may reach: orders, portfolio reads, studies reads, market views; and study
//! declarations only during `init()`.

use std::ptr;
use std::sync::atomic::{AtomicPtr, Ordering};
use std::sync::{Mutex, OnceLock};

use numpy::npyffi::{NPY_ARRAY_ALIGNED, NPY_ARRAY_C_CONTIGUOUS, NPY_ARRAY_WRITEABLE};
use numpy::{PyArray1, PyArrayMethods, PyReadonlyArray1, PyUntypedArrayMethods};
use pyo3::exceptions::PyKeyError;
use pyo3::types::{PyBool, PyDict, PyFloat, PyList, PyString, PyTuple, PyType};

use pyo3::prelude::*;

use super::accessors::{bar_tuple, column_view};
use super::errors::{config_error, order_error, state_error, unknown_symbol, IntoPyResult};
use super::indicators::{Followed, PyCrossing, PyIndicator};
use super::market::PyMarket;
use super::sizing::{computed_units, request_values, RequestLayout, Rule, Sizing};
use crate::candles::{Candle, CandleColumns};
use crate::context::{Setup, TickContext};
use crate::orders::{Order, OrderRequest, Role, ShareAtFill, Side, TimeInForce, Trail};
use crate::portfolio::{worth, Lot};
use crate::studies::{self, SeriesValues, Studies};

/// (ts, end, open, high, low, close, volume) as handed to Python.
type CandleTuple = (i64, i64, f64, f64, f64, f64, f64);
/// An open trade as `trades` gives it (see there).
type OpenTrade = (
    u64,
    f64,
    f64,
    f64,
    i64,
    usize,
    Option<u64>,
    Option<u64>,
    Option<f64>,
    Option<f64>,
    i64,
);
/// A working order as `working_orders` gives it (see there).
type WorkingOrder = (
    u64,
    f64,
    f64,
    Option<f64>,
    Option<f64>,
    Option<f64>,
    Option<f64>,
    u8,
    Option<u64>,
    i64,
    Option<OrderDetails>,
);
/// What a working order has beyond a plain one (`order_details`): its time in force as
/// given (`tif`, and `valid=` as bars or a time), its trail as (kind, value), its
/// one-cancels-other group and the order whose fill made it (0 for none).
type OrderDetails = (
    &'static str,
    Option<usize>,
    Option<i64>,
    Option<(&'static str, f64)>,
    Option<u64>,
    u64,
);

/// `o`'s details, None for a plain order (good till cancelled, no trail, no group, no
/// parent): most are, and cost nothing more.
fn order_details(o: &Order, parent: u64) -> Option<OrderDetails> {
    let (tif, bars, until) = match o.time_in_force {
        TimeInForce::GoodTillCancelled => ("gtc", None, None),
        TimeInForce::Bars(n) => ("gtc", Some(n), None),
        TimeInForce::Until(ts) => ("gtc", None, Some(ts)),
        TimeInForce::Day => ("day", None, None),
        TimeInForce::ImmediateOrCancel => ("ioc", None, None),
        TimeInForce::FillOrKill => ("fok", None, None),
        TimeInForce::AtTheOpen => ("opg", None, None),
        TimeInForce::AtTheClose => ("close", None, None),
    };
    let trail = o.trail.map(|t| match t {
        Trail::Distance(d) => ("distance", d),
        Trail::Fraction(f) => ("fraction", f),
        Trail::Atr { multiple, .. } => ("atr", multiple),
    });
    let plain = tif == "gtc" && bars.is_none() && until.is_none();
    if plain && trail.is_none() && o.oco.is_none() && parent == 0 {
        return None;
    }
    Some((tif, bars, until, trail, o.oco, parent))
}
/// A closed trade as `closed_trades` gives it (see there).
type ClosedTradeRow = (usize, u64, f64, f64, i64, i64, f64, f64, f64, f64, i64);

/// A trail as Python gives it: (kind, value, study).
fn to_trail(py: Python<'_>, (kind, value, study): (String, f64, Option<usize>)) -> PyResult<Trail> {
    match (kind.as_str(), study) {
        ("distance", None) => Ok(Trail::Distance(value)),
        ("fraction", None) => Ok(Trail::Fraction(value)),
        ("atr", Some(study)) => Ok(Trail::Atr {
            study,
            multiple: value,
        }),
        _ => Err(order_error(
            py,
            format!("trail kind {kind:?}: must be 'distance', 'fraction' or 'atr' (with its ATR)"),
        )),
    }
}

/// The spellings of `tif=`, as the refusal of another names them.
const TIFS: [&str; 6] = ["gtc", "day", "ioc", "fok", "opg", "close"];

/// `tif` with `valid=` as bars or an instant: how long an order works.
fn time_in_force(
    py: Python<'_>,
    tif: &str,
    valid_bars: Option<usize>,
    valid_until: Option<i64>,
) -> PyResult<TimeInForce> {
    Ok(match (tif, valid_bars, valid_until) {
        ("gtc", None, None) => TimeInForce::GoodTillCancelled,
        ("gtc", Some(n), None) => TimeInForce::Bars(n),
        ("gtc", None, Some(ts)) => TimeInForce::Until(ts),
        ("day", None, None) => TimeInForce::Day,
        ("ioc", None, None) => TimeInForce::ImmediateOrCancel,
        ("fok", None, None) => TimeInForce::FillOrKill,
        ("opg", None, None) => TimeInForce::AtTheOpen,
        ("close", None, None) => TimeInForce::AtTheClose,
        (other, ..) if !TIFS.contains(&other) => {
            let (last, rest) = TIFS.split_last().expect("six spellings");
            let rest: Vec<String> = rest.iter().map(|t| format!("'{t}'")).collect();
            let rest = rest.join(", ");
            return Err(order_error(
                py,
                format!("tif={other:?}: must be {rest} or '{last}'"),
            ));
        }
        _ => {
            return Err(order_error(
                py,
                "valid= makes an order good till a date: it goes with tif='gtc' only",
            ))
        }
    })
}

/// An order's prices as given: limit, stop and stop-loss as the caller passed them
/// (read here, a TypeError naming nothing if not numbers), the take-profit read already.
pub(crate) struct OrderPrices<'a, 'py> {
    pub limit: Option<&'a Bound<'py, PyAny>>,
    pub stop: Option<&'a Bound<'py, PyAny>>,
    pub sl: Option<&'a Bound<'py, PyAny>>,
    pub tp: Option<f64>,
}

/// The `portion` of a close (of a position, or of one trade) as given: a number, never a
/// bool, which would read as 1 or 0.
pub(crate) struct Portion(pub f64);

impl Portion {
    /// All of it: the default.
    pub const WHOLE: Portion = Portion(1.0);
}

impl<'a, 'py> FromPyObject<'a, 'py> for Portion {
    type Error = PyErr;

    fn extract(obj: Borrowed<'a, 'py, PyAny>) -> PyResult<Self> {
        if obj.is_instance_of::<PyBool>() {
            let word = if obj.is_truthy()? { "True" } else { "False" };
            let message = format!("portion={word}: must be a fraction in (0, 1], got bool");
            return Err(order_error(obj.py(), message));
        }
        Ok(Portion(obj.extract::<f64>()?))
    }
}

/// An order's price argument as given (None, or a number).
fn price_arg(value: Option<&Bound<'_, PyAny>>) -> PyResult<Option<f64>> {
    value.map(|v| v.extract::<f64>()).transpose()
}

/// The arrays of `self.I` as the studies hold them: each read-only, contiguous and
/// aligned one borrowed (the array kept alive with them), the others copied.
fn series_values(arrays: &[Bound<'_, PyArray1<f64>>]) -> PyResult<SeriesValues> {
    let mut kept: Vec<Py<PyArray1<f64>>> = Vec::new();
    let mut copies: Vec<Vec<f64>> = Vec::new();
    // Per array: borrowed (index into `kept`) or copied (index into `copies`).
    let mut places = Vec::with_capacity(arrays.len());
    for a in arrays {
        // SAFETY: reading the flags of a live array under the GIL.
        let flags = unsafe { (*a.as_array_ptr()).fields.flags };
        let in_place = NPY_ARRAY_C_CONTIGUOUS | NPY_ARRAY_ALIGNED;
        if flags & in_place == in_place && flags & NPY_ARRAY_WRITEABLE == 0 {
            places.push(Ok(kept.len()));
            kept.push(a.clone().unbind());
        } else {
            places.push(Err(copies.len()));
            copies.push(a.to_vec()?);
        }
    }
    let py = match arrays.first() {
        Some(a) => a.py(),
        None => return Ok(SeriesValues::owned(Vec::new())),
    };
    let columns = places
        .iter()
        .map(|place| match *place {
            // SAFETY: a contiguous array of f64 (checked above), alive while `kept` is.
            Ok(k) => unsafe { kept[k].bind(py).as_slice() }
                .map(|c| (c.as_ptr(), c.len()))
                .map_err(PyErr::from),
            Err(k) => Ok((copies[k].as_ptr(), copies[k].len())),
        })
        .collect::<PyResult<Vec<_>>>()?;
    // SAFETY: the borrowed slices live in arrays `kept` holds, which no one can write
    // through (not writeable); the copies' buffers live in `copies` and do not move when
    // it moves into the box.
    Ok(unsafe { SeriesValues::borrowed(columns, Box::new((kept, copies))) })
}

fn candle_tuple(c: Candle) -> CandleTuple {
    (c.ts, c.end, c.open, c.high, c.low, c.close, c.volume)
}

// Frozen (no borrow flag on every call): the module runs under the GIL (`gil_used`) and no
// method releases it, so calls into a context never overlap.
#[pyclass(name = "Context", module = "tickstep._core", frozen)]
pub struct PyContext {
    /// The tick context of the running `next()`/`on_tick()`, else null.
    tick: AtomicPtr<TickContext<'static>>,
    /// The set-up context of the running `init()`, else null.
    setup: AtomicPtr<Setup<'static>>,
    /// The market views are cut from: the engine's, replaced by each window of a
    /// streamed run (`set_market`).
    market: Mutex<Py<PyMarket>>,
    /// The symbols' names as `next(symbol)` receives them (interned, made once): a name
    /// handed back is recognised by identity before any lookup.
    names: Vec<Py<PyString>>,
    /// name -> index, looked up with the string's cached hash.
    lookup: Py<PyDict>,
    /// The class of the bars `bar()` returns: a tuple subclass with named fields.
    bar_class: Option<Py<PyType>>,
    /// The strategy's indicator objects, whose values the adapter writes before each
    /// `next(symbol)` (see `indicators.rs`).
    pub(crate) followed: Followed,
    /// Where the fields of the strategy's sizing request class are (found at first use).
    request_layout: OnceLock<RequestLayout>,
    /// How orders without a size are sized (`use_sizer`).
    sizing: Mutex<Option<Sizing>>,
}

/// Clears the context's pointers when a callback returns (or unwinds).
pub struct Attached<'a>(&'a PyContext);

impl Drop for Attached<'_> {
    fn drop(&mut self) {
        self.0.tick.store(ptr::null_mut(), Ordering::Relaxed);
        self.0.setup.store(ptr::null_mut(), Ordering::Relaxed);
    }
}

const OUTSIDE: &str =
    "the strategy context is only usable inside init(), next() and on_tick() of a running backtest";

impl PyContext {
    /// The market views are cut from now.
    pub fn current_market(&self, py: Python<'_>) -> Py<PyMarket> {
        self.market
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone_ref(py)
    }

    /// A streamed run moved to its next window: views come from it from now on (views
    /// handed out before keep their window alive).
    pub fn set_market(&self, market: Py<PyMarket>) {
        *self.market.lock().unwrap_or_else(|e| e.into_inner()) = market;
    }

    /// Let Python reach `ctx` until the returned guard drops. The caller must not use
    /// `ctx` itself while the guard lives (Python holds the only way in).
    pub fn attach<'a>(&'a self, ctx: &mut TickContext<'_>) -> Attached<'a> {
        let p: *mut TickContext<'static> = (ctx as *mut TickContext<'_>).cast();
        self.tick.store(p, Ordering::Relaxed);
        Attached(self)
    }

    /// As `attach`, for `init()`: studies may be declared through it.
    pub fn attach_setup<'a>(&'a self, setup: &mut Setup<'_>) -> Attached<'a> {
        let p: *mut Setup<'static> = (setup as *mut Setup<'_>).cast();
        self.setup.store(p, Ordering::Relaxed);
        Attached(self)
    }

    // The context is the one path into the core while a callback runs (see `attach`).
    #[allow(clippy::mut_from_ref)]
    pub(crate) fn context(&self) -> PyResult<&mut TickContext<'static>> {
        let setup = self.setup.load(Ordering::Relaxed);
        if !setup.is_null() {
            // SAFETY: as for `tick` below (set by `attach_setup`).
            return Ok(unsafe { &mut (*setup).ctx });
        }
        let p = self.tick.load(Ordering::Relaxed);
        if p.is_null() {
            return Err(Python::attach(|py| state_error(py, OUTSIDE)));
        }
        // SAFETY: `p` was set by `attach` from a live `&mut TickContext` whose owner (the
        // engine's loop) is blocked in a call into Python until the guard clears it; every
        // call holds the GIL for its whole length, and no method here calls back into
        // Python while holding the reference. The 'static lifetime never leaves this
        // module: each method uses the reference only for the length of its own call.
        Ok(unsafe { &mut *p })
    }

    /// The studies to declare into: only while `init()` runs.
    #[allow(clippy::mut_from_ref)]
    fn declare(&self, py: Python<'_>, what: &str) -> PyResult<&mut Studies> {
        let setup = self.setup.load(Ordering::Relaxed);
        if setup.is_null() {
            if self.tick.load(Ordering::Relaxed).is_null() {
                return Err(state_error(py, OUTSIDE));
            }
            return Err(state_error(
                py,
                format!(
                    "{what} must be declared in init(), not in next() or on_tick(): declare it once in init() (e.g. self.fast = self.sma(10)) and read it in next()"
                ),
            ));
        }
        // SAFETY: `setup` was set by `attach_setup` from a live `&mut Setup` under the
        // same rules as `context` above.
        Ok(unsafe { (*setup).studies_mut() })
    }

    /// The names as `next(symbol)` receives them.
    pub fn names(&self) -> &[Py<PyString>] {
        &self.names
    }

    /// The symbol a strategy names: None is the running symbol; a name is found by
    /// identity with the running symbol's name first (what `next(symbol)` received),
    /// then by lookup; an int is an index (-1: the running symbol).
    #[inline]
    pub fn index_of(
        &self,
        e: &TickContext<'_>,
        symbol: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<usize> {
        let Some(obj) = symbol else {
            return Self::symbol(e, -1);
        };
        if let Some(s) = e.current_symbol() {
            if obj.as_ptr() == self.names[s].as_ptr() {
                return Ok(s);
            }
        }
        self.find(e, obj)
    }

    fn find(&self, e: &TickContext<'_>, obj: &Bound<'_, PyAny>) -> PyResult<usize> {
        let py = obj.py();
        if obj.is_instance_of::<PyString>() {
            return match self.lookup.bind(py).get_item(obj)? {
                Some(i) => i.extract(),
                None => Err(self.unknown(obj)),
            };
        }
        if obj.is_none() {
            return Self::symbol(e, -1);
        }
        if !obj.is_instance_of::<PyBool>() {
            if let Ok(i) = obj.extract::<isize>() {
                return Self::symbol(e, i);
            }
        }
        Err(self.unknown(obj))
    }

    /// A name (or index) to its index without a running backtest (None and -1: -1).
    pub fn resolve(&self, obj: Option<&Bound<'_, PyAny>>) -> PyResult<isize> {
        let Some(obj) = obj else { return Ok(-1) };
        let py = obj.py();
        if obj.is_instance_of::<PyString>() {
            return match self.lookup.bind(py).get_item(obj)? {
                Some(i) => i.extract(),
                None => Err(self.unknown(obj)),
            };
        }
        if obj.is_none() {
            return Ok(-1);
        }
        if !obj.is_instance_of::<PyBool>() {
            if let Ok(i) = obj.extract::<isize>() {
                if i >= -1 && i < self.names.len() as isize {
                    return Ok(i);
                }
            }
        }
        Err(self.unknown(obj))
    }

    /// "unknown symbol 'X' (did you mean 'Y'?)", the hint from `tickstep.hints`.
    #[cold]
    fn unknown(&self, obj: &Bound<'_, PyAny>) -> PyErr {
        let py = obj.py();
        let text = obj
            .repr()
            .map(|r| r.to_string())
            .unwrap_or_else(|_| "?".into());
        let hint = (|| -> PyResult<String> {
            let names = PyList::new(py, &self.names)?;
            py.import("tickstep.hints")?
                .getattr("did_you_mean")?
                .call1((obj.str()?, names))?
                .extract()
        })()
        .unwrap_or_default();
        unknown_symbol(py, format!("unknown symbol {text}{hint}"))
    }

    /// (size, average price, latest price, multiplier) of a symbol's position (-1: the
    /// running one).
    pub fn position_at(&self, symbol: isize) -> PyResult<(f64, f64, f64, f64)> {
        let e = self.context()?;
        let s = Self::symbol(e, symbol)?;
        let p = e.position(s);
        Ok((p.size, p.average_price(), e.price(s), p.multiplier))
    }

    /// What a sizer is told about an order in symbol `s` now, as an instance of `cls`.
    #[allow(clippy::too_many_arguments)]
    fn request<'py>(
        &self,
        py: Python<'py>,
        cls: &Bound<'py, PyType>,
        e: &TickContext<'_>,
        s: usize,
        buy: bool,
        price: Option<Bound<'py, PyAny>>,
        sl: Option<Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let made;
        let layout = match self.request_layout.get() {
            Some(layout) if layout.is_for(cls) => layout,
            Some(_) => {
                made = RequestLayout::new(cls)?;
                &made
            }
            None => {
                let layout = RequestLayout::new(cls)?;
                self.request_layout.get_or_init(|| layout)
            }
        };
        let price = match price {
            Some(p) => p,
            None => PyFloat::new(py, e.price(s)).into_any(),
        };
        let values = request_values(
            py,
            self.names[s].bind(py),
            buy,
            price,
            sl.unwrap_or_else(|| py.None().into_bound(py)),
            (e.equity(), e.cash(), e.position(s).size),
            e.portfolio().open_position_count(),
            e.gross_exposure(),
            (e.pending_entry_count(), e.position(s).multiplier),
        );
        layout.make(py, values)
    }

    /// The units the strategy's sizer gives an order in symbol `s` now: computed here for
    /// the shipped sizers that are a formula, else the sizer called with a request. Units
    /// below 0 (or NaN) are refused naming the sizer. With a sizer that sizes at the fill,
    /// also its share: the units are then the order's estimate until it fills.
    fn sized(
        &self,
        py: Python<'_>,
        s: usize,
        buy: bool,
        price: Option<Bound<'_, PyAny>>,
        sl: Option<Bound<'_, PyAny>>,
    ) -> PyResult<(f64, Option<ShareAtFill>)> {
        let sizing = self
            .sizing
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .map(|sizing| sizing.clone_ref(py))
            .ok_or_else(|| state_error(py, "no sizer: the strategy was made without one"))?;
        let e = self.context()?;
        let units = match &sizing.rule {
            Rule::Called { request } => {
                let req = self.request(py, request.bind(py), e, s, buy, price, sl)?;
                // The sizer is the strategy's own code: the core's context is not used
                // while it runs (it may place orders itself).
                let given = sizing.sizer.bind(py).call1((req,))?;
                match given.cast_exact::<PyFloat>() {
                    Ok(f) => f.value(),
                    Err(_) => py.get_type::<PyFloat>().call1((given,))?.extract()?,
                }
            }
            rule => {
                let at = match &price {
                    Some(p) if matches!(rule, Rule::PercentOfEquity { .. } | Rule::AtFill(_)) => {
                        p.extract()?
                    }
                    _ => e.price(s),
                };
                computed_units(rule, e.equity(), worth(1.0, at, e.position(s).multiplier))?
            }
        };
        if units.is_nan() || units < 0.0 {
            return Err(self.bad_units(py, sizing.sizer.bind(py), s, units));
        }
        let at_fill = match sizing.rule {
            Rule::AtFill(share) => Some(share),
            _ => None,
        };
        Ok((units, at_fill))
    }

    /// The share of the strategy's sizer when it sizes orders at their fill.
    fn share_at_fill(&self) -> Option<ShareAtFill> {
        match self
            .sizing
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()?
            .rule
        {
            Rule::AtFill(share) => Some(share),
            _ => None,
        }
    }

    #[cold]
    fn bad_units(&self, py: Python<'_>, sizer: &Bound<'_, PyAny>, s: usize, units: f64) -> PyErr {
        let sizer = sizer
            .repr()
            .map(|r| r.to_string())
            .unwrap_or_else(|_| "?".into());
        let units = PyFloat::new(py, units)
            .repr()
            .map(|r| r.to_string())
            .unwrap_or_else(|_| units.to_string());
        pyo3::exceptions::PyValueError::new_err(format!(
            "{}: sizer {sizer} returned {units}; expected units >= 0",
            self.names[s].bind(py)
        ))
    }

    /// `place` (and `Strategy.buy`/`sell`): an order of `size` units, or as many as the
    /// sizer gives when None (None is returned, and nothing placed, when it gives 0).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn place_order(
        &self,
        py: Python<'_>,
        symbol: Option<&Bound<'_, PyAny>>,
        buy: bool,
        size: Option<&Bound<'_, PyAny>>,
        prices: OrderPrices<'_, '_>,
        tag: i64,
        tif: &str,
        oco: Option<u64>,
    ) -> PyResult<Option<u64>> {
        let OrderPrices {
            limit,
            stop,
            sl,
            tp,
        } = prices;
        let (limit_at, stop_at, sl_at) = (price_arg(limit)?, price_arg(stop)?, price_arg(sl)?);
        let e = self.context()?;
        let s = self.index_of(e, symbol)?;
        let (size, at_fill) = match size {
            Some(given) => {
                if given.is_instance_of::<PyBool>() {
                    return Err(order_error(
                        py,
                        format!("size={given}: must be a positive number of units, got bool"),
                    ));
                }
                (given.extract::<f64>()?, None)
            }
            None => {
                let price = limit.or(stop).cloned();
                let (units, at_fill) = self.sized(py, s, buy, price, sl.cloned())?;
                if units.is_nan() || units <= 0.0 {
                    return Ok(None);
                }
                (units, at_fill)
            }
        };
        // Again: a sizer called above may have run Python code.
        let e = self.context()?;
        let req = OrderRequest {
            symbol: s,
            side: if buy { Side::Buy } else { Side::Sell },
            size,
            limit: limit_at,
            stop: stop_at,
            stop_loss: sl_at,
            take_profit: tp,
            tag,
            time_in_force: time_in_force(py, tif, None, None)?,
            trail: None,
            stop_loss_trail: None,
            oco,
        };
        let id = e.submit(req).py_err(py)?;
        if let Some(share) = at_fill {
            e.size_at_fill(id, share);
        }
        Ok(Some(id))
    }

    /// `size_at` while `next()` or `on_tick()` runs and the symbol is known, else None
    /// (then `size_at` says why): the few loads a position's truth value needs.
    #[inline(always)]
    pub fn live_size(&self, symbol: isize) -> Option<f64> {
        if !self.setup.load(Ordering::Relaxed).is_null() {
            return None;
        }
        let p = self.tick.load(Ordering::Relaxed);
        if p.is_null() {
            return None;
        }
        // SAFETY: as in `context`.
        let e = unsafe { &*p };
        let s = match usize::try_from(symbol) {
            Ok(s) if s < e.market().symbol_count() => s,
            Ok(_) => return None,
            Err(_) => e.current_symbol()?,
        };
        Some(e.position(s).size)
    }

    /// Signed units held in a symbol (-1: the running one): what a position's truth
    /// value and `size` read, without its prices.
    #[inline]
    pub fn size_at(&self, symbol: isize) -> PyResult<f64> {
        let e = self.context()?;
        let s = Self::symbol(e, symbol)?;
        Ok(e.position(s).size)
    }

    pub fn close_at(&self, py: Python<'_>, symbol: isize, portion: f64) -> PyResult<Option<u64>> {
        let e = self.context()?;
        let s = Self::symbol(e, symbol)?;
        e.close_portion(s, portion).py_err(py)
    }

    /// A read-only view of the last `count` values of a column, up to and including the
    /// symbol's latest bar (never past the current tick).
    pub fn history_at<'py>(
        &self,
        py: Python<'py>,
        symbol: isize,
        column: &str,
        count: usize,
    ) -> PyResult<Bound<'py, PyAny>> {
        let e = self.context()?;
        let s = Self::symbol(e, symbol)?;
        let window = e.history_window(s, count).py_err(py)?;
        column_view(py, self.current_market(py).bind(py), s, column, window)
    }

    pub fn history_len(&self, py: Python<'_>, symbol: isize, count: usize) -> PyResult<usize> {
        let e = self.context()?;
        let s = Self::symbol(e, symbol)?;
        Ok(e.history_window(s, count).py_err(py)?.len())
    }

    /// Symbol index from Python: -1 means the symbol whose `next()` is running.
    fn symbol(e: &TickContext<'_>, symbol: isize) -> PyResult<usize> {
        if symbol < 0 {
            return e.current_symbol().ok_or_else(|| {
                Python::attach(|py| {
                    unknown_symbol(
                        py,
                        "no current symbol here (init() or on_tick()): pass the symbol explicitly",
                    )
                })
            });
        }
        let s = symbol as usize;
        if s >= e.market().symbol_count() {
            return Err(Python::attach(|py| {
                unknown_symbol(py, format!("symbol index {s} out of range"))
            }));
        }
        Ok(s)
    }
}

#[pymethods]
impl PyContext {
    /// `bar_class`: the tuple subclass `bar()` returns (plain tuples when None).
    #[new]
    #[pyo3(signature = (market, bar_class=None))]
    fn new(
        py: Python<'_>,
        market: Py<PyMarket>,
        bar_class: Option<Bound<'_, PyType>>,
    ) -> PyResult<Self> {
        if let Some(class) = &bar_class {
            if !class.is_subclass_of::<PyTuple>()? {
                return Err(pyo3::exceptions::PyTypeError::new_err(
                    "bar_class must be a subclass of tuple",
                ));
            }
        }
        let names: Vec<Py<PyString>> = market
            .get()
            .inner
            .names()
            .iter()
            .map(|n| PyString::intern(py, n).unbind())
            .collect();
        let lookup = PyDict::new(py);
        for (i, name) in names.iter().enumerate() {
            lookup.set_item(name, i)?;
        }
        Ok(PyContext {
            tick: AtomicPtr::new(ptr::null_mut()),
            setup: AtomicPtr::new(ptr::null_mut()),
            market: Mutex::new(market),
            names,
            lookup: lookup.unbind(),
            bar_class: bar_class.map(Bound::unbind),
            followed: Followed::default(),
            request_layout: OnceLock::new(),
            sizing: Mutex::new(None),
        })
    }

    /// Take `indicator` (of the strategy's indicator class) as one of the run's: made
    /// outside `next()`, it is switched to `outside_next` (the same layout, reading through
    /// the core); when made while a run is attached, its values are written into it before
    /// each `next(symbol)` (see `indicators.rs`).
    fn adopt_indicator(
        &self,
        indicator: &Bound<'_, PyIndicator>,
        outside_next: &Bound<'_, PyType>,
    ) -> PyResult<()> {
        self.followed
            .adopt(indicator, outside_next, self.is_running())
    }

    /// Take `crossing` as one of the run's, as `adopt_indicator` an indicator (its value
    /// written before each `next(symbol)`; read through the core outside it).
    fn adopt_crossing(
        &self,
        crossing: &Bound<'_, PyCrossing>,
        outside_next: &Bound<'_, PyType>,
    ) -> PyResult<()> {
        // Declared once like an indicator: one made per bar would be followed for ever.
        self.declare(crossing.py(), "a crossing")?;
        self.followed
            .adopt_crossing(crossing, outside_next, self.is_running())
    }

    /// The market this context reads (its columns, extra columns included).
    #[getter]
    fn market(&self, py: Python<'_>) -> Py<PyMarket> {
        self.current_market(py)
    }

    /// Whether a backtest is currently attached.
    fn is_running(&self) -> bool {
        !(self.tick.load(Ordering::Relaxed).is_null()
            && self.setup.load(Ordering::Relaxed).is_null())
    }

    /// Timestamp (int ns UTC) of the current tick.
    fn now(&self) -> PyResult<i64> {
        Ok(self.context()?.now())
    }

    /// Index of the symbol whose `next()` is running, or -1.
    fn current(&self) -> PyResult<isize> {
        Ok(self.context()?.current_symbol().map_or(-1, |s| s as isize))
    }

    #[pyo3(signature = (symbol=None))]
    fn has_data(&self, symbol: Option<&Bound<'_, PyAny>>) -> PyResult<bool> {
        let e = self.context()?;
        let s = self.index_of(e, symbol)?;
        Ok(e.has_data(s))
    }

    /// Indices of the symbols with a bar at this tick, in the market's call order.
    fn active(&self) -> PyResult<Vec<usize>> {
        Ok(self.context()?.active_symbols().to_vec())
    }

    /// Latest close (NaN before the symbol's first bar).
    #[pyo3(signature = (symbol=None))]
    pub(crate) fn price(&self, symbol: Option<&Bound<'_, PyAny>>) -> PyResult<f64> {
        let e = self.context()?;
        Ok(e.price(self.index_of(e, symbol)?))
    }

    /// What one unit is worth at the latest close: the close times the symbol's multiplier
    /// (`portfolio::worth`; NaN before its first bar). Sizing by value or by a share of
    /// equity buys units of it.
    #[pyo3(signature = (symbol=None))]
    fn unit_value(&self, symbol: Option<&Bound<'_, PyAny>>) -> PyResult<f64> {
        let e = self.context()?;
        Ok(e.unit_value(self.index_of(e, symbol)?))
    }

    /// The symbol's multiplier (`BacktestConfig.multiplier`; 1 unless set).
    #[pyo3(signature = (symbol=None))]
    fn multiplier(&self, symbol: Option<&Bound<'_, PyAny>>) -> PyResult<f64> {
        let e = self.context()?;
        Ok(e.position(self.index_of(e, symbol)?).multiplier)
    }

    /// Index of the symbol's latest bar, -1 before its first.
    #[pyo3(signature = (symbol=None))]
    fn bar_index(&self, symbol: Option<&Bound<'_, PyAny>>) -> PyResult<isize> {
        let e = self.context()?;
        Ok(e.bar_index(self.index_of(e, symbol)?)
            .map_or(-1, |i| i as isize))
    }

    /// The symbol's latest bar as (ts, open, high, low, close, volume) -- an instance of
    /// the context's bar class -- or None before its first bar.
    #[pyo3(signature = (symbol=None))]
    fn bar<'py>(
        &self,
        py: Python<'py>,
        symbol: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let e = self.context()?;
        let s = self.index_of(e, symbol)?;
        match &self.bar_class {
            Some(class) => bar_tuple(py, e, s, class.bind(py)),
            None => bar_tuple(py, e, s, &py.get_type::<PyTuple>()),
        }
    }

    /// The symbol's value of extra column `column` (an index into `Market.columns`) at its
    /// latest bar, NaN before the first; never a later bar's.
    #[pyo3(signature = (column, symbol=None))]
    fn value(&self, column: usize, symbol: Option<&Bound<'_, PyAny>>) -> PyResult<f64> {
        let e = self.context()?;
        let s = self.index_of(e, symbol)?;
        e.column_value(s, column).ok_or_else(|| {
            let market = e.market();
            let name = market.columns().get(column).map_or("?", |c| c.as_str());
            PyKeyError::new_err(format!(
                "symbol {:?} has no column {name:?} (its data did not hold it)",
                market.name(s)
            ))
        })
    }

    /// The last `count` values of a column up to and including the latest bar: a read-only
    /// view, never reaching past the current tick.
    #[pyo3(signature = (symbol, column, count=usize::MAX))]
    fn history<'py>(
        &self,
        py: Python<'py>,
        symbol: Option<&Bound<'py, PyAny>>,
        column: &str,
        count: usize,
    ) -> PyResult<Bound<'py, PyAny>> {
        let e = self.context()?;
        let s = self.index_of(e, symbol)?;
        let window = e.history_window(s, count).py_err(py)?;
        column_view(py, self.current_market(py).bind(py), s, column, window)
    }

    /// The symbol's index (the running symbol's for None); refused when unknown.
    #[pyo3(signature = (symbol=None))]
    fn index(&self, symbol: Option<&Bound<'_, PyAny>>) -> PyResult<isize> {
        if self.is_running() {
            let e = self.context()?;
            return Ok(self.index_of(e, symbol)? as isize);
        }
        self.resolve(symbol)
    }

    /// What a sizer is told about an order in `symbol` now, as an instance of `cls`
    /// (`tickstep.sizing.SizingRequest`) made in one call: `price` as given, else the
    /// latest close; `sl` as given (None without one); the rest read from the core.
    #[pyo3(signature = (cls, symbol, buy, price=None, sl=None))]
    fn sizing_request<'py>(
        &self,
        py: Python<'py>,
        cls: &Bound<'py, PyType>,
        symbol: Option<&Bound<'py, PyAny>>,
        buy: bool,
        price: Option<Bound<'py, PyAny>>,
        sl: Option<Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let e = self.context()?;
        let s = self.index_of(e, symbol)?;
        self.request(py, cls, e, s, buy, price, sl)
    }

    /// Size orders without a size by `sizer` from now on: computed in the core when
    /// `native` describes it (see `sizing::Sizing`), else called with an instance of
    /// `request` (`tickstep.sizing.SizingRequest`).
    #[pyo3(signature = (sizer, request, native=None))]
    fn use_sizer(
        &self,
        sizer: Bound<'_, PyAny>,
        request: Bound<'_, PyType>,
        native: Option<(String, f64, Option<f64>)>,
    ) -> PyResult<()> {
        let sizing = Sizing::new(sizer, request, native)?;
        *self.sizing.lock().unwrap_or_else(|e| e.into_inner()) = Some(sizing);
        Ok(())
    }

    /// The units the sizer gives an order in `symbol` now (0: no order): `price` is the
    /// order's limit or stop (None: a market order, sized at the latest close), `sl` its
    /// stop-loss.
    #[pyo3(signature = (symbol, buy, price=None, sl=None))]
    fn size_order(
        &self,
        py: Python<'_>,
        symbol: Option<&Bound<'_, PyAny>>,
        buy: bool,
        price: Option<Bound<'_, PyAny>>,
        sl: Option<Bound<'_, PyAny>>,
    ) -> PyResult<f64> {
        let e = self.context()?;
        let s = self.index_of(e, symbol)?;
        Ok(self.sized(py, s, buy, price, sl)?.0)
    }

    /// Place an order in one call: `size` units, or as many as the sizer gives when None
    /// (None is returned, and nothing placed, when it gives 0). The arguments are those
    /// of `submit` without the good-till and trailing ones; a price or size of the wrong
    /// type is a TypeError (the caller names the argument).
    #[pyo3(signature = (symbol, buy, size, limit, stop, sl, tp, tag, tif, oco))]
    #[allow(clippy::too_many_arguments)]
    fn place(
        &self,
        py: Python<'_>,
        symbol: Option<&Bound<'_, PyAny>>,
        buy: bool,
        size: Option<&Bound<'_, PyAny>>,
        limit: Option<&Bound<'_, PyAny>>,
        stop: Option<&Bound<'_, PyAny>>,
        sl: Option<&Bound<'_, PyAny>>,
        tp: Option<f64>,
        tag: i64,
        tif: &str,
        oco: Option<u64>,
    ) -> PyResult<Option<u64>> {
        let prices = OrderPrices {
            limit,
            stop,
            sl,
            tp,
        };
        self.place_order(py, symbol, buy, size, prices, tag, tif, oco)
    }

    /// Signed position size in units.
    #[pyo3(signature = (symbol=None))]
    pub(crate) fn position(&self, symbol: Option<&Bound<'_, PyAny>>) -> PyResult<f64> {
        let e = self.context()?;
        Ok(e.position(self.index_of(e, symbol)?).size)
    }

    /// Volume-weighted entry price of the open position (NaN when flat).
    #[pyo3(signature = (symbol=None))]
    fn average_price(&self, symbol: Option<&Bound<'_, PyAny>>) -> PyResult<f64> {
        let e = self.context()?;
        Ok(e.position(self.index_of(e, symbol)?).average_price())
    }

    /// Open trades of a symbol, oldest first: (trade id, direction, size, entry price,
    /// entry ts, entry bar, sl order, tp order, sl price, tp price, tag), an exit's order
    /// and price None when it has none working, the tag its entry order's.
    #[pyo3(signature = (symbol=None))]
    fn trades(&self, symbol: Option<&Bound<'_, PyAny>>) -> PyResult<Vec<OpenTrade>> {
        let e = self.context()?;
        let s = self.index_of(e, symbol)?;
        let exit = |leg: Option<u64>| leg.and_then(|id| Some((id, e.exit_price(s, id)?))).unzip();
        let lots = e.position(s).lots.iter();
        Ok(lots
            .map(|l| {
                let ((sl_order, sl), (tp_order, tp)) = (exit(l.stop_loss), exit(l.take_profit));
                let (price, ts, bar) = (l.entry_price, l.entry_ts, l.entry_bar);
                (
                    l.id,
                    l.direction,
                    l.size,
                    price,
                    ts,
                    bar,
                    sl_order,
                    tp_order,
                    sl,
                    tp,
                    e.order_tag(l.entry_order),
                )
            })
            .collect())
    }

    /// The key of a symbol's (index; -1: the running one) open trades (`Lots::key`; -1
    /// when there is none, which keys nothing): `self.trades` keeps its objects while it
    /// stays.
    fn trades_key(&self, symbol: isize) -> PyResult<i64> {
        let e = self.context()?;
        Ok(e.position(Self::symbol(e, symbol)?)
            .lots
            .key()
            .unwrap_or(-1))
    }

    /// A symbol's (index; -1: the running one) open trade `trade`: its units (negative
    /// when short), None once it has closed (or never opened).
    fn trade_size(&self, symbol: isize, trade: u64) -> PyResult<Option<f64>> {
        let e = self.context()?;
        Ok(e.open_trade(Self::symbol(e, symbol)?, trade)
            .map(Lot::signed_size))
    }

    /// `TickContext::trade_exit` of a symbol (index; -1: the running one): the stop-loss
    /// (`take_profit` false) or the take-profit.
    fn trade_exit(&self, symbol: isize, trade: u64, take_profit: bool) -> PyResult<Option<f64>> {
        let e = self.context()?;
        let role = if take_profit {
            Role::TakeProfit
        } else {
            Role::StopLoss
        };
        Ok(e.trade_exit(Self::symbol(e, symbol)?, trade, role))
    }

    /// The trades closed so far from the `start`-th on, in the order they closed (a
    /// partly closed trade once per closing fill): (symbol, trade id, direction, size,
    /// entry ts, exit ts, entry price, exit price, pnl, return, the entry order's tag).
    fn closed_trades(&self, start: usize) -> PyResult<Vec<ClosedTradeRow>> {
        let rows = self.context()?.closed_trades(start);
        Ok(rows
            .map(|t| {
                let (id, d, size) = (t.trade_id, t.direction, t.size);
                let (ets, xts, ep, xp) = (t.entry_ts, t.exit_ts, t.entry_price, t.exit_price);
                (
                    t.symbol,
                    id,
                    d,
                    size,
                    ets,
                    xts,
                    ep,
                    xp,
                    t.pnl,
                    t.return_pct,
                    t.tag,
                )
            })
            .collect())
    }

    /// How many trades (parts) have closed so far: `closed_trades(start)` has something
    /// new exactly when this is above `start`.
    fn closed_count(&self) -> PyResult<usize> {
        Ok(self.context()?.closed_count())
    }

    /// Close `portion` of `symbol`'s open trade `trade` at its next fill; the order's id.
    #[pyo3(signature = (symbol, trade, portion=Portion::WHOLE), text_signature = "($self, symbol, trade, portion=1.0)")]
    fn close_trade(
        &self,
        py: Python<'_>,
        symbol: &Bound<'_, PyAny>,
        trade: u64,
        portion: Portion,
    ) -> PyResult<u64> {
        let e = self.context()?;
        let s = self.index_of(e, Some(symbol))?;
        e.close_trade(s, trade, portion.0).py_err(py)
    }

    /// Set (`price`) or take away (None) `symbol`'s open trade `trade`'s stop-loss
    /// (`which` "sl") or take-profit ("tp"); the exit order's id, None when taken away.
    fn set_trade_exit(
        &self,
        py: Python<'_>,
        symbol: &Bound<'_, PyAny>,
        trade: u64,
        which: &str,
        price: Option<f64>,
    ) -> PyResult<Option<u64>> {
        let role = match which {
            "sl" => Role::StopLoss,
            "tp" => Role::TakeProfit,
            other => {
                return Err(config_error(
                    py,
                    format!("a trade's exit is 'sl' or 'tp', got {other:?}"),
                ))
            }
        };
        let e = self.context()?;
        let s = self.index_of(e, Some(symbol))?;
        e.set_trade_exit(s, trade, role, price).py_err(py)
    }

    /// Whether the run's orders are exclusive (`exclusive_orders`): each one placed
    /// closes the symbol's position first.
    fn exclusive_orders(&self) -> PyResult<bool> {
        Ok(self.context()?.config().exclusive_orders)
    }

    fn equity(&self) -> PyResult<f64> {
        Ok(self.context()?.equity())
    }

    fn cash(&self) -> PyResult<f64> {
        Ok(self.context()?.cash())
    }

    fn gross_exposure(&self) -> PyResult<f64> {
        Ok(self.context()?.gross_exposure())
    }

    /// The initial margin the positions hold: gross exposure / leverage, or Σ worth /
    /// leverage with symbols' own terms.
    fn margin_used(&self) -> PyResult<f64> {
        Ok(self.context()?.margin_used())
    }

    /// How much more of the symbol the account may hold, in money at the marks.
    #[pyo3(signature = (symbol=None))]
    fn buying_power(&self, symbol: Option<&Bound<'_, PyAny>>) -> PyResult<f64> {
        let e = self.context()?;
        Ok(e.buying_power(self.index_of(e, symbol)?))
    }

    fn open_position_count(&self) -> PyResult<usize> {
        Ok(self.context()?.portfolio().open_position_count())
    }

    /// Flat symbols with an entry order working or pending.
    fn pending_entry_count(&self) -> PyResult<usize> {
        Ok(self.context()?.pending_entry_count())
    }

    /// Place an order; returns its id. It can fill from the symbol's next bar on.
    /// `tif`: "gtc" | "day" | "ioc" | "fok" | "opg" | "close"; `valid_bars` / `valid_until` (ns) make it good till
    /// then. `trail` / `sl_trail`: (kind, value, study) with kind "distance" | "fraction"
    /// | "atr" (value = the ATR multiple, study = the ATR's id). `sized`: the size is the
    /// sizer's (`size_order`), which may size the order again when it fills.
    #[pyo3(signature = (symbol, buy, size, limit=None, stop=None, sl=None, tp=None, tag=0, tif="gtc", valid_bars=None, valid_until=None, trail=None, sl_trail=None, oco=None, sized=false))]
    #[allow(clippy::too_many_arguments)]
    fn submit(
        &self,
        py: Python<'_>,
        symbol: Option<&Bound<'_, PyAny>>,
        buy: bool,
        size: f64,
        limit: Option<f64>,
        stop: Option<f64>,
        sl: Option<f64>,
        tp: Option<f64>,
        tag: i64,
        tif: &str,
        valid_bars: Option<usize>,
        valid_until: Option<i64>,
        trail: Option<(String, f64, Option<usize>)>,
        sl_trail: Option<(String, f64, Option<usize>)>,
        oco: Option<u64>,
        sized: bool,
    ) -> PyResult<u64> {
        let at_fill = if sized { self.share_at_fill() } else { None };
        let e = self.context()?;
        let s = self.index_of(e, symbol)?;
        let side = if buy { Side::Buy } else { Side::Sell };
        let time_in_force = time_in_force(py, tif, valid_bars, valid_until)?;
        let req = OrderRequest {
            symbol: s,
            side,
            size,
            limit,
            stop,
            stop_loss: sl,
            take_profit: tp,
            tag,
            time_in_force,
            trail: trail.map(|t| to_trail(py, t)).transpose()?,
            stop_loss_trail: sl_trail.map(|t| to_trail(py, t)).transpose()?,
            oco,
        };
        let id = e.submit(req).py_err(py)?;
        if let Some(share) = at_fill {
            e.size_at_fill(id, share);
        }
        Ok(id)
    }

    /// Flatten the symbol's position (or `portion` of it, oldest trades first) at its next
    /// fill; None if already flat.
    #[pyo3(signature = (symbol, portion=Portion::WHOLE), text_signature = "($self, symbol, portion=1.0)")]
    pub(crate) fn close_position(
        &self,
        py: Python<'_>,
        symbol: Option<&Bound<'_, PyAny>>,
        portion: Portion,
    ) -> PyResult<Option<u64>> {
        let e = self.context()?;
        let s = self.index_of(e, symbol)?;
        e.close_portion(s, portion.0).py_err(py)
    }

    /// Change a working order's limit, stop or size from the next bar on.
    #[pyo3(signature = (order_id, limit=None, stop=None, size=None))]
    fn modify(
        &self,
        py: Python<'_>,
        order_id: u64,
        limit: Option<f64>,
        stop: Option<f64>,
        size: Option<f64>,
    ) -> PyResult<()> {
        self.context()?
            .modify(order_id, limit, stop, size)
            .py_err(py)
    }

    /// Cancel a working order; False if it had already filled or ended.
    fn cancel(&self, order_id: u64) -> PyResult<bool> {
        Ok(self.context()?.cancel(order_id))
    }

    /// Ids of the symbol's working and pending orders.
    #[pyo3(signature = (symbol=None))]
    fn open_orders(&self, symbol: Option<&Bound<'_, PyAny>>) -> PyResult<Vec<u64>> {
        let e = self.context()?;
        let s = self.index_of(e, symbol)?;
        Ok(e.open_orders(s))
    }

    /// The symbol's working and pending orders, in id order: (id, side +1/-1, size,
    /// limit, stop, sl, tp, role code, trade id, tag, details: None for a plain order,
    /// else (tif, valid bars, valid until, trail, group, parent id)). A close's size is
    /// the position's share when placed (it is sized again when it fills).
    #[pyo3(signature = (symbol=None))]
    fn working_orders(&self, symbol: Option<&Bound<'_, PyAny>>) -> PyResult<Vec<WorkingOrder>> {
        let e = self.context()?;
        let s = self.index_of(e, symbol)?;
        let row = |o: &Order| {
            let (side, role) = (o.side.sign(), o.role as u8);
            let (limit, stop, sl, tp) = (o.limit, o.stop, o.stop_loss, o.take_profit);
            let details = order_details(o, e.order_parent(o.id));
            (
                o.id, side, o.size, limit, stop, sl, tp, role, o.trade, o.tag, details,
            )
        };
        Ok(e.working_orders(s).map(row).collect())
    }

    // ---- indicators and timeframes: declared in `init()`, read in O(1) per call ----

    /// Declare a rolling statistic (sum, mean, min, max, std, ema, rsi, atr) of `source`
    /// over `window` base bars, or over a timeframe's completed candles, read `lookback`
    /// values back (its latest included; 2: `value` and `prev`).
    #[pyo3(signature = (kind, window, source="close", timeframe=None, lookback=2))]
    fn add_rolling(
        &self,
        py: Python<'_>,
        kind: &str,
        window: usize,
        source: &str,
        timeframe: Option<usize>,
        lookback: usize,
    ) -> PyResult<usize> {
        let n = self.context()?.market().symbol_count();
        let studies = self.declare(py, "an indicator")?;
        let kind = studies::rolling_kind(kind, window).py_err(py)?;
        let market = self.current_market(py);
        let id = if let Some(column) = market.get().inner.column_index(source) {
            if timeframe.is_some() {
                return Err(config_error(py, format!(
                    "source {source:?} is an extra column: candles of a timeframe carry open, high, low, close and volume only; use it on base bars (no timeframe) or through self.I"
                )));
            }
            studies.add_rolling_on_column(n, kind, column).py_err(py)?
        } else {
            let source = studies::source(source).map_err(|err| {
                let extra = market.get().inner.columns().join(", ");
                if extra.is_empty() {
                    err
                } else {
                    crate::error::EngineError::InvalidConfig(format!(
                        "{err} or an extra column ({extra})"
                    ))
                }
            });
            studies
                .add_rolling(n, kind, source.py_err(py)?, timeframe)
                .py_err(py)?
        };
        studies.set_lookback(id, lookback).py_err(py)?;
        Ok(id)
    }

    /// Declare clock-aligned candles of `period` ns from `origin` ns.
    fn add_clock_timeframe(
        &self,
        py: Python<'_>,
        period: i64,
        origin: i64,
        history: usize,
    ) -> PyResult<usize> {
        let n = self.context()?.market().symbol_count();
        self.declare(py, "a timeframe")?
            .add_clock_timeframe(n, period, origin, history)
            .py_err(py)
    }

    /// Declare candles whose buckets (label, end per base bar; label = int64 min skips
    /// the bar) were computed by the caller.
    fn add_given_timeframe(
        &self,
        py: Python<'_>,
        labels: Vec<PyReadonlyArray1<'_, i64>>,
        ends: Vec<PyReadonlyArray1<'_, i64>>,
        history: usize,
    ) -> PyResult<usize> {
        let market = self.context()?.market().clone();
        let studies = self.declare(py, "a timeframe")?;
        let bars: Vec<_> = (0..market.symbol_count()).map(|s| market.bars(s)).collect();
        let labels = labels.iter().map(|a| a.as_array().to_vec()).collect();
        let ends = ends.iter().map(|a| a.as_array().to_vec()).collect();
        studies
            .add_given_timeframe(&bars, labels, ends, history)
            .py_err(py)
    }

    /// Declare a precomputed series (one float per base bar per symbol), revealed bar by
    /// bar. A read-only, contiguous array is read where it is (kept alive, not copied: an
    /// array nobody may write through, such as pandas hands out); any other is copied.
    fn add_series(&self, py: Python<'_>, values: Vec<Bound<'_, PyArray1<f64>>>) -> PyResult<usize> {
        let market = self.context()?.market().clone();
        let studies = self.declare(py, "an indicator (self.I)")?;
        let bars: Vec<_> = (0..market.symbol_count()).map(|s| market.bars(s)).collect();
        let values = series_values(&values)?;
        studies.add_series(&bars, values).py_err(py)
    }

    #[pyo3(signature = (id, symbol=None))]
    pub(crate) fn study_value(
        &self,
        py: Python<'_>,
        id: usize,
        symbol: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<f64> {
        let e = self.context()?;
        let s = self.index_of(e, symbol)?;
        e.studies().value(id, s, e.bar_index(s)).py_err(py)
    }

    #[pyo3(signature = (id, symbol=None))]
    pub(crate) fn study_prev(
        &self,
        py: Python<'_>,
        id: usize,
        symbol: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<f64> {
        let e = self.context()?;
        let s = self.index_of(e, symbol)?;
        e.studies().prev(id, s, e.bar_index(s)).py_err(py)
    }

    #[pyo3(signature = (id, symbol=None))]
    pub(crate) fn study_ready(
        &self,
        py: Python<'_>,
        id: usize,
        symbol: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<bool> {
        let e = self.context()?;
        let s = self.index_of(e, symbol)?;
        e.studies().is_ready(id, s, e.bar_index(s)).py_err(py)
    }

    #[pyo3(signature = (id, symbol=None))]
    pub(crate) fn study_reset(
        &self,
        py: Python<'_>,
        id: usize,
        symbol: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<()> {
        let e = self.context()?;
        let s = self.index_of(e, symbol)?;
        e.reset_study(id, s).py_err(py)
    }

    /// The last `count` completed candles (oldest first) as a dict of numpy columns
    /// (ts, end, open, high, low, close, volume); with `forming`, the forming one appended.
    #[pyo3(signature = (timeframe, symbol, count, forming=false))]
    fn candles<'py>(
        &self,
        py: Python<'py>,
        timeframe: usize,
        symbol: Option<&Bound<'_, PyAny>>,
        count: usize,
        forming: bool,
    ) -> PyResult<Bound<'py, PyDict>> {
        let e = self.context()?;
        let s = self.index_of(e, symbol)?;
        let c = e
            .studies()
            .candles(timeframe, s)
            .py_err(py)?
            .columns(count, forming);
        candle_dict(py, c)
    }

    /// Symbol `symbol`'s whole bars fed afresh into candles, bar by bar as the market
    /// phase feeds them (`candles::CandleHistory`): those of declared `timeframe`, of
    /// clock buckets (`period` ns from `origin`), or of buckets given per bar (`labels`,
    /// `ends`; label int64 min skips the bar). A dict of read-only numpy columns: the
    /// completed candles' ts, end, open, high, low, close, volume, and per bar `joined`
    /// (its candle's index, -1 for none) and `completed` (candles complete once it is
    /// fed). Declares nothing.
    #[pyo3(signature = (symbol, *, timeframe=None, period=None, origin=0, labels=None, ends=None))]
    #[allow(clippy::too_many_arguments)]
    fn candle_history<'py>(
        &self,
        py: Python<'py>,
        symbol: &Bound<'_, PyAny>,
        timeframe: Option<usize>,
        period: Option<i64>,
        origin: i64,
        labels: Option<PyReadonlyArray1<'_, i64>>,
        ends: Option<PyReadonlyArray1<'_, i64>>,
    ) -> PyResult<Bound<'py, PyDict>> {
        let e = self.context()?;
        let s = self.index_of(e, Some(symbol))?;
        let bars = e.market().bars(s);
        let history = match (timeframe, period, labels, ends) {
            (Some(tf), None, None, None) => e.studies().candle_history(tf, s, bars),
            (None, Some(period), None, None) => {
                studies::clock_history(bars, period, origin, e.studies().wall_clock())
            }
            (None, None, Some(labels), Some(ends)) => studies::given_history(
                bars,
                labels.as_array().to_vec(),
                ends.as_array().to_vec(),
                e.studies().wall_clock(),
            ),
            _ => {
                return Err(config_error(
                    py,
                    "candle_history: give one of timeframe=, period= or labels= with ends=",
                ))
            }
        }
        .py_err(py)?;
        let d = candle_dict(py, history.candles)?;
        for (key, column) in [("joined", history.joined), ("completed", history.completed)] {
            let array = PyArray1::from_vec(py, column);
            array.call_method1("setflags", (false,))?;
            d.set_item(key, array)?;
        }
        Ok(d)
    }

    /// Number of candles completed so far (changes exactly when a new one completes).
    #[pyo3(signature = (timeframe, symbol=None))]
    fn candle_count(
        &self,
        py: Python<'_>,
        timeframe: usize,
        symbol: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<u64> {
        let e = self.context()?;
        let s = self.index_of(e, symbol)?;
        Ok(e.studies()
            .candles(timeframe, s)
            .py_err(py)?
            .total_completed())
    }

    /// The latest completed candle as (ts, end, open, high, low, close, volume), or None.
    #[pyo3(signature = (timeframe, symbol=None))]
    fn last_candle(
        &self,
        py: Python<'_>,
        timeframe: usize,
        symbol: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Option<CandleTuple>> {
        let e = self.context()?;
        let s = self.index_of(e, symbol)?;
        let c = e
            .studies()
            .candles(timeframe, s)
            .py_err(py)?
            .last_completed();
        Ok(c.map(candle_tuple))
    }

    /// The completed candle whose bucket contains `ts` (or the latest before it), by
    /// binary search over the retained candles.
    fn candle_at(
        &self,
        py: Python<'_>,
        timeframe: usize,
        symbol: Option<&Bound<'_, PyAny>>,
        ts: i64,
    ) -> PyResult<Option<CandleTuple>> {
        let e = self.context()?;
        let s = self.index_of(e, symbol)?;
        let series = e.studies().candles(timeframe, s).py_err(py)?;
        let c = series.index_at(ts).and_then(|i| series.get(i));
        Ok(c.map(candle_tuple))
    }
}

/// Candles as a dict of read-only numpy columns: ts, end, open, high, low, close, volume.
fn candle_dict(py: Python<'_>, c: CandleColumns) -> PyResult<Bound<'_, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("ts", PyArray1::from_vec(py, c.ts))?;
    d.set_item("end", PyArray1::from_vec(py, c.end))?;
    d.set_item("open", PyArray1::from_vec(py, c.open))?;
    d.set_item("high", PyArray1::from_vec(py, c.high))?;
    d.set_item("low", PyArray1::from_vec(py, c.low))?;
    d.set_item("close", PyArray1::from_vec(py, c.close))?;
    d.set_item("volume", PyArray1::from_vec(py, c.volume))?;
    for (_, v) in d.iter() {
        v.cast::<numpy::PyUntypedArray>()?
            .call_method1("setflags", (false,))?;
    }
    Ok(d)
}
