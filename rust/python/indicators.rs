//! Indicators as a strategy reads them: `IndicatorBase`, the core's handle on one declared
//! study, and the running symbol's values written into the strategy's indicator objects
//! before each `next(symbol)`.
//!
//! Why written rather than read: the idioms users write read `self.fast.value` and
//! `.prev` several times per bar. Through a getter each read is a call into the core
//! (~25 ns: attribute lookup, descriptor, call, a new float); as a slot of the object it
//! is one load the interpreter specialises (~1 ns). So a strategy's indicators are objects
//! of `tickstep.studies.Indicator`, a subclass with `value`/`prev` slots, and the adapter
//! writes the running symbol's value and previous value into them before calling
//! `next(symbol)`: the same study read at the same bar as the getter (never a later bar).
//! Outside `next` — `init`, `on_tick`, after the run — the objects are switched to a
//! subclass of the same layout whose `value`/`prev` are the core's getters again, so a
//! read there behaves exactly as before (e.g. the error that no symbol is running).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};

use numpy::PyArray1;
use pyo3::exceptions::{PyIndexError, PyLookupError, PyTypeError, PyValueError};
use pyo3::ffi;
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyInt, PySlice, PyType};

use super::context::PyContext;
use super::errors::{state_error, IntoPyResult};
use crate::context::TickContext;
use crate::studies::Studies;

/// A handle on one declared indicator: reads the current symbol's value in O(1).
#[pyclass(name = "IndicatorBase", module = "tickstep._core", frozen, subclass)]
pub struct PyIndicator {
    ctx: Py<PyContext>,
    #[pyo3(get)]
    id: usize,
    #[pyo3(get)]
    name: String,
}

/// What `crossed_above`/`crossed_below` compare with: another indicator or a level.
#[derive(FromPyObject)]
enum Other<'py> {
    Indicator(Bound<'py, PyIndicator>),
    Level(f64),
}

/// How a line crossed another at its latest update, from (now, before) of each: +1 when
/// it crossed above (at or below before, above now), -1 when it crossed below (at or
/// above before, below now), 0 otherwise — also while any of the four is NaN. The one
/// rule of `crossed_above`, `crossed_below` and `Crossing`.
#[inline]
pub fn crossing((now, before): (f64, f64), (other_now, other_before): (f64, f64)) -> i64 {
    if before <= other_before && now > other_now {
        1
    } else if before >= other_before && now < other_now {
        -1
    } else {
        0
    }
}

/// What a `Crossing` compares its indicator with: another study or a level.
#[derive(Clone, Copy)]
pub enum Against {
    Study(usize),
    Level(f64),
}

/// The crossing of study `id` with `against` for symbol `s` at its bar `bar` (None for
/// a study that does not exist).
#[inline]
fn crossing_of(
    studies: &crate::studies::Studies,
    id: usize,
    against: Against,
    s: usize,
    bar: Option<usize>,
) -> Option<i64> {
    let mine = studies.value_and_prev(id, s, bar)?;
    let theirs = match against {
        Against::Study(other) => studies.value_and_prev(other, s, bar)?,
        Against::Level(x) => (x, x),
    };
    Some(crossing(mine, theirs))
}

/// A crossing of an indicator with another indicator or a level, read in one: the base
/// of `tickstep.studies.Crossing`, whose `value` the adapter writes before each
/// `next(symbol)` like an indicator's (see the module doc).
#[pyclass(name = "CrossingBase", module = "tickstep._core", frozen, subclass)]
pub struct PyCrossing {
    ctx: Py<PyContext>,
    study: usize,
    against: Against,
    #[pyo3(get)]
    name: String,
}

impl PyCrossing {
    fn read(&self, symbol: Option<&Bound<'_, PyAny>>) -> PyResult<i64> {
        let ctx = self.ctx.get();
        let e = ctx.context()?;
        let s = ctx.index_of(e, symbol)?;
        match crossing_of(e.studies(), self.study, self.against, s, e.bar_index(s)) {
            Some(c) => Ok(c),
            None => Err(PyLookupError::new_err(format!(
                "{}: its indicators are not studies of this run",
                self.name
            ))),
        }
    }
}

#[pymethods]
impl PyCrossing {
    #[new]
    fn new(
        ctx: Py<PyContext>,
        indicator: &Bound<'_, PyIndicator>,
        other: &Bound<'_, PyAny>,
        name: String,
    ) -> PyResult<Self> {
        let against = match other.extract::<Other<'_>>() {
            Ok(Other::Indicator(i)) => Against::Study(i.get().id),
            Ok(Other::Level(x)) if x.is_finite() => Against::Level(x),
            _ => {
                return Err(PyTypeError::new_err(format!(
                "a crossing is of two indicators, or of an indicator and a finite level; got {}",
                other.repr().map(|r| r.to_string()).unwrap_or_default()
            )))
            }
        };
        Ok(PyCrossing {
            ctx,
            study: indicator.get().id,
            against,
            name,
        })
    }

    /// +1 (crossed above), -1 (crossed below) or 0 for the symbol whose `next()` is running.
    #[getter]
    fn value(&self) -> PyResult<i64> {
        self.read(None)
    }

    /// The same for a named symbol (by name or index).
    #[pyo3(signature = (symbol=None))]
    fn get(&self, symbol: Option<&Bound<'_, PyAny>>) -> PyResult<i64> {
        self.read(symbol)
    }

    fn __repr__(&self) -> String {
        format!("Crossing({})", self.name)
    }
}

impl PyIndicator {
    /// (value, previous value) of this indicator for a symbol, in one read.
    #[inline]
    fn pair(&self, py: Python<'_>, symbol: Option<&Bound<'_, PyAny>>) -> PyResult<(f64, f64)> {
        let ctx = self.ctx.get();
        let e = ctx.context()?;
        let s = ctx.index_of(e, symbol)?;
        let (studies, bar) = (e.studies(), e.bar_index(s));
        Ok((
            studies.value(self.id, s, bar).py_err(py)?,
            studies.prev(self.id, s, bar).py_err(py)?,
        ))
    }

    /// (now, before) of `other` for the same symbol.
    fn other_pair(
        py: Python<'_>,
        other: &Other<'_>,
        symbol: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<(f64, f64)> {
        match other {
            Other::Indicator(i) => i.get().pair(py, symbol),
            Other::Level(x) => Ok((*x, *x)),
        }
    }

    /// Its value for symbol `s` (latest bar `bar`) `k` updates before the latest: what
    /// `[-1 - k]` and `get(ago=k)` read, refused past what a rolling statistic keeps.
    fn back_or_refuse(
        &self,
        py: Python<'_>,
        studies: &Studies,
        s: usize,
        bar: Option<usize>,
        k: usize,
        said: &dyn Fn() -> String,
    ) -> PyResult<f64> {
        match studies.back(self.id, s, bar, k).py_err(py)? {
            Some(value) => Ok(value),
            None => {
                let lookback = studies.lookback(self.id).py_err(py)?.unwrap_or(2);
                Err(PyIndexError::new_err(keeps(&said(), lookback)))
            }
        }
    }

    /// A rolling statistic's slice `[-m:]`, its last m values as a numpy array, oldest
    /// first, within the `lookback` it keeps; any other slice is refused, naming what it
    /// keeps (it has no first bar to count from).
    fn recent<'py>(
        &self,
        py: Python<'py>,
        studies: &Studies,
        s: usize,
        bar: Option<usize>,
        slice: Option<&Bound<'py, PySlice>>,
        said: &dyn Fn() -> String,
    ) -> PyResult<Bound<'py, PyAny>> {
        let lookback = studies.lookback(self.id).py_err(py)?.unwrap_or(2);
        let last = match slice {
            Some(slice) => {
                let (start, stop, step) = (
                    slice.getattr(intern!(py, "start"))?,
                    slice.getattr(intern!(py, "stop"))?,
                    slice.getattr(intern!(py, "step"))?,
                );
                let step_one = step.is_none() || step.extract::<i64>().is_ok_and(|x| x == 1);
                start
                    .extract::<i64>()
                    .ok()
                    .filter(|&m| m < 0 && stop.is_none() && step_one)
                    .map(|m| m.unsigned_abs() as usize)
                    .filter(|&m| m <= lookback)
            }
            None => None,
        };
        let Some(m) = last else {
            return Err(PyIndexError::new_err(keeps(&said(), lookback)));
        };
        let mut values = Vec::with_capacity(m);
        for k in (0..m).rev() {
            values.push(self.back_or_refuse(py, studies, s, bar, k, said)?);
        }
        Ok(PyArray1::from_vec(py, values).into_any())
    }

    /// (now, before) of this indicator and of `other` for a symbol: inside the running
    /// symbol's `next`, from the values written for it (the same reads, done already).
    #[inline]
    #[allow(clippy::type_complexity)]
    fn crossing(
        slf: &Bound<'_, Self>,
        other: &Bound<'_, PyAny>,
        symbol: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<((f64, f64), (f64, f64))> {
        let py = slf.py();
        let me = slf.get();
        if symbol.is_none() {
            if let Some(classes) = me.ctx.get().followed.classes.get() {
                // SAFETY: the GIL is held; `written` checks the objects' class.
                if let Some(mine) = unsafe { classes.written(slf.as_ptr()) } {
                    if let Some(theirs) = unsafe { classes.written(other.as_ptr()) } {
                        return Ok((mine, theirs));
                    }
                }
            }
        }
        let other: Other<'_> = other.extract()?;
        Ok((me.pair(py, symbol)?, Self::other_pair(py, &other, symbol)?))
    }
}

#[pymethods]
impl PyIndicator {
    #[new]
    fn new(ctx: Py<PyContext>, id: usize, name: String) -> Self {
        PyIndicator { ctx, id, name }
    }

    /// Value for the symbol whose `next()` is running (NaN until ready).
    #[getter]
    fn value(&self, py: Python<'_>) -> PyResult<f64> {
        self.ctx.get().study_value(py, self.id, None)
    }

    /// The value one update earlier.
    #[getter]
    fn prev(&self, py: Python<'_>) -> PyResult<f64> {
        self.ctx.get().study_prev(py, self.id, None)
    }

    /// Value for another symbol (by name or index); with `ago`, its value that many
    /// updates before the latest (bars, or a timeframe's candles), as `[-1 - ago]` reads
    /// the running symbol's.
    #[pyo3(signature = (symbol=None, ago=0))]
    fn get(slf: &Bound<'_, Self>, symbol: Option<&Bound<'_, PyAny>>, ago: i64) -> PyResult<f64> {
        let (py, me) = (slf.py(), slf.get());
        if ago == 0 {
            return me.ctx.get().study_value(py, me.id, symbol);
        }
        let said = || {
            let repr = slf.repr().map(|r| r.to_string()).unwrap_or_default();
            format!("{repr}.get(ago={ago})")
        };
        let back = usize::try_from(ago).map_err(|_| {
            PyValueError::new_err(format!(
                "{}: ago is how many updates back, a whole number >= 0",
                said()
            ))
        })?;
        let ctx = me.ctx.get();
        let e = ctx.context()?;
        let s = ctx.index_of(e, symbol)?;
        me.back_or_refuse(py, e.studies(), s, e.bar_index(s), back, &said)
    }

    #[pyo3(signature = (symbol=None))]
    fn previous(&self, py: Python<'_>, symbol: Option<&Bound<'_, PyAny>>) -> PyResult<f64> {
        self.ctx.get().study_prev(py, self.id, symbol)
    }

    /// True once the window is full (or the series has left its warm-up NaNs).
    #[pyo3(signature = (symbol=None))]
    fn is_ready(&self, py: Python<'_>, symbol: Option<&Bound<'_, PyAny>>) -> PyResult<bool> {
        self.ctx.get().study_ready(py, self.id, symbol)
    }

    /// Restart the statistic for a symbol: it refills from its next input. Inside the
    /// symbol's own `next()`, the values written for it are written again (NaN now).
    #[pyo3(signature = (symbol=None))]
    fn reset(
        slf: &Bound<'_, Self>,
        py: Python<'_>,
        symbol: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<()> {
        let me = slf.get();
        let ctx = me.ctx.get();
        ctx.study_reset(py, me.id, symbol)?;
        let e = ctx.context()?;
        let s = ctx.index_of(e, symbol)?;
        if e.current_symbol() == Some(s) {
            if let Some(classes) = ctx.followed.classes.get() {
                // SAFETY: `slf` is a live object under the GIL; `write` checks its class.
                unsafe { classes.write_if_live(py, slf.as_ptr(), me.id, e, s)? };
            }
        }
        Ok(())
    }

    /// Whether this indicator crossed above `other` (an indicator or a level) at the
    /// latest update: ``prev <= other.prev and value > other.value`` in one read (False
    /// while any of the four is NaN).
    #[pyo3(signature = (other, symbol=None))]
    fn crossed_above(
        slf: &Bound<'_, Self>,
        other: &Bound<'_, PyAny>,
        symbol: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<bool> {
        let (mine, theirs) = Self::crossing(slf, other, symbol)?;
        Ok(crossing(mine, theirs) == 1)
    }

    /// Whether this indicator crossed below `other` at the latest update:
    /// ``prev >= other.prev and value < other.value`` (False while any is NaN).
    #[pyo3(signature = (other, symbol=None))]
    fn crossed_below(
        slf: &Bound<'_, Self>,
        other: &Bound<'_, PyAny>,
        symbol: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<bool> {
        let (mine, theirs) = Self::crossing(slf, other, symbol)?;
        Ok(crossing(mine, theirs) == -1)
    }

    fn __float__(&self, py: Python<'_>) -> PyResult<f64> {
        self.value(py)
    }

    /// backtesting.py's reads of an indicator: `[-1]` is `value`, `[-2]` is `prev` (what
    /// `backtesting.lib.crossover` reads), read through the attributes, so the same as they
    /// are in and outside `next` (inside it, the live class answers these two from its
    /// slots: `live_subscript`). An indicator of `self.I` (a precomputed series) answers
    /// any other bar up to the symbol's latest too, as backtesting.py's arrays do within
    /// `next`: `[-k]` the value k - 1 bars back (NaN before the symbol's first bar, as
    /// `[-2]` is at it), `[k]` the value at its bar k (a later bar is refused: no
    /// look-ahead), a slice the values so far it selects, as a numpy array (a copy). A
    /// rolling statistic (`self.sma`, ...) answers within the `lookback` values it keeps
    /// (`rolling_back`).
    fn __getitem__<'py>(
        slf: &Bound<'py, Self>,
        index: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let py = slf.py();
        let said = || {
            let repr = |o: &Bound<'py, PyAny>| o.repr().map(|r| r.to_string()).unwrap_or_default();
            format!("{}[{}]", repr(slf.as_any()), repr(index))
        };
        let slice = index.cast::<PySlice>().ok();
        let whole = !index.is_instance_of::<PyBool>() && index.hasattr(intern!(py, "__index__"))?;
        if slice.is_none() && !whole {
            return Err(PyTypeError::new_err(format!(
                "{}: indices are whole numbers ([-1] is .value, [-2] .prev) or slices",
                said()
            )));
        }
        let k = match slice {
            Some(_) => None,
            None => Some(
                index
                    .call_method0(intern!(py, "__index__"))?
                    .extract::<i64>()?,
            ),
        };
        match k {
            Some(-1) => return slf.getattr(intern!(py, "value")),
            Some(-2) => return slf.getattr(intern!(py, "prev")),
            _ => {}
        }
        let me = slf.get();
        let ctx = me.ctx.get();
        let e = ctx.context()?;
        let s = ctx.index_of(e, None)?;
        let studies = e.studies();
        let bar = e.bar_index(s);
        if let Some(k) = k.filter(|&k| k < 0) {
            // [-k]: k - 1 updates back, whatever the kind (NaN before the first).
            let back = k.unsigned_abs() as usize - 1;
            let value = me.back_or_refuse(py, studies, s, bar, back, &said)?;
            return Ok(value.into_pyobject(py)?.into_any());
        }
        let Some(so_far) = studies.series_so_far(me.id, s, bar).py_err(py)? else {
            return me.recent(py, studies, s, bar, slice, &said);
        };
        let bars = so_far.len();
        let Some(k) = k else {
            // A slice: the values so far it selects.
            let part = slice.map_or(Ok(None), |s| s.indices(bars as isize).map(Some))?;
            let picked: Vec<f64> = part.map_or_else(Vec::new, |p| {
                (0..p.slicelength)
                    .map(|j| so_far[(p.start + j as isize * p.step) as usize])
                    .collect()
            });
            return Ok(PyArray1::from_vec(py, picked).into_any());
        };
        match usize::try_from(k).ok().filter(|&i| i < bars) {
            Some(i) => Ok(so_far[i].into_pyobject(py)?.into_any()),
            None => Err(PyIndexError::new_err(format!(
                "{}: the symbol's bar {k} is not reached yet (its latest is bar {}): an \
                 indicator shows no value ahead of its bar",
                said(),
                bars as i64 - 1
            ))),
        }
    }

    /// True, as any object: an indicator's truth is not its length (which `len` gives as
    /// the running symbol's bars so far, and which there is not outside `next`), nor its
    /// value (read `.value`).
    fn __bool__(&self) -> bool {
        true
    }

    /// backtesting.py's `len(self.sma)`: its array in `next` is cut at the running
    /// symbol's bar, one value a bar, so its length is the symbol's bars so far (as
    /// `len(self.data)`), whatever the indicator keeps of them.
    fn __len__(&self, py: Python<'_>) -> PyResult<usize> {
        let e = self.ctx.get().context()?;
        let Some(s) = e.current_symbol() else {
            return Err(state_error(
                py,
                format!(
                    "len(Indicator({})) is the running symbol's bars so far, and no symbol \
                     runs here (init() or on_tick()): read len(self.data(symbol))",
                    self.name
                ),
            ));
        };
        Ok(e.bar_index(s).map_or(0, |bar| bar + 1))
    }

    fn __repr__(&self) -> String {
        format!("Indicator({})", self.name)
    }
}

/// The refusal of a read of rolling statistic `said` past the `lookback` values it keeps.
fn keeps(said: &str, lookback: usize) -> String {
    format!(
        "{said}: this rolling statistic keeps its latest {lookback} values ([-1] to \
         [-{lookback}], or a slice [-m:] of them; get(ago=0) to get(ago={})); declare it \
         with lookback=n to read n values back, or use self.I, whose indicators keep every \
         bar's",
        lookback - 1
    )
}

/// The two classes of a strategy's indicator objects and where their value slots are.
pub struct IndicatorClasses {
    /// `value`/`prev` are slots, written before each `next(symbol)`.
    live: Py<PyType>,
    /// The same layout, `value`/`prev` read through the core (outside `next`).
    idle: Py<PyType>,
    /// Byte offsets of the `value` and `prev` slots in an object.
    value_at: isize,
    prev_at: isize,
}

/// The live indicator class whose `indicator[-1]` / `indicator[-2]` (backtesting.py's
/// reads of `value` and `prev`) `live_subscript` answers, where its slots are, and the
/// subscript the class had (`PyIndicator::__getitem__`), which answers everything else.
struct LiveSubscript {
    class: usize,
    value_at: isize,
    prev_at: isize,
    fallback: ffi::binaryfunc,
}

static LIVE_SUBSCRIPT: OnceLock<LiveSubscript> = OnceLock::new();

/// Make `live_subscript` the subscript slot of the live indicator class `live` (once: the
/// first class taken; `tickstep.studies.Indicator` for the life of the process). Inside
/// `next`, `fast[-1] > slow[-1] and fast[-2] <= slow[-2]` (`backtesting.lib.crossover`)
/// is read at many bars, and here each read is a few loads rather than an attribute
/// look-up through pyo3's wrapper. The class made for outside `next` keeps
/// `PyIndicator::__getitem__` (it reads through the core). Anything unexpected leaves
/// the class as it is. (The class must define no `__getitem__` of its own in Python:
/// the interpreter would call that one directly, past the slot.)
fn install_live_subscript(live: &Bound<'_, PyType>, value_at: isize, prev_at: isize) {
    let t = live.as_type_ptr();
    // SAFETY: a heap type's mapping methods live in its own type object; the slot is
    // replaced once, under the GIL, after its present value is kept as the fallback, and
    // the type's caches are told (`PyType_Modified`).
    unsafe {
        let mapping = (*t).tp_as_mapping;
        if mapping.is_null() {
            return;
        }
        let Some(present) = (*mapping).mp_subscript else {
            return;
        };
        if std::ptr::fn_addr_eq(present, live_subscript as ffi::binaryfunc) {
            return;
        }
        let installed = LIVE_SUBSCRIPT.set(LiveSubscript {
            class: t as usize,
            value_at,
            prev_at,
            fallback: present,
        });
        if installed.is_ok() {
            (*mapping).mp_subscript = Some(live_subscript);
            ffi::PyType_Modified(t);
        }
    }
}

/// `indicator[key]` of the live class (see `install_live_subscript`): an exact int -1 or
/// -2 gives the object in the `value` or `prev` slot, as reading the attribute does;
/// anything else (another index, another type, an empty slot) goes to
/// `PyIndicator::__getitem__`, which answers or refuses it.
///
/// SAFETY: installed as the subscript slot of the live class only; the interpreter calls
/// it with the GIL held and `obj` of that class or a subclass made later (whose exact
/// class is checked before its slots are read).
unsafe extern "C" fn live_subscript(
    obj: *mut ffi::PyObject,
    key: *mut ffi::PyObject,
) -> *mut ffi::PyObject {
    let Some(s) = LIVE_SUBSCRIPT.get() else {
        ffi::PyErr_SetString(
            ffi::PyExc_SystemError,
            c"tickstep: indicator subscript".as_ptr(),
        );
        return std::ptr::null_mut();
    };
    if ffi::Py_TYPE(obj) as usize == s.class && ffi::PyLong_CheckExact(key) != 0 {
        let k = ffi::PyLong_AsLong(key);
        let at = match k {
            -1 if ffi::PyErr_Occurred().is_null() => Some(s.value_at),
            -2 => Some(s.prev_at),
            _ => None,
        };
        if !ffi::PyErr_Occurred().is_null() {
            ffi::PyErr_Clear(); // (too large for a long: the fallback refuses it)
        }
        if let Some(at) = at {
            let held = *obj.cast::<u8>().offset(at).cast::<*mut ffi::PyObject>();
            if !held.is_null() {
                return ffi::Py_NewRef(held);
            }
        }
    }
    (s.fallback)(obj, key)
}

/// `Py_RELATIVE_OFFSET` (Python 3.12+; unused before): an offset we do not handle.
const RELATIVE_OFFSET: std::os::raw::c_int = 8;

/// The byte offset of `class`'s own slot `name` (a `__slots__` member holding an object).
pub(crate) fn slot_offset(class: &Bound<'_, PyType>, name: &str) -> PyResult<isize> {
    let own = class.getattr("__dict__")?.get_item(name).ok();
    let refused = || {
        PyTypeError::new_err(format!(
            "{}: {name:?} must be one of its own __slots__",
            class.name().map(|n| n.to_string()).unwrap_or_default()
        ))
    };
    let descr = own.ok_or_else(refused)?;
    // SAFETY: a member descriptor (checked by its exact type) is a PyMemberDescrObject;
    // its member definition lives as long as the class, which we keep.
    unsafe {
        let p = descr.as_ptr();
        if ffi::Py_TYPE(p) != std::ptr::addr_of_mut!(ffi::PyMemberDescr_Type) {
            return Err(refused());
        }
        let member = (*p.cast::<ffi::PyMemberDescrObject>()).d_member;
        // Python's own slots: an object, writable, at an absolute offset.
        if (*member).type_code != ffi::Py_T_OBJECT_EX
            || (*member).flags & (ffi::Py_READONLY | RELATIVE_OFFSET) != 0
        {
            return Err(refused());
        }
        Ok((*member).offset)
    }
}

impl IndicatorClasses {
    fn new(live: &Bound<'_, PyType>, idle: &Bound<'_, PyType>) -> PyResult<Self> {
        let same_layout = idle.is_subclass(live)?
            && unsafe { (*live.as_type_ptr()).tp_basicsize == (*idle.as_type_ptr()).tp_basicsize };
        if !same_layout || !live.is_subclass_of::<PyIndicator>()? {
            return Err(PyTypeError::new_err(
                "the indicator class outside next() must be a subclass of the indicator class \
                 with no slots of its own",
            ));
        }
        let (value_at, prev_at) = (slot_offset(live, "value")?, slot_offset(live, "prev")?);
        install_live_subscript(live, value_at, prev_at);
        Ok(IndicatorClasses {
            value_at,
            prev_at,
            live: live.clone().unbind(),
            idle: idle.clone().unbind(),
        })
    }

    fn same(&self, live: &Bound<'_, PyType>, idle: &Bound<'_, PyType>) -> bool {
        self.live.is(live) && self.idle.is(idle)
    }

    /// Write `value` and `prev` of study `id` for symbol `s` into `obj`'s slots.
    ///
    /// SAFETY: `obj` is an object of the live class (its slots at the offsets found in
    /// `new`), and the GIL is held.
    #[inline]
    unsafe fn write(
        &self,
        obj: *mut ffi::PyObject,
        id: usize,
        e: &TickContext<'_>,
        s: usize,
    ) -> bool {
        let Some((value, prev)) = e.studies().value_and_prev(id, s, e.bar_index(s)) else {
            ffi::PyErr_SetString(
                ffi::PyExc_LookupError,
                c"a followed indicator names no study".as_ptr(),
            );
            return false;
        };
        put_float(obj, self.value_at, value) && put_float(obj, self.prev_at, prev)
    }

    /// (value, prev) written into `obj` if it is of the live class now (inside `next`).
    ///
    /// SAFETY: the GIL is held.
    #[inline]
    unsafe fn written(&self, obj: *mut ffi::PyObject) -> Option<(f64, f64)> {
        if ffi::Py_TYPE(obj) != self.live.as_ptr().cast() {
            return None;
        }
        Some((
            read_float(obj, self.value_at)?,
            read_float(obj, self.prev_at)?,
        ))
    }

    /// `write` if `obj` is of the live class now (it is inside `next`).
    ///
    /// SAFETY: `obj` is a live object; the GIL is held.
    unsafe fn write_if_live(
        &self,
        py: Python<'_>,
        obj: *mut ffi::PyObject,
        id: usize,
        e: &TickContext<'_>,
        s: usize,
    ) -> PyResult<()> {
        if ffi::Py_TYPE(obj) == self.live.as_ptr().cast() && !self.write(obj, id, e, s) {
            return Err(PyErr::fetch(py));
        }
        Ok(())
    }
}

/// Switch `obj` (of a live or an idle class) to `to`.
///
/// SAFETY: `obj` is an object of the live or the idle class of its kind (same layout: a
/// subclass with no slots of its own, checked when the classes were taken), and the GIL
/// is held.
unsafe fn set_class(obj: *mut ffi::PyObject, to: &Py<PyType>) {
    let to = to.as_ptr().cast::<ffi::PyTypeObject>();
    let from = (*obj).ob_type;
    if from != to {
        ffi::Py_INCREF(to.cast());
        (*obj).ob_type = to;
        ffi::Py_DECREF(from.cast());
    }
}

/// The float in the object slot at byte `at` of `obj` (None if it holds no float).
///
/// SAFETY: `at` is the offset of an object slot of `obj`; the GIL is held.
#[inline]
unsafe fn read_float(obj: *mut ffi::PyObject, at: isize) -> Option<f64> {
    let value = *obj.cast::<u8>().offset(at).cast::<*mut ffi::PyObject>();
    (!value.is_null() && ffi::PyFloat_CheckExact(value) != 0)
        .then(|| (*value.cast::<ffi::PyFloatObject>()).ob_fval)
}

/// Store `x` in the object slot at byte `at` of `obj`: into the float already there when
/// nothing else holds it (no allocation per bar), else into a new float.
///
/// SAFETY: `at` is the offset of an object slot of `obj`; the GIL is held.
#[inline]
unsafe fn put_float(obj: *mut ffi::PyObject, at: isize, x: f64) -> bool {
    let slot = obj.cast::<u8>().offset(at).cast::<*mut ffi::PyObject>();
    let old = *slot;
    if !old.is_null() && ffi::Py_REFCNT(old) == 1 && ffi::PyFloat_CheckExact(old) != 0 {
        // Only the slot refers to it: no one can see the change but the next read.
        (*old.cast::<ffi::PyFloatObject>()).ob_fval = x;
        return true;
    }
    let new = ffi::PyFloat_FromDouble(x);
    if new.is_null() {
        return false;
    }
    *slot = new;
    ffi::Py_XDECREF(old);
    true
}

/// What the adapter writes into a followed object: an indicator's value and previous
/// value, or a crossing's value.
#[derive(Clone, Copy)]
enum Source {
    Indicator(usize),
    Crossing(usize, Against),
}

/// The two classes of a strategy's crossing objects and where their value slot is.
pub struct CrossingClasses {
    live: Py<PyType>,
    idle: Py<PyType>,
    value_at: isize,
}

impl CrossingClasses {
    fn new(live: &Bound<'_, PyType>, idle: &Bound<'_, PyType>) -> PyResult<Self> {
        let same_layout = idle.is_subclass(live)?
            && unsafe { (*live.as_type_ptr()).tp_basicsize == (*idle.as_type_ptr()).tp_basicsize };
        if !same_layout || !live.is_subclass_of::<PyCrossing>()? {
            return Err(PyTypeError::new_err(
                "the crossing class outside next() must be a subclass of the crossing class \
                 with no slots of its own",
            ));
        }
        Ok(CrossingClasses {
            value_at: slot_offset(live, "value")?,
            live: live.clone().unbind(),
            idle: idle.clone().unbind(),
        })
    }
}

/// The indicators (and crossings) made while a run is attached to a context, for its
/// adapter to follow.
#[derive(Default)]
pub struct Followed {
    pub(crate) classes: OnceLock<IndicatorClasses>,
    crossing_classes: OnceLock<CrossingClasses>,
    objects: Mutex<Vec<(Py<PyAny>, Source)>>,
    /// How many were ever added: the adapter takes new ones when this moves.
    added: AtomicUsize,
}

impl Followed {
    /// Follow `obj` (of the live class, made outside `next`: switched to the idle class).
    pub fn adopt(
        &self,
        obj: &Bound<'_, PyIndicator>,
        idle: &Bound<'_, PyType>,
        running: bool,
    ) -> PyResult<()> {
        let live = obj.get_type();
        let classes = match self.classes.get() {
            Some(c) => c,
            None => {
                let made = IndicatorClasses::new(&live, idle)?;
                self.classes.get_or_init(|| made)
            }
        };
        if !classes.same(&live, idle) {
            return Err(PyTypeError::new_err(
                "a backtest's indicators are all of one class (tickstep.studies.Indicator)",
            ));
        }
        // SAFETY: `obj` is of the live class (checked just above); the GIL is held.
        unsafe { set_class(obj.as_ptr(), &classes.idle) };
        if running {
            self.push(obj.as_any(), Source::Indicator(obj.get().id));
        }
        Ok(())
    }

    /// Follow a crossing as `adopt` an indicator.
    pub fn adopt_crossing(
        &self,
        obj: &Bound<'_, PyCrossing>,
        idle: &Bound<'_, PyType>,
        running: bool,
    ) -> PyResult<()> {
        let live = obj.get_type();
        let classes = match self.crossing_classes.get() {
            Some(c) => c,
            None => {
                let made = CrossingClasses::new(&live, idle)?;
                self.crossing_classes.get_or_init(|| made)
            }
        };
        if !(classes.live.is(&live) && classes.idle.is(idle)) {
            return Err(PyTypeError::new_err(
                "a backtest's crossings are all of one class (tickstep.studies.Crossing)",
            ));
        }
        // SAFETY: `obj` is of the live class (checked just above); the GIL is held.
        unsafe { set_class(obj.as_ptr(), &classes.idle) };
        if running {
            let me = obj.get();
            self.push(obj.as_any(), Source::Crossing(me.study, me.against));
        }
        Ok(())
    }

    fn push(&self, obj: &Bound<'_, PyAny>, source: Source) {
        let mut objects = self.objects.lock().unwrap_or_else(|e| e.into_inner());
        objects.push((obj.clone().unbind(), source));
        self.added.fetch_add(1, Ordering::Release);
    }

    fn added(&self) -> usize {
        self.added.load(Ordering::Acquire)
    }

    /// The objects added since the first `seen`.
    fn since(&self, py: Python<'_>, seen: usize) -> Vec<(Py<PyAny>, Source)> {
        let objects = self.objects.lock().unwrap_or_else(|e| e.into_inner());
        let start = objects.len().saturating_sub(self.added() - seen);
        objects[start..]
            .iter()
            .map(|(o, source)| (o.clone_ref(py), *source))
            .collect()
    }

    /// The class `obj` takes inside `next` (live) or outside it.
    fn class_of(&self, source: Source, live: bool) -> Option<&Py<PyType>> {
        match source {
            Source::Indicator(_) => self
                .classes
                .get()
                .map(|c| if live { &c.live } else { &c.idle }),
            Source::Crossing(..) => {
                self.crossing_classes
                    .get()
                    .map(|c| if live { &c.live } else { &c.idle })
            }
        }
    }

    /// Switch every object to its class inside `next` (`live`) or outside it.
    fn switch(&self, objects: &[(Py<PyAny>, Source)], live: bool) {
        for (obj, source) in objects {
            if let Some(class) = self.class_of(*source, live) {
                // SAFETY: followed objects are of their kind's live or idle class; the
                // GIL is held.
                unsafe { set_class(obj.as_ptr(), class) };
            }
        }
    }

    /// Forget them all (the run ended): no cycle through the context outlives it.
    fn clear(&self) {
        self.objects
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
    }
}

/// The adapter's side: the followed indicators and whether they are live now.
#[derive(Default)]
pub struct LiveIndicators {
    objects: Vec<(Py<PyAny>, Source)>,
    /// What is written before each `next(symbol)`.
    plan: Plan,
    seen: usize,
    live: bool,
}

/// What is written before each `next(symbol)`: each followed indicator's study read for
/// the running symbol and written into its object in one pass, then each crossing's
/// value from the pairs read (a crossing's study is mostly one of those indicators',
/// read once for both).
#[derive(Default)]
struct Plan {
    /// Per indicator object: the object (held in `objects`), its study, and its place in
    /// `pairs`.
    indicators: Vec<(*mut ffi::PyObject, usize, usize)>,
    /// Studies a crossing compares that no indicator object shows: id and place.
    extra_reads: Vec<(usize, usize)>,
    /// Per crossing object: the object, its study's place in `pairs`, what it is
    /// compared with.
    crossings: Vec<(*mut ffi::PyObject, usize, Theirs)>,
    /// (value, previous value) of each study read, for the running symbol's bar.
    pairs: Vec<(f64, f64)>,
    /// The study each place of `pairs` holds.
    studies: Vec<usize>,
    /// Byte offsets of the value and prev slots of an indicator object, and of the value
    /// slot of a crossing object (one class each per run).
    value_at: isize,
    prev_at: isize,
    crossing_value_at: isize,
    /// The int objects -1, 0 and 1 a crossing's value slot holds (held here; none before
    /// a plan is made).
    signs: Option<[Py<PyAny>; 3]>,
}

/// What a crossing's indicator is compared with: another study's pair or a level.
#[derive(Clone, Copy)]
enum Theirs {
    Read(usize),
    Level(f64),
}

impl Plan {
    fn new(py: Python<'_>, followed: &Followed, objects: &[(Py<PyAny>, Source)]) -> PyResult<Self> {
        let mut plan = Plan {
            signs: Some([-1i64, 0, 1].map(|x| PyInt::new(py, x).into_any().unbind())),
            ..Plan::default()
        };
        // An object was adopted through its kind's classes, which are found then.
        for (obj, source) in objects {
            if let Source::Indicator(id) = *source {
                let classes = followed.classes.get().ok_or_else(unwritable)?;
                (plan.value_at, plan.prev_at) = (classes.value_at, classes.prev_at);
                let place = plan.place(id);
                plan.indicators.push((obj.as_ptr(), id, place));
            }
        }
        let shown = plan.studies.len();
        for (obj, source) in objects {
            if let Source::Crossing(id, against) = *source {
                let classes = followed.crossing_classes.get().ok_or_else(unwritable)?;
                plan.crossing_value_at = classes.value_at;
                let mine = plan.place(id);
                let theirs = match against {
                    Against::Study(other) => Theirs::Read(plan.place(other)),
                    Against::Level(x) => Theirs::Level(x),
                };
                plan.crossings.push((obj.as_ptr(), mine, theirs));
            }
        }
        plan.extra_reads = (shown..plan.studies.len())
            .map(|k| (plan.studies[k], k))
            .collect();
        plan.pairs = vec![(f64::NAN, f64::NAN); plan.studies.len()];
        Ok(plan)
    }

    /// Each crossing's value from the pairs read for the running symbol.
    #[inline]
    fn write_crossings(&self) {
        let Some(signs) = &self.signs else {
            return;
        };
        // Four places (the last one unused), so the index below needs no bounds check.
        let signs = [&signs[0], &signs[1], &signs[2], &signs[1]].map(|o| o.as_ptr());
        let pairs = self.pairs.as_ptr();
        for &(obj, mine, theirs) in &self.crossings {
            // SAFETY: every place is below `pairs.len()` (`Plan::new`: one pair per study
            // listed, each place an index into that list).
            let (mine, theirs) = unsafe {
                let theirs = match theirs {
                    Theirs::Read(k) => *pairs.add(k),
                    Theirs::Level(x) => (x, x),
                };
                (*pairs.add(mine), theirs)
            };
            // `crossing` is -1, 0 or 1: the place of its int object in `signs`.
            let sign = signs[(crossing(mine, theirs) + 1) as usize & 3];
            // SAFETY: `obj` is held by `objects`; it is of the crossings' live class now,
            // its value slot at the offset found for that class; the GIL is held.
            unsafe { put_object(obj, self.crossing_value_at, sign) };
        }
    }

    /// Where study `id`'s pair is (added if new).
    fn place(&mut self, id: usize) -> usize {
        match self.studies.iter().position(|&x| x == id) {
            Some(k) => k,
            None => {
                self.studies.push(id);
                self.studies.len() - 1
            }
        }
    }
}

impl LiveIndicators {
    /// Make the indicators live and write symbol `s`'s values into them: what `next(s)`
    /// reads.
    #[inline]
    pub fn enter_next(
        &mut self,
        py: Python<'_>,
        ctx: &PyContext,
        e: &TickContext<'_>,
        s: usize,
    ) -> PyResult<()> {
        let followed = &ctx.followed;
        // One test per bar: nothing new to follow, and the objects live already.
        if followed.added() != self.seen || !self.live {
            self.prepare(py, followed, e.studies())?;
        }
        let studies = e.studies();
        // The running symbol has a bar now: its pairs are read at it.
        let Some(i) = e.bar_index(s) else {
            return self.write_without_bar(py, studies, s);
        };
        let plan = &mut self.plan;
        let (value_at, prev_at) = (plan.value_at, plan.prev_at);
        if plan.crossings.is_empty() {
            // Nothing compares the pairs: each is written and forgotten.
            for &(obj, id, _) in &plan.indicators {
                let (value, prev) = studies.pair_at(id, s, i);
                // SAFETY: as below.
                if !unsafe { put_float(obj, value_at, value) && put_float(obj, prev_at, prev) } {
                    return Err(PyErr::take(py).unwrap_or_else(unwritable));
                }
            }
            return Ok(());
        }
        let pairs = plan.pairs.as_mut_ptr();
        for &(obj, id, place) in &plan.indicators {
            let (value, prev) = studies.pair_at(id, s, i);
            // SAFETY: every place is below `pairs.len()` (`Plan::new`: one pair per study
            // listed, each place an index into that list).
            unsafe { *pairs.add(place) = (value, prev) };
            // SAFETY: `obj` is held by `objects`; it is of the indicators' live class
            // now, its slots at the offsets found for that class; the GIL is held (a
            // callback is due).
            if !unsafe { put_float(obj, value_at, value) && put_float(obj, prev_at, prev) } {
                return Err(PyErr::take(py).unwrap_or_else(unwritable));
            }
        }
        for &(id, place) in &plan.extra_reads {
            // SAFETY: as above.
            unsafe { *pairs.add(place) = studies.pair_at(id, s, i) };
        }
        plan.write_crossings();
        Ok(())
    }

    /// Before a `next`: a plan for the objects followed since the last one (each study
    /// they read checked once to exist: the reads per bar then cannot miss), and the
    /// objects switched to their live classes.
    #[cold]
    fn prepare(&mut self, py: Python<'_>, followed: &Followed, studies: &Studies) -> PyResult<()> {
        if followed.added() != self.seen {
            let seen = self.seen;
            self.seen = followed.added();
            self.objects.extend(followed.since(py, seen));
            self.plan = Plan::new(py, followed, &self.objects)?;
            if let Some(&id) = self.plan.studies.iter().find(|&&id| !studies.has(id)) {
                self.plan = Plan::default();
                return Err(unreadable(id));
            }
        }
        followed.switch(&self.objects, true);
        self.live = true;
        Ok(())
    }

    /// `enter_next` for a symbol without a bar so far (no `next` runs for one; kept for
    /// completeness): every pair is NaN, as the core's getters read then.
    #[cold]
    fn write_without_bar(&mut self, py: Python<'_>, studies: &Studies, s: usize) -> PyResult<()> {
        let plan = &mut self.plan;
        for k in 0..plan.indicators.len() {
            let (obj, id, place) = plan.indicators[k];
            let pair = studies
                .value_and_prev(id, s, None)
                .ok_or_else(|| unreadable(id))?;
            plan.pairs[place] = pair;
            // SAFETY: as in `enter_next`.
            if !unsafe {
                put_float(obj, plan.value_at, pair.0) && put_float(obj, plan.prev_at, pair.1)
            } {
                return Err(PyErr::take(py).unwrap_or_else(unwritable));
            }
        }
        for k in 0..plan.extra_reads.len() {
            let (id, place) = plan.extra_reads[k];
            plan.pairs[place] = studies
                .value_and_prev(id, s, None)
                .ok_or_else(|| unreadable(id))?;
        }
        plan.write_crossings();
        Ok(())
    }

    /// Back to the core's getters (before `on_tick`, and when the run ends).
    pub fn leave_next(&mut self, ctx: &PyContext) {
        if !self.live {
            return;
        }
        ctx.followed.switch(&self.objects, false);
        self.live = false;
    }

    /// The run ended: idle, and let go of the objects.
    pub fn finish(&mut self, ctx: &PyContext) {
        self.leave_next(ctx);
        self.plan = Plan::default();
        self.objects.clear();
        ctx.followed.clear();
    }
}

#[cold]
fn unwritable() -> PyErr {
    PyTypeError::new_err("an indicator's values cannot be written")
}

#[cold]
fn unreadable(id: usize) -> PyErr {
    PyLookupError::new_err(format!("indicator {id} names no study of this run"))
}

/// Store `new` (a live object, borrowed) in the object slot at byte `at` of `obj`, unless
/// it holds that object already (a crossing's value is mostly the same 0 bar after bar).
///
/// SAFETY: `at` is the offset of an object slot of `obj`; `new` is live; the GIL is held.
#[inline]
unsafe fn put_object(obj: *mut ffi::PyObject, at: isize, new: *mut ffi::PyObject) {
    let slot = obj.cast::<u8>().offset(at).cast::<*mut ffi::PyObject>();
    if *slot != new {
        ffi::Py_INCREF(new);
        let old = std::mem::replace(&mut *slot, new);
        ffi::Py_XDECREF(old);
    }
}
