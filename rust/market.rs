//! Market: the bar columns of every symbol, copied in once at load and never per bar.
//!
//! Besides OHLCV a market may hold *extra columns* (a precomputed signal, a P/E, an
//! adjusted close): named float64 columns, one value per bar, that strategies read like
//! prices (never ahead of the current bar) and indicators may use as their source. The
//! names are the market's; a symbol may lack a column (its data never had it).

use std::any::Any;
use std::ops::Deref;
use std::sync::Arc;

use crate::error::{EngineError, Result};

/// How many values ahead of a loop over a column it is prefetched (`prefetch`): this
/// machine's hardware prefetcher alone leaves a short loop over one symbol's column
/// waiting for memory at many of its cache lines (measured: ~0.5 ns a value without the
/// hint), and a kilobyte ahead is loaded by the time the loop gets there.
pub(crate) const PREFETCH_AHEAD: usize = 128;

/// Hint the CPU to load `column[i]` into cache (nothing past the end).
#[inline(always)]
pub(crate) fn prefetch<T>(column: &[T], i: usize) {
    #[cfg(target_arch = "x86_64")]
    if let Some(x) = column.get(i) {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        // SAFETY: a prefetch is only a hint and never faults; the address is in bounds.
        unsafe { _mm_prefetch::<_MM_HINT_T0>(std::ptr::from_ref(x).cast::<i8>()) };
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (column, i);
}

/// Hint the CPU to load `column[i]` into the core's second-level cache (hint T1), not the
/// first, for a read many steps later (the signals run's bars, fetched ticks before their
/// visit). Fetched that far ahead into the first-level cache (32 KiB), lines pushed out
/// those the steps in between were using, and were often gone themselves by their read
/// (the 20 symbols' signals run took 36–37 ms so against 31–32 ms). A prefetch never
/// faults, so an index past the end needs no check (the address is computed, never
/// dereferenced).
#[inline(always)]
pub(crate) fn prefetch_far<T>(column: &[T], i: usize) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T1};
        let at = column.as_ptr().wrapping_add(i);
        // SAFETY: a prefetch is only a hint: it reads nothing and never faults.
        unsafe { _mm_prefetch::<_MM_HINT_T1>(at.cast::<i8>()) };
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (column, i);
}

/// One column of values: owned by the core, or adopted from an immutable buffer that
/// someone else owns (e.g. a frozen numpy array), without a copy.
pub struct Column<T: Copy + 'static> {
    ptr: *const T,
    len: usize,
    owner: Arc<dyn Any + Send + Sync>,
}

// SAFETY: a column only ever reads its buffer, which nobody mutates while an owner lives
// (a `Vec` owned here, or a buffer the adopter guarantees immutable).
unsafe impl<T: Copy + Send + 'static> Send for Column<T> {}
unsafe impl<T: Copy + Sync + 'static> Sync for Column<T> {}

impl<T: Copy + Send + Sync + 'static> Column<T> {
    /// Adopt `len` values at `ptr`, kept alive by `owner`.
    ///
    /// # Safety
    /// `ptr..ptr+len` must be valid, aligned and never written while `owner` lives.
    pub unsafe fn adopt(ptr: *const T, len: usize, owner: Arc<dyn Any + Send + Sync>) -> Self {
        Column { ptr, len, owner }
    }
}

impl<T: Copy + Send + Sync + 'static> Column<T> {
    /// The last `n` values (all of them when fewer), sharing this column's buffer.
    pub fn tail(&self, n: usize) -> Self {
        let skip = self.len.saturating_sub(n);
        Column {
            // SAFETY: `skip <= len`, so the pointer stays inside (or one past) the buffer.
            ptr: unsafe { self.ptr.add(skip) },
            len: self.len - skip,
            owner: Arc::clone(&self.owner),
        }
    }

    /// The last `keep` values of this column followed by `new`: `new`'s own buffer when
    /// nothing is kept, this one's when nothing is new, else one copy of both.
    fn followed_by(&self, keep: usize, new: &Column<T>) -> Self {
        let kept = self.tail(keep);
        if kept.len == 0 {
            return new.clone();
        }
        if new.len == 0 {
            return kept;
        }
        let mut joined = Vec::with_capacity(kept.len + new.len);
        joined.extend_from_slice(&kept);
        joined.extend_from_slice(new);
        joined.into()
    }
}

impl<T: Copy + Send + Sync + 'static> From<Vec<T>> for Column<T> {
    fn from(v: Vec<T>) -> Self {
        let (ptr, len) = (v.as_ptr(), v.len());
        // The Vec moves into the Arc; its heap buffer (and so `ptr`) stays where it is.
        Column {
            ptr,
            len,
            owner: Arc::new(v),
        }
    }
}

impl<T: Copy + Send + Sync + 'static> Default for Column<T> {
    fn default() -> Self {
        Vec::new().into()
    }
}

impl<T: Copy + 'static> Clone for Column<T> {
    fn clone(&self) -> Self {
        Column {
            ptr: self.ptr,
            len: self.len,
            owner: Arc::clone(&self.owner),
        }
    }
}

impl<T: Copy + 'static> Deref for Column<T> {
    type Target = [T];

    #[inline]
    fn deref(&self) -> &[T] {
        // SAFETY: see `adopt`; an owned Vec's buffer never moves or changes.
        unsafe { std::slice::from_raw_parts(self.ptr, self.len) }
    }
}

impl<T: Copy + std::fmt::Debug + 'static> std::fmt::Debug for Column<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

/// One symbol's bars as columns: timestamps (int64 ns UTC, strictly increasing) and
/// float64 open/high/low/close/volume. Validated at the door (Python); not re-checked here.
#[derive(Clone, Debug, Default)]
pub struct SymbolBars {
    pub ts: Column<i64>,
    pub open: Column<f64>,
    pub high: Column<f64>,
    pub low: Column<f64>,
    pub close: Column<f64>,
    pub volume: Column<f64>,
    /// The market's extra columns in the order of `Market::columns`: `None` where this
    /// symbol has no such column.
    pub extra: Vec<Option<Column<f64>>>,
}

impl SymbolBars {
    /// Bars from owned vectors.
    pub fn from_vecs(
        ts: Vec<i64>,
        open: Vec<f64>,
        high: Vec<f64>,
        low: Vec<f64>,
        close: Vec<f64>,
        volume: Vec<f64>,
    ) -> Self {
        SymbolBars {
            ts: ts.into(),
            open: open.into(),
            high: high.into(),
            low: low.into(),
            close: close.into(),
            volume: volume.into(),
            extra: Vec::new(),
        }
    }

    /// Refuses a column set whose price and volume columns are not as long as its
    /// timestamps (`name` says whose, in the message).
    fn check_lengths(&self, name: &str) -> Result<()> {
        let n = self.ts.len();
        let lens = [
            self.open.len(),
            self.high.len(),
            self.low.len(),
            self.close.len(),
            self.volume.len(),
        ];
        if lens.iter().any(|&l| l != n) {
            return Err(EngineError::InvalidMarket(format!(
                "{name}: columns have different lengths (ts {n}, open/high/low/close/volume {lens:?})"
            )));
        }
        Ok(())
    }

    /// Refuses extra columns that do not match `columns` (one slot per name) or the
    /// symbol's bars (one value per bar).
    fn check_extra(&self, name: &str, columns: &[String]) -> Result<()> {
        if self.extra.len() != columns.len() {
            return Err(EngineError::InvalidMarket(format!(
                "{name}: {} extra column slots for {} extra columns",
                self.extra.len(),
                columns.len()
            )));
        }
        let n = self.len();
        for (c, col) in columns.iter().zip(&self.extra) {
            if let Some(col) = col {
                if col.len() != n {
                    return Err(EngineError::InvalidMarket(format!(
                        "{name}: extra column {c:?} has {} values for {n} bars",
                        col.len()
                    )));
                }
            }
        }
        Ok(())
    }

    /// The next window's bars of this symbol: the last `keep` of these (the kept past,
    /// for history reads) followed by `new`, which continues them in time and has the
    /// same extra columns (`name` says whose, in a refusal).
    fn followed_by(&self, keep: usize, new: &SymbolBars, name: &str) -> Result<Self> {
        if let (Some(&last), Some(&first)) = (self.ts.last(), new.ts.first()) {
            if first <= last {
                return Err(EngineError::InvalidMarket(format!(
                    "{name}: the next window's first bar ({first}) is not after the bars before \
                     it (last at {last})"
                )));
            }
        }
        let extra = self
            .extra
            .iter()
            .zip(&new.extra)
            .map(|(had, has)| match (had, has) {
                (Some(had), Some(has)) => Ok(Some(had.followed_by(keep, has))),
                (None, None) => Ok(None),
                _ => Err(EngineError::InvalidMarket(format!(
                    "{name}: a window must hold the same extra columns, for the same symbols, \
                     as the first"
                ))),
            })
            .collect::<Result<_>>()?;
        Ok(SymbolBars {
            ts: self.ts.followed_by(keep, &new.ts),
            open: self.open.followed_by(keep, &new.open),
            high: self.high.followed_by(keep, &new.high),
            low: self.low.followed_by(keep, &new.low),
            close: self.close.followed_by(keep, &new.close),
            volume: self.volume.followed_by(keep, &new.volume),
            extra,
        })
    }

    /// Extra column `k` of the market, if this symbol has it.
    #[inline]
    pub fn extra(&self, k: usize) -> Option<&[f64]> {
        self.extra.get(k).and_then(|c| c.as_deref())
    }

    pub fn len(&self) -> usize {
        self.ts.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ts.is_empty()
    }

    /// The bar at `i` as (open, high, low, close, volume).
    #[inline]
    pub fn ohlcv(&self, i: usize) -> (f64, f64, f64, f64, f64) {
        (
            self.open[i],
            self.high[i],
            self.low[i],
            self.close[i],
            self.volume[i],
        )
    }
}

/// All symbols of one backtest plus their union timeline. Immutable once built, so one
/// `Market` can be shared (behind an `Arc`) by many engine runs, e.g. a parameter sweep.
///
/// A streamed backtest runs on a sequence of window markets (see `Market::window`): each
/// holds, per symbol, the bars kept from before the window (for history reads) and the
/// window's new bars; its timeline has the window's new ticks only. Bar indices stay those
/// of the whole run (`base(s)` is the run index of the symbol's first held bar), so the
/// clock, the book and the studies never see where one window ends.
#[derive(Debug)]
pub struct Market {
    names: Vec<String>,
    bars: Vec<SymbolBars>,
    timeline: Vec<i64>,
    /// Names of the extra columns (beside OHLCV), in the order of `SymbolBars::extra`.
    columns: Vec<String>,
    /// Per symbol, the run index of `bars[s]`'s first bar (all 0 for a whole market).
    base: Vec<usize>,
    /// The symbols in the order the user gave them (indices into `names`, which are
    /// sorted by name): the order the engine visits the symbols of a tick in, so that
    /// no name decides which symbol comes first. Name order unless `with_call_order`.
    call_order: Vec<usize>,
    /// Whether every open and close is above zero (found on first use, then shared by
    /// every run on this market).
    marks_positive: std::sync::OnceLock<bool>,
    /// The clock's maps of who has a bar at each tick (see `tick_maps`), built on first
    /// use and then shared by every run on this market.
    tick_maps: std::sync::OnceLock<Option<Vec<u64>>>,
}

/// The OHLCV columns every symbol has, by name.
pub const PRICE_COLUMNS: [&str; 5] = ["open", "high", "low", "close", "volume"];

impl Market {
    /// Take ownership of the columns. Only shape is checked (equal column lengths, at
    /// least one symbol): the values were validated at the door.
    pub fn new(names: Vec<String>, bars: Vec<SymbolBars>) -> Result<Self> {
        Self::with_columns(names, bars, Vec::new())
    }

    /// As `new`, with extra columns named `columns` (each symbol's `extra` holds one entry
    /// per name). Names are unique and differ from OHLCV (also ignoring case): the door
    /// refuses collisions, and the core keeps the rule so a name reads one column only.
    pub fn with_columns(
        names: Vec<String>,
        bars: Vec<SymbolBars>,
        columns: Vec<String>,
    ) -> Result<Self> {
        check_column_names(&columns)?;
        if names.is_empty() {
            return Err(EngineError::InvalidMarket("no symbols".into()));
        }
        if names.len() != bars.len() {
            return Err(EngineError::InvalidMarket(format!(
                "{} names for {} symbols' columns",
                names.len(),
                bars.len()
            )));
        }
        for (name, b) in names.iter().zip(&bars) {
            b.check_lengths(name)?;
            if b.is_empty() {
                return Err(EngineError::InvalidMarket(format!("{name}: no bars")));
            }
            b.check_extra(name, &columns)?;
        }
        let timeline = union_timeline(&bars);
        let base = vec![0; names.len()];
        let call_order = (0..names.len()).collect();
        Ok(Market {
            names,
            bars,
            timeline,
            columns,
            base,
            call_order,
            marks_positive: Default::default(),
            tick_maps: Default::default(),
        })
    }

    /// The same market visited in `order` (each symbol index once): the order the user
    /// gave the symbols in (a `symbols=` list, a mapping's keys, first appearance in a
    /// long table, a store's ingest order).
    pub fn with_call_order(mut self, order: Vec<usize>) -> Result<Self> {
        let n = self.names.len();
        let mut seen = vec![false; n];
        for &s in &order {
            if s >= n || std::mem::replace(&mut seen[s], true) {
                return Err(EngineError::InvalidMarket(format!(
                    "the call order must list each of the {n} symbol indices once, got {order:?}"
                )));
            }
        }
        if order.len() != n {
            return Err(EngineError::InvalidMarket(format!(
                "the call order lists {} of the {n} symbols",
                order.len()
            )));
        }
        self.call_order = order;
        Ok(self)
    }

    /// The symbols in the order the engine visits them (see `with_call_order`).
    pub fn call_order(&self) -> &[usize] {
        &self.call_order
    }

    /// Names of the extra columns (beside OHLCV).
    pub fn columns(&self) -> &[String] {
        &self.columns
    }

    /// Index of the extra column `name` (exact name), if the market has it.
    pub fn column_index(&self, name: &str) -> Option<usize> {
        self.columns.iter().position(|c| c == name)
    }

    /// One window of a streamed run: per symbol the bars held (kept past, then the
    /// window's new bars; possibly none), the run index `base[s]` of its first held bar,
    /// and `from`, the window's first instant: the timeline holds the ticks at or after
    /// it (the kept past was replayed in earlier windows). `columns` names the extra
    /// columns as in `with_columns`; every window of a run names the same ones, and a
    /// symbol has a column in every window or in none (the engine checks it).
    pub fn window(
        names: Vec<String>,
        bars: Vec<SymbolBars>,
        columns: Vec<String>,
        base: Vec<usize>,
        from: i64,
    ) -> Result<Self> {
        check_column_names(&columns)?;
        if names.is_empty() || names.len() != bars.len() || base.len() != bars.len() {
            return Err(EngineError::InvalidMarket(format!(
                "a window needs one column set and one base per symbol ({} names, {} column sets, {} bases)",
                names.len(),
                bars.len(),
                base.len()
            )));
        }
        for (name, b) in names.iter().zip(&bars) {
            b.check_lengths(name)?;
            b.check_extra(name, &columns)?;
        }
        let mut timeline = union_timeline(&bars);
        let first = timeline.partition_point(|&t| t < from);
        timeline.drain(..first);
        let call_order = (0..names.len()).collect();
        Ok(Market {
            names,
            bars,
            timeline,
            columns,
            base,
            call_order,
            marks_positive: Default::default(),
            tick_maps: Default::default(),
        })
    }

    /// The window after this one in a streamed run: per symbol, the last `keep` bars this
    /// window holds (the kept past) followed by `new[s]`, the symbol's bars of the next
    /// window (maybe none; after every bar held here, with the same extra columns). The
    /// timeline is the union of the new bars; symbols, columns and call order are this
    /// window's. The kept past and the new bars are joined here, in one copy per column
    /// (none when either side is empty), so a window costs no more than its bars.
    pub fn following(&self, keep: usize, new: &[SymbolBars]) -> Result<Self> {
        if new.len() != self.bars.len() {
            return Err(EngineError::InvalidMarket(format!(
                "the next window needs one column set per symbol ({} for {} symbols)",
                new.len(),
                self.bars.len()
            )));
        }
        let mut bars = Vec::with_capacity(new.len());
        let mut base = Vec::with_capacity(new.len());
        for (s, (held, new)) in self.bars.iter().zip(new).enumerate() {
            let name = &self.names[s];
            new.check_lengths(name)?;
            new.check_extra(name, &self.columns)?;
            base.push(self.base[s] + held.len().saturating_sub(keep));
            bars.push(held.followed_by(keep, new, name)?);
        }
        Ok(Market {
            names: self.names.clone(),
            bars,
            timeline: union_of(new.iter().map(|b| &b.ts[..])),
            columns: self.columns.clone(),
            base,
            call_order: self.call_order.clone(),
            marks_positive: Default::default(),
            tick_maps: Default::default(),
        })
    }

    /// Whether every open and close of every symbol is above zero (the door refuses other
    /// prices; a market built in Rust may hold any): positions are marked at these, so a
    /// long position is then worth more than nothing.
    pub fn marks_positive(&self) -> bool {
        *self.marks_positive.get_or_init(|| {
            self.bars
                .iter()
                .all(|b| all_positive(&b.open) && all_positive(&b.close))
        })
    }

    /// The clock's maps of the whole timeline (`Clock`'s layout: one bit per symbol, the
    /// words of each tick in turn), made by `build` on first use and shared by every run on
    /// this market; None where `build` declined to keep them.
    pub(crate) fn tick_maps(&self, build: fn(&Market) -> Option<Vec<u64>>) -> Option<&[u64]> {
        self.tick_maps.get_or_init(|| build(self)).as_deref()
    }

    /// Whether `other` (a later window of the same run) holds the same extra columns as
    /// this market, for the same symbols: a name reads the same column in every window.
    pub fn same_columns(&self, other: &Market) -> bool {
        self.columns == other.columns
            && self.bars.iter().zip(&other.bars).all(|(a, b)| {
                a.extra
                    .iter()
                    .map(Option::is_some)
                    .eq(b.extra.iter().map(Option::is_some))
            })
    }

    /// The run index of `symbol`'s first held bar (0 unless this is a streamed window).
    #[inline]
    pub fn base(&self, symbol: usize) -> usize {
        self.base[symbol]
    }

    /// The position in `bars(symbol)` of the symbol's bar with run index `i` (which must
    /// be held: `base(symbol) <= i`).
    #[inline]
    pub fn local(&self, symbol: usize, i: usize) -> usize {
        i - self.base[symbol]
    }

    /// Run index one past `symbol`'s last held bar.
    #[inline]
    pub fn end(&self, symbol: usize) -> usize {
        self.base[symbol] + self.bars[symbol].len()
    }

    pub fn symbol_count(&self) -> usize {
        self.names.len()
    }

    pub fn names(&self) -> &[String] {
        &self.names
    }

    pub fn name(&self, symbol: usize) -> &str {
        &self.names[symbol]
    }

    pub fn symbol_index(&self, name: &str) -> Option<usize> {
        self.names.iter().position(|n| n == name)
    }

    pub fn bars(&self, symbol: usize) -> &SymbolBars {
        &self.bars[symbol]
    }

    /// Every timestamp at which at least one symbol has a bar, ascending, without repeats.
    pub fn timeline(&self) -> &[i64] {
        &self.timeline
    }

    /// Total number of (symbol, bar) pairs.
    pub fn bar_count(&self) -> usize {
        self.bars.iter().map(|b| b.len()).sum()
    }
}

/// Extra column names are unique and differ from OHLCV and ts (also ignoring case): the
/// door refuses collisions, and the core keeps the rule so a name reads one column only.
fn check_column_names(columns: &[String]) -> Result<()> {
    for (k, c) in columns.iter().enumerate() {
        let lower = c.to_lowercase();
        if c.is_empty() || PRICE_COLUMNS.contains(&lower.as_str()) || lower == "ts" {
            return Err(EngineError::InvalidMarket(format!(
                "extra column {c:?}: names must be non-empty and differ from ts, open, high, low, close, volume"
            )));
        }
        if columns[..k].iter().any(|o| o.to_lowercase() == lower) {
            return Err(EngineError::InvalidMarket(format!(
                "extra column {c:?} is named twice (names are compared ignoring case)"
            )));
        }
    }
    Ok(())
}

/// Union of sorted timestamp columns: merged pairwise (a tournament of linear merges,
/// O(n log k)), dropping repeats.
fn union_timeline(bars: &[SymbolBars]) -> Vec<i64> {
    union_of(bars.iter().map(|b| &b.ts[..]))
}

/// Union of sorted runs, as `union_timeline`; the first round merges the runs where they
/// lie (no copy of each run first).
fn union_of<'a>(runs: impl Iterator<Item = &'a [i64]>) -> Vec<i64> {
    let runs: Vec<&[i64]> = runs.collect();
    let mut merged: Vec<Vec<i64>> = runs
        .chunks(2)
        .map(|pair| match pair {
            [a, b] => merge_unique(a, b),
            one => one.concat(),
        })
        .collect();
    while merged.len() > 1 {
        let mut next = Vec::with_capacity(merged.len().div_ceil(2));
        let mut it = merged.into_iter();
        while let Some(a) = it.next() {
            match it.next() {
                Some(b) => next.push(merge_unique(&a, &b)),
                None => next.push(a),
            }
        }
        merged = next;
    }
    let mut out = merged.pop().unwrap_or_default();
    out.dedup();
    out
}

fn merge_unique(a: &[i64], b: &[i64]) -> Vec<i64> {
    let mut out = Vec::with_capacity(a.len() + b.len());
    let (mut i, mut j) = (0, 0);
    while i < a.len() && j < b.len() {
        let (x, y) = (a[i], b[j]);
        if x < y {
            out.push(x);
            i += 1;
        } else if y < x {
            out.push(y);
            j += 1;
        } else {
            out.push(x);
            i += 1;
            j += 1;
        }
    }
    out.extend_from_slice(&a[i..]);
    out.extend_from_slice(&b[j..]);
    out
}

/// Whether every price is above zero (a NaN is not). Each comparison is folded in
/// without a branch: where the processor has AVX (found at run time), four prices per
/// compare, sixteen per step in four running masks (a compare and an AND per four
/// prices); else a plain fold the compiler turns into two-price compares. A market's
/// scan is millions of prices, once per market.
fn all_positive(prices: &[f64]) -> bool {
    #[inline(always)]
    fn fold(prices: &[f64]) -> bool {
        prices.iter().fold(true, |all, &x| all & (x > 0.0))
    }
    #[cfg(target_arch = "x86_64")]
    {
        /// # Safety
        /// The processor must have AVX.
        #[target_feature(enable = "avx")]
        unsafe fn wide(prices: &[f64]) -> bool {
            use std::arch::x86_64::{
                _mm256_and_pd, _mm256_castsi256_pd, _mm256_cmp_pd, _mm256_loadu_pd,
                _mm256_movemask_pd, _mm256_set1_epi64x, _mm256_setzero_pd, _CMP_LT_OQ,
            };
            let chunks = prices.chunks_exact(16);
            let rest = chunks.remainder();
            // SAFETY: each load reads four prices of a chunk of sixteen (unaligned loads
            // in bounds); `0.0 < x` by `_CMP_LT_OQ` is false for NaN, all ones when true.
            unsafe {
                let zero = _mm256_setzero_pd();
                // Every lane all ones: true until a price says otherwise.
                let mut all = [_mm256_castsi256_pd(_mm256_set1_epi64x(-1)); 4];
                for chunk in chunks {
                    let p = chunk.as_ptr();
                    for (k, mask) in all.iter_mut().enumerate() {
                        // 0 < x rather than x > 0: the load folds into the compare.
                        let above =
                            _mm256_cmp_pd::<_CMP_LT_OQ>(zero, _mm256_loadu_pd(p.add(4 * k)));
                        *mask = _mm256_and_pd(*mask, above);
                    }
                }
                let all =
                    _mm256_and_pd(_mm256_and_pd(all[0], all[1]), _mm256_and_pd(all[2], all[3]));
                _mm256_movemask_pd(all) == 0b1111 && fold(rest)
            }
        }
        if std::arch::is_x86_feature_detected!("avx") {
            // SAFETY: the processor has AVX (checked just above).
            return unsafe { wide(prices) };
        }
    }
    fold(prices)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_positive_is_the_plain_scan_for_any_length_and_any_odd_price() {
        // Every length around the vector widths, one odd price (or none) at each place:
        // zero, minus zero, a negative, NaN, infinities, the smallest subnormal.
        let odd = [
            0.0,
            -0.0,
            -1.5,
            f64::NAN,
            -f64::NAN,
            f64::INFINITY,
            f64::NEG_INFINITY,
            f64::from_bits(1),
        ];
        for len in 0..40 {
            let prices: Vec<f64> = (0..len).map(|k| 1.0 + k as f64 / 7.0).collect();
            assert!(all_positive(&prices), "len {len}");
            for at in 0..len {
                for &x in &odd {
                    let mut p = prices.clone();
                    p[at] = x;
                    let plain = p.iter().all(|&y| y > 0.0);
                    assert_eq!(all_positive(&p), plain, "len {len}, {x} at {at}");
                }
            }
        }
        let m = Market::new(
            vec!["A".into(), "B".into()],
            vec![bars_at(&[1, 2, 3], 2.0), bars_at(&[1, 2], 1.0)],
        )
        .unwrap();
        assert!(m.marks_positive());
        let mut b = bars_at(&[1, 2, 3], 2.0);
        b.close = vec![2.0, 0.0, 2.0].into();
        let m = Market::new(vec!["A".into(), "B".into()], vec![bars_at(&[1], 1.0), b]).unwrap();
        assert!(!m.marks_positive());
    }

    pub(crate) fn bars_at(ts: &[i64], price: f64) -> SymbolBars {
        let n = ts.len();
        SymbolBars::from_vecs(
            ts.to_vec(),
            vec![price; n],
            vec![price; n],
            vec![price; n],
            vec![price; n],
            vec![1.0; n],
        )
    }

    #[test]
    fn timeline_is_the_sorted_union() {
        let m = Market::new(
            vec!["A".into(), "B".into()],
            vec![bars_at(&[1, 3, 5], 1.0), bars_at(&[2, 3, 6], 1.0)],
        )
        .unwrap();
        assert_eq!(m.timeline(), &[1, 2, 3, 5, 6]);
        assert_eq!(m.bar_count(), 6);
        assert_eq!(m.symbol_index("B"), Some(1));
    }

    #[test]
    fn union_of_many_runs_matches_sort_and_dedup() {
        let runs: Vec<Vec<i64>> = (0..7)
            .map(|k| {
                (0..50)
                    .map(|i| i * (k + 1) % 97)
                    .collect::<std::collections::BTreeSet<_>>()
                    .into_iter()
                    .collect()
            })
            .collect();
        let bars: Vec<SymbolBars> = runs.iter().map(|r| bars_at(r, 1.0)).collect();
        let mut expected: Vec<i64> = runs.concat();
        expected.sort();
        expected.dedup();
        assert_eq!(union_timeline(&bars), expected);
    }

    #[test]
    fn refuses_ragged_columns_and_empty_symbols() {
        let mut b = bars_at(&[1, 2], 1.0);
        b.close = vec![1.0].into();
        let err = Market::new(vec!["A".into()], vec![b]).unwrap_err();
        assert!(err
            .to_string()
            .contains("A: columns have different lengths"));
        let err = Market::new(vec!["Z".into()], vec![bars_at(&[], 1.0)]).unwrap_err();
        assert!(err.to_string().contains("Z: no bars"));
        assert!(Market::new(vec![], vec![]).is_err());
    }

    #[test]
    fn extra_columns_are_held_per_symbol_and_checked_for_shape() {
        let mut a = bars_at(&[1, 2, 3], 1.0);
        a.extra = vec![Some(vec![0.5, 0.6, 0.7].into()), None];
        let mut b = bars_at(&[2, 4], 1.0);
        b.extra = vec![Some(vec![1.5, 1.6].into()), Some(vec![9.0, 8.0].into())];
        let m = Market::with_columns(
            vec!["A".into(), "B".into()],
            vec![a.clone(), b.clone()],
            vec!["signal".into(), "pe".into()],
        )
        .unwrap();
        assert_eq!(m.columns(), &["signal".to_string(), "pe".to_string()]);
        assert_eq!(m.column_index("pe"), Some(1));
        assert_eq!(m.bars(0).extra(0), Some(&[0.5, 0.6, 0.7][..]));
        assert_eq!(m.bars(0).extra(1), None);
        assert_eq!(m.bars(1).extra(1), Some(&[9.0, 8.0][..]));

        let mut short = a.clone();
        short.extra[0] = Some(vec![0.5].into());
        let err = Market::with_columns(
            vec!["A".into()],
            vec![short],
            vec!["signal".into(), "pe".into()],
        )
        .unwrap_err();
        assert!(err
            .to_string()
            .contains("extra column \"signal\" has 1 values for 3 bars"));
        for bad in ["Close", "VOLUME", "ts", ""] {
            let err = Market::with_columns(
                vec!["A".into()],
                vec![a.clone()],
                vec![bad.into(), "pe".into()],
            )
            .unwrap_err();
            assert!(
                err.to_string().contains("names must be non-empty"),
                "{bad}: {err}"
            );
        }
        let err = Market::with_columns(
            vec!["A".into()],
            vec![a.clone()],
            vec!["pe".into(), "PE".into()],
        )
        .unwrap_err();
        assert!(err.to_string().contains("named twice"));
        let err =
            Market::with_columns(vec!["A".into()], vec![a], vec!["signal".into()]).unwrap_err();
        assert!(err.to_string().contains("2 extra column slots for 1"));
    }

    #[test]
    fn a_window_holds_extra_columns_and_windows_must_agree_on_them() {
        let mut a = bars_at(&[1, 2, 5], 1.0);
        a.extra = vec![Some(vec![0.5, f64::NAN, 0.7].into()), None];
        let b = bars_at(&[], 1.0);
        let mut b = b;
        b.extra = vec![Some(Vec::new().into()), Some(Vec::new().into())];
        let names = vec!["A".to_string(), "B".to_string()];
        let columns = vec!["signal".to_string(), "pe".to_string()];
        // Bar 1 of A is kept past (run index 4): the timeline starts at the window.
        let w = Market::window(
            names.clone(),
            vec![a.clone(), b.clone()],
            columns.clone(),
            vec![4, 0],
            2,
        )
        .unwrap();
        assert_eq!(w.timeline(), &[2, 5]);
        assert_eq!(w.columns(), &columns[..]);
        assert_eq!(w.bars(0).extra(0).unwrap()[2], 0.7);
        assert_eq!(w.bars(0).extra(1), None);
        assert_eq!(w.local(0, 6), 2);
        let again = Market::window(
            names.clone(),
            vec![a.clone(), b.clone()],
            columns.clone(),
            vec![7, 0],
            6,
        )
        .unwrap();
        assert!(w.same_columns(&again));
        // A symbol gaining a column, or another set of names, is another market.
        let mut gained = a.clone();
        gained.extra[1] = Some(vec![1.0, 2.0, 3.0].into());
        let other = Market::window(
            names.clone(),
            vec![gained, b.clone()],
            columns.clone(),
            vec![7, 0],
            6,
        )
        .unwrap();
        assert!(!w.same_columns(&other));
        let mut short = a.clone();
        short.extra[0] = Some(vec![0.5].into());
        let err = Market::window(
            names.clone(),
            vec![short, b.clone()],
            columns,
            vec![0, 0],
            0,
        )
        .unwrap_err();
        assert!(err.to_string().contains("has 1 values for 3 bars"), "{err}");
        let err = Market::window(
            names,
            vec![a, b],
            vec!["Close".into(), "pe".into()],
            vec![0, 0],
            0,
        )
        .unwrap_err();
        assert!(err.to_string().contains("names must be non-empty"), "{err}");
    }

    #[test]
    fn the_next_window_keeps_the_last_bars_then_the_new_ones() {
        let names = vec!["A".to_string(), "B".to_string(), "C".to_string()];
        let columns = vec!["signal".to_string()];
        let with_signal = |ts: &[i64], price: f64| {
            let mut b = bars_at(ts, price);
            b.extra = vec![Some(
                ts.iter()
                    .map(|&t| t as f64 / 10.0)
                    .collect::<Vec<_>>()
                    .into(),
            )];
            b
        };
        let first = Market::window(
            names.clone(),
            vec![
                with_signal(&[1, 2, 3, 4], 1.0),
                with_signal(&[2, 4], 2.0),
                with_signal(&[], 3.0),
            ],
            columns.clone(),
            vec![0, 0, 0],
            1,
        )
        .unwrap()
        .with_call_order(vec![2, 0, 1])
        .unwrap();
        // A: 4 held, 3 kept + 2 new; B: nothing new (its kept past only); C: first bars.
        let next = first
            .following(
                3,
                &[
                    with_signal(&[5, 7], 1.5),
                    with_signal(&[], 2.0),
                    with_signal(&[6], 3.5),
                ],
            )
            .unwrap();
        assert_eq!(next.timeline(), &[5, 6, 7]);
        assert_eq!(&next.bars(0).ts[..], &[2, 3, 4, 5, 7]);
        assert_eq!(&next.bars(0).close[..], &[1.0, 1.0, 1.0, 1.5, 1.5]);
        assert_eq!(next.bars(0).extra(0).unwrap(), &[0.2, 0.3, 0.4, 0.5, 0.7]);
        assert_eq!((next.base(0), next.local(0, 5), next.end(0)), (1, 4, 6));
        assert_eq!(&next.bars(1).ts[..], &[2, 4]);
        assert_eq!((next.base(1), next.end(1)), (0, 2));
        // Nothing new: the kept bars are the held ones, not a copy.
        assert_eq!(next.bars(1).ts.as_ptr(), first.bars(1).ts.as_ptr());
        assert_eq!(&next.bars(2).ts[..], &[6]);
        assert_eq!((next.base(2), next.end(2)), (0, 1));
        assert_eq!(next.call_order(), &[2, 0, 1]);
        assert!(first.same_columns(&next));
        // Keeping nothing: a window holds its new bars only, numbered on.
        let bare = next
            .following(
                0,
                &[
                    with_signal(&[8], 1.0),
                    with_signal(&[9], 2.0),
                    with_signal(&[], 3.0),
                ],
            )
            .unwrap();
        assert_eq!(&bare.bars(0).ts[..], &[8]);
        assert_eq!((bare.base(0), bare.base(1), bare.base(2)), (6, 2, 1));
        assert_eq!(bare.bars(2).len(), 0);

        // New bars must come after the held ones, with the same columns, one set a symbol.
        let err = next
            .following(
                3,
                &[
                    with_signal(&[7], 1.0),
                    with_signal(&[], 2.0),
                    with_signal(&[], 3.0),
                ],
            )
            .unwrap_err();
        assert!(
            err.to_string()
                .contains("A: the next window's first bar (7) is not after"),
            "{err}"
        );
        let err = next
            .following(
                3,
                &[
                    with_signal(&[8], 1.0),
                    bars_at(&[], 2.0),
                    with_signal(&[], 3.0),
                ],
            )
            .unwrap_err();
        assert!(
            err.to_string().contains("B: 0 extra column slots for 1"),
            "{err}"
        );
        let mut lost = with_signal(&[8], 1.0);
        lost.extra = vec![None];
        let err = next
            .following(3, &[lost, with_signal(&[], 2.0), with_signal(&[], 3.0)])
            .unwrap_err();
        assert!(
            err.to_string()
                .contains("A: a window must hold the same extra columns"),
            "{err}"
        );
        let err = next.following(3, &[with_signal(&[8], 1.0)]).unwrap_err();
        assert!(
            err.to_string()
                .contains("one column set per symbol (1 for 3 symbols)"),
            "{err}"
        );
    }
}
