//! The strategy's hot accessors: the bases of `tickstep.Position` and `tickstep.History`,
//! the bar tuple and read-only column views, made in one call each.
//!
//! A strategy keeps one `Position` per symbol (and one for "the running symbol") and one
//! `History` per (symbol, count) for the whole run: they hold a symbol index, not data,
//! and read the core when asked, so nothing is allocated per bar for them. Their Python
//! subclasses (`strategy.py`) add documentation and the rarely used members.

use std::os::raw::{c_int, c_void};

use numpy::npyffi::{self, npy_intp, NPY_ARRAY_ALIGNED, NPY_ARRAY_C_CONTIGUOUS, PY_ARRAY_API};
use numpy::{Element, PyArrayDescrMethods};
use std::sync::OnceLock;

use pyo3::exceptions::{PyAttributeError, PyTypeError};
use pyo3::ffi;
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyFloat, PyInt, PyList, PyString, PyTuple, PyType};
use pyo3::{PyTraverseError, PyVisit};

use super::context::{OrderPrices, Portion, PyContext};
use super::errors::state_error;
use super::market::{view_column, PyMarket};
use crate::context::TickContext;
use crate::portfolio::worth;

/// A read-only view of `data` (part of the market held by `owner`): a numpy array made
/// directly without the writeable flag, so no borrow bookkeeping per view.
pub fn frozen_view<'py, T: Element>(
    py: Python<'py>,
    data: &[T],
    owner: &Bound<'py, PyMarket>,
) -> PyResult<Bound<'py, PyAny>> {
    let mut dims = [data.len() as npy_intp];
    let mut strides = [std::mem::size_of::<T>() as npy_intp];
    // SAFETY: `data` lives inside the immutable `Market` behind the `Arc` held by `owner`
    // (a frozen pyclass): its columns never move or change while `owner` lives, and the
    // array holds a reference to `owner` (its base). The array is created without
    // NPY_ARRAY_WRITEABLE, so Python cannot write through it.
    unsafe {
        let array = PY_ARRAY_API.PyArray_NewFromDescr(
            py,
            npyffi::get_type_object(py, npyffi::NpyTypes::PyArray_Type),
            T::get_dtype(py).into_dtype_ptr(),
            1,
            dims.as_mut_ptr(),
            strides.as_mut_ptr(),
            data.as_ptr() as *mut c_void,
            NPY_ARRAY_C_CONTIGUOUS | NPY_ARRAY_ALIGNED,
            std::ptr::null_mut(),
        );
        if array.is_null() {
            return Err(PyErr::fetch(py));
        }
        let array = Bound::from_owned_ptr(py, array);
        let base = owner.clone().into_any().into_ptr();
        if PY_ARRAY_API.PyArray_SetBaseObject(py, array.as_ptr().cast(), base) < 0 {
            return Err(PyErr::fetch(py));
        }
        Ok(array)
    }
}

/// Bars `window` (run indices) of `symbol`'s column `name` as a read-only view (the
/// price columns here; anything else through the market's own column lookup). A
/// streamed window holds the symbol's bars from `base(symbol)` on: the view starts there.
pub fn column_view<'py>(
    py: Python<'py>,
    market: &Bound<'py, PyMarket>,
    symbol: usize,
    name: &str,
    window: std::ops::Range<usize>,
) -> PyResult<Bound<'py, PyAny>> {
    let m = &market.get().inner;
    let (b, base) = (m.bars(symbol), m.base(symbol));
    let stop = window.end.min(m.end(symbol)).saturating_sub(base);
    let w = window.start.saturating_sub(base).min(stop)..stop;
    match name {
        "ts" => frozen_view(py, &b.ts[w], market),
        "open" => frozen_view(py, &b.open[w], market),
        "high" => frozen_view(py, &b.high[w], market),
        "low" => frozen_view(py, &b.low[w], market),
        "close" => frozen_view(py, &b.close[w], market),
        "volume" => frozen_view(py, &b.volume[w], market),
        other => view_column(market, symbol, other, window.start, window.end),
    }
}

/// `symbol`'s latest bar as an instance of `class` (a tuple subclass with named fields:
/// time, open, high, low, close, volume), or None before its first bar.
pub fn bar_tuple<'py>(
    py: Python<'py>,
    e: &TickContext<'_>,
    symbol: usize,
    class: &Bound<'py, PyType>,
) -> PyResult<Bound<'py, PyAny>> {
    let Some(i) = e.bar_index(symbol) else {
        return Ok(py.None().into_bound(py));
    };
    let b = e.market().bars(symbol);
    let i = e.market().local(symbol, i);
    let items = [
        PyInt::new(py, b.ts[i]).into_any(),
        PyFloat::new(py, b.open[i]).into_any(),
        PyFloat::new(py, b.high[i]).into_any(),
        PyFloat::new(py, b.low[i]).into_any(),
        PyFloat::new(py, b.close[i]).into_any(),
        PyFloat::new(py, b.volume[i]).into_any(),
    ];
    // SAFETY: `class` is a subclass of tuple (checked when the context was made); its
    // `tp_alloc` gives a zeroed tuple of 6 slots, each filled exactly once below with a
    // new reference (PyTuple_SetItem steals it), as `tuple.__new__(class, items)` does.
    unsafe {
        let ty = class.as_type_ptr();
        let alloc = (*ty).tp_alloc.unwrap_or(ffi::PyType_GenericAlloc);
        let t = alloc(ty, items.len() as ffi::Py_ssize_t);
        if t.is_null() {
            return Err(PyErr::fetch(py));
        }
        let t = Bound::from_owned_ptr(py, t);
        for (k, item) in items.into_iter().enumerate() {
            if ffi::PyTuple_SetItem(t.as_ptr(), k as ffi::Py_ssize_t, item.into_ptr()) < 0 {
                return Err(PyErr::fetch(py));
            }
        }
        Ok(t)
    }
}

/// The base of `tickstep.Position`: one symbol's position (index -1: the symbol whose
/// `next()` is running), read live from the core.
#[pyclass(name = "PositionBase", module = "tickstep._core", frozen, subclass)]
pub struct PyPositionBase {
    ctx: Py<PyContext>,
    symbol: isize,
    /// The strategy's kept position per symbol index (None until first asked for): given
    /// to the running symbol's position only, so `self.position("AAPL")` is one call.
    kept: Option<Py<PyList>>,
}

#[pymethods]
impl PyPositionBase {
    #[new]
    #[pyo3(signature = (ctx, symbol, *_rest, kept=None))]
    fn new(
        ctx: Py<PyContext>,
        symbol: isize,
        _rest: &Bound<'_, PyAny>,
        kept: Option<Py<PyList>>,
    ) -> Self {
        PyPositionBase { ctx, symbol, kept }
    }

    /// The position in ``symbol`` (the running symbol's when None): the kept object, or
    /// else the subclass's ``_position_of`` makes (and keeps) it.
    #[pyo3(signature = (symbol=None))]
    fn __call__<'py>(
        slf: &Bound<'py, Self>,
        symbol: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let me = slf.get();
        if let (Some(kept), Some(obj)) =
            (&me.kept, symbol.filter(|o| o.is_instance_of::<PyString>()))
        {
            let i = me.ctx.get().resolve(Some(obj))?;
            if i >= 0 {
                let found = kept.bind(slf.py()).get_item(i as usize)?;
                if !found.is_none() {
                    return Ok(found);
                }
            }
        }
        slf.getattr("_s")?.call_method1("_position_of", (symbol,))
    }

    /// The symbol index this position follows (-1: the running symbol's).
    #[getter]
    fn index(&self) -> isize {
        self.symbol
    }

    /// Signed units: positive long, negative short, 0 flat.
    #[getter]
    fn size(&self) -> PyResult<f64> {
        let ctx = self.ctx.get();
        match ctx.live_size(self.symbol) {
            Some(size) => Ok(size),
            None => ctx.size_at(self.symbol),
        }
    }

    /// Volume-weighted entry price of the open trades (NaN when flat).
    #[getter]
    fn average_price(&self) -> PyResult<f64> {
        let (_, average, _, _) = self.ctx.get().position_at(self.symbol)?;
        Ok(average)
    }

    /// Signed market value at the latest price: size x price x the symbol's multiplier
    /// (negative when short).
    #[getter]
    fn value(&self) -> PyResult<f64> {
        let (size, _, price, multiplier) = self.ctx.get().position_at(self.symbol)?;
        Ok(if size == 0.0 {
            0.0
        } else {
            worth(size, price, multiplier)
        })
    }

    /// Unrealised profit/loss at the latest price, before exit costs.
    #[getter]
    fn pl(&self) -> PyResult<f64> {
        let (size, average, price, multiplier) = self.ctx.get().position_at(self.symbol)?;
        Ok(if size == 0.0 {
            0.0
        } else {
            worth(size, price - average, multiplier)
        })
    }

    /// Whether the position is long (size above 0).
    #[getter]
    fn is_long(&self) -> PyResult<bool> {
        Ok(self.size()? > 0.0)
    }

    /// Whether the position is short (size below 0).
    #[getter]
    fn is_short(&self) -> PyResult<bool> {
        Ok(self.size()? < 0.0)
    }

    /// Flatten (or close ``portion`` of it, oldest trades first) at the next fill;
    /// returns the order id (None if flat).
    #[pyo3(signature = (portion=Portion::WHOLE), text_signature = "($self, portion=1.0)")]
    fn close(&self, py: Python<'_>, portion: Portion) -> PyResult<Option<u64>> {
        self.ctx.get().close_at(py, self.symbol, portion.0)
    }

    fn __bool__(&self) -> PyResult<bool> {
        Ok(self.size()? != 0.0)
    }
}

/// `bool(position)` (`if self.position:`), read without pyo3's wrapper around a slot.
///
/// The idioms test a position's truth at most bars; the read itself is a few loads, and
/// the wrapper (the attach count in a thread-local, the deferred reference counts, the
/// panic guard) cost several times it. This reads the same size through the same context
/// (`PyPositionBase::size`) and raises the same errors; a panic (none is expected) becomes
/// a `SystemError` instead of crossing into the interpreter.
///
/// SAFETY: installed as the `nb_bool` slot of `PositionBase` (`install_position_truth`):
/// the interpreter calls it with the GIL held and `obj` an instance of that class or of a
/// subclass (whose Rust part is at the same place).
unsafe extern "C" fn position_truth(obj: *mut ffi::PyObject) -> c_int {
    let outcome = std::panic::catch_unwind(|| {
        let py = unsafe { Python::assume_attached() };
        let position = unsafe { Borrowed::from_ptr(py, obj).cast_unchecked::<PyPositionBase>() };
        let me = position.get();
        match me.ctx.get().live_size(me.symbol) {
            Some(size) => Ok(size != 0.0),
            None => me.size().map(|size| size != 0.0),
        }
    });
    match outcome {
        Ok(Ok(truth)) => c_int::from(truth),
        Ok(Err(err)) => {
            err.restore(unsafe { Python::assume_attached() });
            -1
        }
        Err(_) => {
            unsafe {
                ffi::PyErr_SetString(
                    ffi::PyExc_SystemError,
                    c"tickstep: reading a position's truth value failed".as_ptr(),
                )
            };
            -1
        }
    }
}

/// Make `position_truth` the truth slot of `PositionBase`, before any subclass is made.
/// Both places the interpreter takes it from are set: the slot itself, and the function
/// its `__bool__` descriptor wraps (a Python subclass such as `tickstep.Position` takes
/// its slot from that descriptor when its class is created). Anything unexpected leaves
/// pyo3's own slot in place.
pub fn install_position_truth(py: Python<'_>) -> PyResult<()> {
    let ty = py.get_type::<PyPositionBase>();
    let descriptor = ty.getattr("__dict__")?.get_item("__bool__")?;
    // SAFETY: the descriptor is checked to be a slot wrapper (a PyWrapperDescrObject) that
    // wraps the type's present slot; a heap type's number methods live in its own type
    // object. Both are replaced once, at module init, before any instance or subclass of
    // the class exists, and the type's caches are told (`PyType_Modified`).
    unsafe {
        let d = descriptor.as_ptr();
        let t = ty.as_type_ptr();
        let numbers = (*t).tp_as_number;
        if numbers.is_null() || ffi::Py_TYPE(d) != std::ptr::addr_of_mut!(ffi::PyWrapperDescr_Type)
        {
            return Ok(());
        }
        let wrapper = d.cast::<ffi::PyWrapperDescrObject>();
        let present = (*numbers).nb_bool;
        if present.map(|f| f as *mut c_void) != Some((*wrapper).d_wrapped) {
            return Ok(());
        }
        (*wrapper).d_wrapped = position_truth as *mut c_void;
        (*numbers).nb_bool = Some(position_truth);
        ffi::PyType_Modified(t);
    }
    Ok(())
}

/// The base of `tickstep.Orders` (a strategy's `self.orders`): called, the ids of a
/// symbol's working orders in one call into the core, as the method it replaced;
/// counted or tested, the running symbol's working orders (every symbol's where none
/// runs), without making them. The subclass makes them into `Order` objects.
#[pyclass(name = "OrdersBase", module = "tickstep._core", frozen, subclass)]
pub struct PyOrdersBase {
    ctx: Py<PyContext>,
}

#[pymethods]
impl PyOrdersBase {
    #[new]
    #[pyo3(signature = (ctx, *_rest))]
    fn new(ctx: Py<PyContext>, _rest: &Bound<'_, PyAny>) -> Self {
        PyOrdersBase { ctx }
    }

    /// Ids of ``symbol``'s working orders (the running symbol's when None), oldest first.
    #[pyo3(signature = (symbol=None))]
    fn __call__(&self, symbol: Option<&Bound<'_, PyAny>>) -> PyResult<Vec<u64>> {
        let ctx = self.ctx.get();
        let e = ctx.context()?;
        Ok(e.open_orders(ctx.index_of(e, symbol)?))
    }

    /// How many orders work: the running symbol's, or every symbol's where none runs.
    fn __len__(&self) -> PyResult<usize> {
        let e = self.ctx.get().context()?;
        Ok(e.symbols_in_view()
            .map(|s| e.working_orders(s).count())
            .sum())
    }

    fn __bool__(&self) -> PyResult<bool> {
        let e = self.ctx.get().context()?;
        Ok(e.symbols_in_view()
            .any(|s| e.working_orders(s).next().is_some()))
    }
}

/// The base of `tickstep.History`: read-only numpy views of one symbol's last `count`
/// bars up to the current tick (index -1: the running symbol's), made when read.
#[pyclass(name = "HistoryBase", module = "tickstep._core", frozen, subclass)]
pub struct PyHistoryBase {
    ctx: Py<PyContext>,
    symbol: isize,
    count: usize,
    /// What calling these bars serves (`_serve`, once; `self.data` only): the views made
    /// so far by `(symbol, count)`, and the function that makes one. A call is the core's
    /// own (one look-up, no Python frame): `self.data(count=10)` is read at many bars.
    served: OnceLock<(Py<PyDict>, Py<PyAny>)>,
    /// `bars_call`, where the interpreter finds it when the class calls by vectorcall
    /// (see `_serve`).
    call: Option<ffi::vectorcallfunc>,
}

impl PyHistoryBase {
    fn view<'py>(&self, py: Python<'py>, name: &str) -> PyResult<Bound<'py, PyAny>> {
        self.ctx.get().history_at(py, self.symbol, name, self.count)
    }
}

/// A call of served bars (`self.data(count=10)`) by the interpreter's vectorcall: the
/// arguments read where they lie, with no tuple and dictionary made for them, which a
/// class's `__call__` otherwise costs at every call (most of the call's time). The same
/// answers and errors as `__call__` (which it calls); a panic (none is expected) becomes
/// a `SystemError`.
///
/// SAFETY: the interpreter calls it with the GIL held, `callable` an instance of a class
/// `_serve` enabled (a subclass of `HistoryBase`, whose Rust part is at the same place),
/// `nargsf`'s count of positional arguments in `args`, followed by one per name in
/// `kwnames` (a tuple of strings, or null).
unsafe extern "C" fn bars_call(
    callable: *mut ffi::PyObject,
    args: *const *mut ffi::PyObject,
    nargsf: usize,
    kwnames: *mut ffi::PyObject,
) -> *mut ffi::PyObject {
    let outcome = std::panic::catch_unwind(|| {
        let py = unsafe { Python::assume_attached() };
        let bars = unsafe { Borrowed::from_ptr(py, callable).cast_unchecked::<PyHistoryBase>() };
        let given = unsafe { ffi::PyVectorcall_NARGS(nargsf) } as usize;
        if given > 2 {
            return Err(PyTypeError::new_err(format!(
                "self.data(symbol=None, count=None) takes at most 2 arguments ({given} given)"
            )));
        }
        let arg = |k: usize| unsafe { Borrowed::from_ptr(py, *args.add(k)) }.to_owned();
        let mut slots = [None, None];
        for (k, slot) in slots.iter_mut().enumerate().take(given) {
            *slot = Some(arg(k));
        }
        if !kwnames.is_null() {
            let names = unsafe { Borrowed::from_ptr(py, kwnames).cast_unchecked::<PyTuple>() };
            for (j, name) in names.iter().enumerate() {
                let slot = match name.cast::<PyString>().map(|n| n.to_str()) {
                    Ok(Ok("symbol")) => 0,
                    Ok(Ok("count")) => 1,
                    _ => {
                        return Err(PyTypeError::new_err(format!(
                            "self.data(symbol=None, count=None) got an unexpected argument {name}"
                        )))
                    }
                };
                if slots[slot].replace(arg(given + j)).is_some() {
                    return Err(PyTypeError::new_err(format!(
                        "self.data(symbol=None, count=None) got {name} twice"
                    )));
                }
            }
        }
        let [symbol, count] = slots;
        bars.get().__call__(py, symbol, count).map(Bound::into_ptr)
    });
    match outcome {
        Ok(Ok(view)) => view,
        Ok(Err(err)) => {
            err.restore(unsafe { Python::assume_attached() });
            std::ptr::null_mut()
        }
        Err(_) => {
            unsafe {
                ffi::PyErr_SetString(
                    ffi::PyExc_SystemError,
                    c"tickstep: calling self.data failed".as_ptr(),
                )
            };
            std::ptr::null_mut()
        }
    }
}

#[pymethods]
impl PyHistoryBase {
    #[new]
    #[pyo3(signature = (ctx, symbol, count=None, *_rest))]
    fn new(
        ctx: Py<PyContext>,
        symbol: isize,
        count: Option<usize>,
        _rest: &Bound<'_, PyAny>,
    ) -> Self {
        PyHistoryBase {
            ctx,
            symbol,
            count: count.unwrap_or(usize::MAX),
            served: OnceLock::new(),
            call: Some(bars_call),
        }
    }

    /// Make calling these bars give `views[(symbol, count)]`, made by `make(symbol,
    /// count)` the first time (which files it in `views`). Once.
    ///
    /// Their class then calls by vectorcall (`bars_call`), when it has no other: the
    /// interpreter reads the function from each instance at the offset the class names,
    /// that of the `call` field (the same in every subclass). A class made in Python
    /// does not take vectorcall from its base before Python 3.12; this sets it on the
    /// class of the served bars. Anything unexpected leaves calls to `__call__`.
    fn _serve(slf: &Bound<'_, Self>, views: Py<PyDict>, make: Py<PyAny>) -> PyResult<()> {
        let me = slf.get();
        me.served
            .set((views, make))
            .map_err(|_| PyTypeError::new_err("these bars are served once"))?;
        let field = std::ptr::addr_of!(me.call) as isize;
        let offset = field - slf.as_ptr() as isize;
        // SAFETY: the class is the instance's own (a heap type, as pyo3's and Python's
        // classes are); `offset` is where every instance of it holds `call` (a function
        // pointer, never null), within the instance. The flag and the offset are set
        // together, once, and the type's caches are told (`PyType_Modified`).
        unsafe {
            let t = ffi::Py_TYPE(slf.as_ptr());
            let has = (*t).tp_flags & ffi::Py_TPFLAGS_HAVE_VECTORCALL != 0;
            if has || (*t).tp_vectorcall_offset != 0 || offset <= 0 {
                return Ok(()); // set before (or another's): as it is
            }
            (*t).tp_vectorcall_offset = offset as ffi::Py_ssize_t;
            (*t).tp_flags |= ffi::Py_TPFLAGS_HAVE_VECTORCALL;
            ffi::PyType_Modified(t);
        }
        Ok(())
    }

    /// The bars of `symbol` (the running one by default), the last `count` (all so far
    /// by default), see `tickstep.Bars`: the view made before for them, else the one
    /// `make` makes. (Calls by vectorcall, `bars_call`, come here too.)
    #[pyo3(signature = (symbol=None, count=None))]
    fn __call__<'py>(
        &self,
        py: Python<'py>,
        symbol: Option<Bound<'py, PyAny>>,
        count: Option<Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let Some((views, make)) = self.served.get() else {
            return Err(PyTypeError::new_err(
                "only self.data is called (self.data(symbol, count=n)); these bars are one view",
            ));
        };
        let none = || py.None().into_bound(py);
        let (symbol, count) = (symbol.unwrap_or_else(none), count.unwrap_or_else(none));
        let key = PyTuple::new(py, [&symbol, &count])?;
        // An unhashable key is no error here: `make` says what is wrong with it.
        if let Ok(Some(view)) = views.bind(py).get_item(&key) {
            return Ok(view);
        }
        make.bind(py).call1((symbol, count))
    }

    /// What these bars hold of Python's, for its cycle collector: served bars refer to
    /// the strategy (`make`), which refers to them (`self.data`), and such a cycle is
    /// freed only when every reference in it is seen.
    fn __traverse__(&self, visit: PyVisit<'_>) -> Result<(), PyTraverseError> {
        visit.call(&self.ctx)?;
        if let Some((views, make)) = self.served.get() {
            visit.call(views)?;
            visit.call(make)?;
        }
        Ok(())
    }

    /// The context these bars are read through.
    #[getter(_ctx)]
    fn context(&self, py: Python<'_>) -> Py<PyContext> {
        self.ctx.clone_ref(py)
    }

    /// The symbol index these bars are of (-1: the running symbol's).
    #[getter]
    fn symbol_index(&self) -> isize {
        self.symbol
    }

    /// Bar times, int64 ns UTC.
    #[getter]
    fn ts<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        self.view(py, "ts")
    }

    /// Opens.
    #[getter]
    fn open<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        self.view(py, "open")
    }

    /// Highs.
    #[getter]
    fn high<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        self.view(py, "high")
    }

    /// Lows.
    #[getter]
    fn low<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        self.view(py, "low")
    }

    /// Closes.
    #[getter]
    fn close<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        self.view(py, "close")
    }

    /// Volumes.
    #[getter]
    fn volume<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        self.view(py, "volume")
    }

    /// Column ``name`` over the same bars (read-only view).
    fn column<'py>(&self, py: Python<'py>, name: &str) -> PyResult<Bound<'py, PyAny>> {
        self.view(py, name)
    }

    /// Number of bars in the window (at most ``count``; all so far when not given).
    fn __len__(&self, py: Python<'_>) -> PyResult<usize> {
        self.ctx.get().history_len(py, self.symbol, self.count)
    }
}

/// The base of `tickstep.Strategy`: `self.position` belongs to the engine (the running
/// symbol's position), so assigning to it — which would shadow it for the rest of the run
/// — is refused with an error saying so. Every other attribute is set as usual. A type
/// slot rather than a Python `__setattr__`: reads of the strategy's attributes (and of
/// `self.position`, a plain attribute) stay the interpreter's fastest; a store costs a
/// call into this slot.
///
/// The orders and reads a strategy makes at many bars (`buy`, `sell`, `close`, `price`,
/// `position_size`) are methods of this base: one call from the strategy into the core,
/// with no Python function in between.
#[pyclass(name = "StrategyBase", module = "tickstep._core", frozen, subclass)]
pub struct PyStrategyBase {
    /// The context its orders and reads go through (`_adopt_context`, once).
    ctx: OnceLock<Py<PyContext>>,
}

/// An order's arguments as `buy`/`sell` take them.
struct OrderArgs<'a, 'py> {
    symbol: Option<&'a Bound<'py, PyAny>>,
    size: Option<&'a Bound<'py, PyAny>>,
    limit: Option<&'a Bound<'py, PyAny>>,
    stop: Option<&'a Bound<'py, PyAny>>,
    sl: Option<&'a Bound<'py, PyAny>>,
    tp: Option<&'a Bound<'py, PyAny>>,
    tag: Option<&'a Bound<'py, PyAny>>,
    trail: Option<&'a Bound<'py, PyAny>>,
    sl_trail: Option<&'a Bound<'py, PyAny>>,
    tif: Option<&'a Bound<'py, PyAny>>,
    valid: Option<&'a Bound<'py, PyAny>>,
    oco: Option<&'a Bound<'py, PyAny>>,
}

impl PyStrategyBase {
    fn context(&self) -> PyResult<&PyContext> {
        match self.ctx.get() {
            Some(ctx) => Ok(ctx.get()),
            None => Err(Python::attach(|py| {
                state_error(
                    py,
                    "this strategy was not made by a Backtest: it has no engine to trade with",
                )
            })),
        }
    }

    /// `buy`/`sell`: an order without `valid=`, `trail=` or `sl_trail=` in one call into
    /// the core; the others through `Strategy._order`. A size, price, tag or oco of the
    /// wrong type is refused naming it (`tickstep.strategy._refuse_order_types`).
    fn order(slf: &Bound<'_, Self>, buy: bool, a: &OrderArgs<'_, '_>) -> PyResult<Py<PyAny>> {
        let py = slf.py();
        if a.valid.is_none() && a.trail.is_none() && a.sl_trail.is_none() {
            return match Self::place(slf.get(), py, buy, a) {
                Ok(id) => Ok(id.into_pyobject(py)?.into_any().unbind()),
                Err(err) if err.is_instance_of::<PyTypeError>(py) => {
                    refuse_order_types(py, a)?;
                    Err(err)
                }
                Err(err) => Err(err),
            };
        }
        let kwargs = PyDict::new(py);
        kwargs.set_item("trail", a.trail)?;
        kwargs.set_item("sl_trail", a.sl_trail)?;
        match a.tif {
            Some(tif) => kwargs.set_item("tif", tif)?,
            None => kwargs.set_item("tif", "gtc")?,
        }
        kwargs.set_item("valid", a.valid)?;
        kwargs.set_item("oco", a.oco)?;
        let tag = match a.tag {
            Some(tag) => tag.clone(),
            None => 0i64.into_pyobject(py)?.into_any(),
        };
        let args = (a.symbol, buy, a.size, a.limit, a.stop, a.sl, a.tp, tag);
        slf.call_method(intern!(py, "_order"), args, Some(&kwargs))
            .map(Bound::unbind)
    }

    fn place(&self, py: Python<'_>, buy: bool, a: &OrderArgs<'_, '_>) -> PyResult<Option<u64>> {
        let tp = a.tp.map(|x| x.extract::<f64>()).transpose()?;
        let tag = a.tag.map_or(Ok(0), |x| x.extract::<i64>())?;
        let oco = a.oco.map(|x| x.extract::<u64>()).transpose()?;
        let tif = match a.tif {
            Some(x) => x.cast::<PyString>()?.to_cow()?,
            None => "gtc".into(),
        };
        let prices = OrderPrices {
            limit: a.limit,
            stop: a.stop,
            sl: a.sl,
            tp,
        };
        self.context()?
            .place_order(py, a.symbol, buy, a.size, prices, tag, &tif, oco)
    }
}

/// The clear refusal of an order argument of the wrong type, when there is one.
#[cold]
fn refuse_order_types(py: Python<'_>, a: &OrderArgs<'_, '_>) -> PyResult<()> {
    let kwargs = PyDict::new(py);
    kwargs.set_item("size", a.size)?;
    kwargs.set_item("limit", a.limit)?;
    kwargs.set_item("stop", a.stop)?;
    kwargs.set_item("sl", a.sl)?;
    kwargs.set_item("tp", a.tp)?;
    match a.tag {
        Some(tag) => kwargs.set_item("tag", tag)?,
        None => kwargs.set_item("tag", 0)?,
    }
    kwargs.set_item("oco", a.oco)?;
    py.import("tickstep.strategy")?
        .getattr("_refuse_order_types")?
        .call((), Some(&kwargs))?;
    Ok(())
}

#[pymethods]
impl PyStrategyBase {
    #[new]
    #[pyo3(signature = (*_args, **_kwargs))]
    fn new(_args: &Bound<'_, PyTuple>, _kwargs: Option<&Bound<'_, PyDict>>) -> Self {
        PyStrategyBase {
            ctx: OnceLock::new(),
        }
    }

    /// Take `ctx` as the context the strategy trades and reads through (once, when the
    /// strategy is made).
    fn _adopt_context(&self, ctx: Py<PyContext>) -> PyResult<()> {
        self.ctx
            .set(ctx)
            .map_err(|_| PyTypeError::new_err("a strategy's context is set once"))
    }

    /// Buy ``size`` units (market, limit, stop or stop-limit), optionally with a
    /// stop-loss ``sl`` and take-profit ``tp`` that cancel each other.
    ///
    /// Without ``size`` the backtest's sizer decides; a sized order of 0 units is not
    /// placed and None is returned. Returns the order id.
    ///
    /// Parameters
    /// ----------
    /// trail : a trailing stop order (instead of ``stop=``): its stop follows the best
    ///     price since it was placed by a distance — a number (price units), a string
    ///     ``"2%"``, or ``(atr_indicator, 3.0)`` for 3 × an ATR declared in ``init()``.
    /// sl_trail : a trailing stop-loss for the trade the order opens (instead of ``sl``),
    ///     in the same forms, starting from the entry price.
    /// tif : ``"gtc"`` (good till cancelled, default), ``"day"`` (until the end of the
    ///     trading day, in the backtest's timezone), ``"ioc"`` (a limit that may fill
    ///     only on the symbol's next bar), ``"fok"`` (fill or kill: a market or limit
    ///     order filled whole on the symbol's next bar or not at all), ``"opg"`` (at the open: a market or limit order
    ///     that may fill only at the open of the symbol's next bar) or ``"close"`` (at the
    ///     close: a market order filled at the close of the symbol's next bar, a limit
    ///     there if the close reaches it; market-on-close, limit-on-close).
    /// valid : good till a date: a number of the symbol's bars, a ``timedelta`` from
    ///     now, or a timestamp. What has not filled by then expires.
    /// oco : the id of an open order of the same symbol: the two (and any others that
    ///     join) form a one-cancels-other group.
    #[pyo3(
        signature = (symbol=None, *, size=None, limit=None, stop=None, sl=None, tp=None, tag=None, trail=None, sl_trail=None, tif=None, valid=None, oco=None),
        text_signature = "($self, symbol=None, *, size=None, limit=None, stop=None, sl=None, tp=None, tag=0, trail=None, sl_trail=None, tif='gtc', valid=None, oco=None)"
    )]
    #[allow(clippy::too_many_arguments)]
    fn buy(
        slf: &Bound<'_, Self>,
        symbol: Option<&Bound<'_, PyAny>>,
        size: Option<&Bound<'_, PyAny>>,
        limit: Option<&Bound<'_, PyAny>>,
        stop: Option<&Bound<'_, PyAny>>,
        sl: Option<&Bound<'_, PyAny>>,
        tp: Option<&Bound<'_, PyAny>>,
        tag: Option<&Bound<'_, PyAny>>,
        trail: Option<&Bound<'_, PyAny>>,
        sl_trail: Option<&Bound<'_, PyAny>>,
        tif: Option<&Bound<'_, PyAny>>,
        valid: Option<&Bound<'_, PyAny>>,
        oco: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Py<PyAny>> {
        let a = OrderArgs {
            symbol,
            size,
            limit,
            stop,
            sl,
            tp,
            tag,
            trail,
            sl_trail,
            tif,
            valid,
            oco,
        };
        Self::order(slf, true, &a)
    }

    /// Sell (or sell short) ``size`` units; see :meth:`buy`.
    #[pyo3(
        signature = (symbol=None, *, size=None, limit=None, stop=None, sl=None, tp=None, tag=None, trail=None, sl_trail=None, tif=None, valid=None, oco=None),
        text_signature = "($self, symbol=None, *, size=None, limit=None, stop=None, sl=None, tp=None, tag=0, trail=None, sl_trail=None, tif='gtc', valid=None, oco=None)"
    )]
    #[allow(clippy::too_many_arguments)]
    fn sell(
        slf: &Bound<'_, Self>,
        symbol: Option<&Bound<'_, PyAny>>,
        size: Option<&Bound<'_, PyAny>>,
        limit: Option<&Bound<'_, PyAny>>,
        stop: Option<&Bound<'_, PyAny>>,
        sl: Option<&Bound<'_, PyAny>>,
        tp: Option<&Bound<'_, PyAny>>,
        tag: Option<&Bound<'_, PyAny>>,
        trail: Option<&Bound<'_, PyAny>>,
        sl_trail: Option<&Bound<'_, PyAny>>,
        tif: Option<&Bound<'_, PyAny>>,
        valid: Option<&Bound<'_, PyAny>>,
        oco: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Py<PyAny>> {
        let a = OrderArgs {
            symbol,
            size,
            limit,
            stop,
            sl,
            tp,
            tag,
            trail,
            sl_trail,
            tif,
            valid,
            oco,
        };
        Self::order(slf, false, &a)
    }

    /// Flatten ``symbol`` at its next fill — or close ``portion`` of it (0 < portion
    /// <= 1), the oldest trades first (FIFO), sized when it fills. None if already flat.
    #[pyo3(signature = (symbol=None, *, portion=Portion::WHOLE), text_signature = "($self, symbol=None, *, portion=1.0)")]
    fn close(
        &self,
        py: Python<'_>,
        symbol: Option<&Bound<'_, PyAny>>,
        portion: Portion,
    ) -> PyResult<Option<u64>> {
        self.context()?.close_position(py, symbol, portion)
    }

    /// Latest close of ``symbol`` (the current symbol inside ``next``).
    #[pyo3(signature = (symbol=None))]
    fn price(&self, symbol: Option<&Bound<'_, PyAny>>) -> PyResult<f64> {
        self.context()?.price(symbol)
    }

    /// Signed units held in ``symbol`` (the fast path of ``position(symbol).size``).
    #[pyo3(signature = (symbol=None))]
    fn position_size(&self, symbol: Option<&Bound<'_, PyAny>>) -> PyResult<f64> {
        self.context()?.position(symbol)
    }

    fn __setattr__(
        slf: &Bound<'_, Self>,
        name: &Bound<'_, PyString>,
        value: &Bound<'_, PyAny>,
    ) -> PyResult<()> {
        if is_position(name) {
            return Err(position_refused(slf, "assign to"));
        }
        set_generic(slf.as_any(), name, value.as_ptr())
    }

    /// Set `self.position` once, when the strategy is made (the one store allowed).
    fn _adopt_position(slf: &Bound<'_, Self>, position: &Bound<'_, PyAny>) -> PyResult<()> {
        let name = pyo3::intern!(slf.py(), "position");
        set_generic(slf.as_any(), name, position.as_ptr())
    }

    fn __delattr__(slf: &Bound<'_, Self>, name: &Bound<'_, PyString>) -> PyResult<()> {
        if is_position(name) {
            return Err(position_refused(slf, "delete"));
        }
        set_generic(slf.as_any(), name, std::ptr::null_mut())
    }
}

/// Whether an attribute name is `position` (interned names by identity first).
#[inline]
fn is_position(name: &Bound<'_, PyString>) -> bool {
    let position = pyo3::intern!(name.py(), "position");
    name.is(position) || name.to_str().is_ok_and(|n| n == "position")
}

#[cold]
fn position_refused(slf: &Bound<'_, PyStrategyBase>, what: &str) -> PyErr {
    let class = slf
        .get_type()
        .name()
        .map(|n| n.to_string())
        .unwrap_or_default();
    PyAttributeError::new_err(format!(
        "cannot {what} {class}.position: it is the engine's (the running symbol's position: \
         read self.position.size, test `if self.position:`, call self.position.close()); \
         keep your own value under another name"
    ))
}

/// The default attribute store (`value` NULL: delete).
fn set_generic(
    obj: &Bound<'_, PyAny>,
    name: &Bound<'_, PyString>,
    value: *mut ffi::PyObject,
) -> PyResult<()> {
    // SAFETY: valid objects under the GIL; a NULL value deletes, as for tp_setattro.
    if unsafe { ffi::PyObject_GenericSetAttr(obj.as_ptr(), name.as_ptr(), value) } < 0 {
        return Err(PyErr::fetch(obj.py()));
    }
    Ok(())
}
