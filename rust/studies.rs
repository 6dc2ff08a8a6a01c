//! Studies: what a strategy declares in `init()` and the engine keeps current in the
//! market phase — higher-timeframe candles, O(1) rolling caches on base bars or on a
//! timeframe's completed candles, and precomputed series revealed bar by bar.
//!
//! Every value read during a tick reflects bars up to and including that tick only.

use std::sync::Arc;

use crate::candles::{self, clock_bucket, CandleHistory, CandleSeries, WallClock};
use crate::error::{EngineError, Result};
use crate::market::{prefetch, Market, SymbolBars, PREFETCH_AHEAD};
use crate::rolling::{BarColumns, Rolling, RollingKind, Source};

/// How a timeframe assigns base bars to buckets.
enum Buckets {
    /// Fixed periods from an origin (ns UTC): clock-aligned candles.
    Clock { period: i64, origin: i64 },
    /// Per symbol and per base bar, the bucket's (label, end); `NO_BUCKET` label = bar not
    /// part of any candle (e.g. outside the session).
    Given {
        labels: Vec<Vec<i64>>,
        ends: Vec<Vec<i64>>,
    },
}

impl Buckets {
    /// The bucket `(label, end)` of symbol `s`'s bar `i`, starting at `ts`.
    // Always inlined: the market phase calls it per bar and timeframe, where a call costs
    // about as much as the bucket's arithmetic.
    #[inline(always)]
    fn of(&self, s: usize, i: usize, ts: i64) -> (i64, i64) {
        match self {
            Buckets::Clock { period, origin } => clock_bucket(ts, *period, *origin),
            Buckets::Given { labels, ends } => (labels[s][i], ends[s][i]),
        }
    }

    /// Symbol `s`'s whole history in these buckets (see [`CandleHistory`]), its bars'
    /// spacing read on `clock` too.
    fn history(&self, s: usize, b: &SymbolBars, clock: &Arc<WallClock>) -> CandleHistory {
        let ts = &b.ts[..];
        let columns = [
            &b.open[..],
            &b.high[..],
            &b.low[..],
            &b.close[..],
            &b.volume[..],
        ];
        candles::history(ts, columns, Arc::clone(clock), |i| self.of(s, i, ts[i]))
    }
}

/// The candles of clock buckets (`period` ns from `origin`) over one symbol's whole
/// bars, bar by bar as the engine would build them on the calendar's wall `clock`, with
/// no timeframe declared (nothing in the market phase keeps them).
pub fn clock_history(
    b: &SymbolBars,
    period: i64,
    origin: i64,
    clock: &Arc<WallClock>,
) -> Result<CandleHistory> {
    if period <= 0 {
        return Err(EngineError::InvalidConfig(format!(
            "timeframe period {period} ns must be positive"
        )));
    }
    Ok(Buckets::Clock { period, origin }.history(0, b, clock))
}

/// The candles of buckets computed by the caller (a label and an end per bar, the label
/// [`NO_BUCKET`](candles::NO_BUCKET) for a bar in none) over one symbol's whole bars, on
/// the calendar's wall `clock`.
pub fn given_history(
    b: &SymbolBars,
    labels: Vec<i64>,
    ends: Vec<i64>,
    clock: &Arc<WallClock>,
) -> Result<CandleHistory> {
    if labels.len() != b.len() || ends.len() != b.len() {
        return Err(EngineError::InvalidConfig(format!(
            "labels ({}) and ends ({}) must have one entry per bar ({})",
            labels.len(),
            ends.len(),
            b.len()
        )));
    }
    let buckets = Buckets::Given {
        labels: vec![labels],
        ends: vec![ends],
    };
    Ok(buckets.history(0, b, clock))
}

/// A timeframe's buckets given per bar (`Studies::add_given_timeframe`) for the bars of a
/// streamed run's next window: per symbol, a label and an end per bar the window holds.
pub struct GivenBuckets {
    pub timeframe: usize,
    pub labels: Vec<Vec<i64>>,
    pub ends: Vec<Vec<i64>>,
}

/// Refuse buckets given per bar that are not one label and one end per bar of `bars`.
fn check_given(bars: &[&SymbolBars], labels: &[Vec<i64>], ends: &[Vec<i64>]) -> Result<()> {
    if labels.len() != bars.len() || ends.len() != bars.len() {
        return Err(EngineError::InvalidConfig(
            "one label and end array per symbol is required".into(),
        ));
    }
    for (s, b) in bars.iter().enumerate() {
        if labels[s].len() != b.len() || ends[s].len() != b.len() {
            return Err(EngineError::InvalidConfig(format!(
                "symbol {s}: labels/ends must have one entry per bar ({})",
                b.len()
            )));
        }
    }
    Ok(())
}

struct Timeframe {
    buckets: Buckets,
    /// Completed candles kept per symbol.
    capacity: usize,
    series: Vec<CandleSeries>,
}

/// A rolling statistic of one symbol's base bars, computed a block of bars at a time.
///
/// The market holds every bar already, so when the clock plans its next ticks, the values
/// of each symbol's bars on them are computed in one tight loop over the columns (the same
/// operations as bar-by-bar updates: the same bits); a tick then only reads them. Nothing
/// looks ahead: a value is read only at its own bar or later (`value(.., bar)` with the
/// symbol's latest bar).
#[derive(Clone)]
struct Blocked {
    /// The statistic's state after the last bar of the block.
    rolling: Rolling,
    /// The bar of `values[0]`.
    start: usize,
    /// The value after each bar from `start` on.
    values: Vec<f64>,
    /// The value after bar `start - 1` (NaN at the first bar or after a reset).
    before: f64,
    /// Bars fed before `start`, since the beginning or the latest reset.
    fed_before: usize,
    /// Values kept before the latest bar's previous one, for an indicator declared to
    /// look further back than `value` and `prev` (`Studies::set_lookback`).
    keep_back: usize,
}

impl Blocked {
    fn new(rolling: Rolling) -> Self {
        Blocked {
            rolling,
            start: 0,
            values: Vec::new(),
            before: f64::NAN,
            fed_before: 0,
            keep_back: 0,
        }
    }

    /// The run index of the first bar without a value.
    #[inline]
    fn computed(&self) -> usize {
        self.start + self.values.len()
    }

    /// Compute the values of the bars from `computed()` up to run index `to` (`base` the
    /// run index of `b[0]`), keeping those from bar `kept` on (the symbol's latest bar,
    /// which may still be read, and the ones after it): a plan is made before its first
    /// tick, while a symbol's latest bar is still an earlier one (its `prev` is then
    /// `before`).
    fn refill(&mut self, kept: usize, to: usize, base: usize, b: &SymbolBars) {
        if let Some((bars, from)) = self.make_room(kept, to, base, b) {
            self.rolling.feed(&bars, &mut self.values[from..]);
        }
    }

    /// `refill` of two statistics of the same symbol whose values end at the same bar,
    /// in one pass over a column where they read the same one (`Rolling::feed_pair`).
    fn refill_pair(
        x: &mut Blocked,
        y: &mut Blocked,
        kept: usize,
        to: usize,
        base: usize,
        b: &SymbolBars,
    ) {
        match (
            x.make_room(kept, to, base, b),
            y.make_room(kept, to, base, b),
        ) {
            (Some((bars, from_x)), Some((_, from_y))) => Rolling::feed_pair(
                &mut x.rolling,
                &mut y.rolling,
                &bars,
                &mut x.values[from_x..],
                &mut y.values[from_y..],
            ),
            (on_x, on_y) => {
                if let Some((bars, from)) = on_x {
                    x.rolling.feed(&bars, &mut x.values[from..]);
                }
                if let Some((bars, from)) = on_y {
                    y.rolling.feed(&bars, &mut y.values[from..]);
                }
            }
        }
    }

    /// `refill`'s bookkeeping: drop the values before bar `kept` and make room for the
    /// new ones; returns the bars to compute and where their values go in `values`.
    fn make_room<'b>(
        &mut self,
        kept: usize,
        to: usize,
        base: usize,
        b: &'b SymbolBars,
    ) -> Option<(BarColumns<'b>, usize)> {
        let i = self.computed();
        // The first bar without a value is held (a streamed window keeps the bars from the
        // first one not yet processed on); if not, nothing to compute from.
        let j = i.checked_sub(base).filter(|&j| j <= b.len())?;
        let kept = kept.saturating_sub(self.keep_back);
        let gone = kept.saturating_sub(self.start).min(self.values.len());
        if let Some(&last) = gone.checked_sub(1).and_then(|k| self.values.get(k)) {
            self.before = last;
        }
        self.fed_before += gone;
        self.start += gone;
        let kept = self.values.len() - gone;
        self.values.copy_within(gone.., 0);
        let end = (j + to.saturating_sub(i)).min(b.len());
        let bars = BarColumns {
            open: &b.open[j..end],
            high: &b.high[j..end],
            low: &b.low[j..end],
            close: &b.close[j..end],
            volume: &b.volume[j..end],
        };
        // Every new slot is written by `feed`: the buffer is filled only where it grows
        // (a plan's bars are about as many as the last one's).
        self.values.resize(kept + end - j, f64::NAN);
        Some((bars, kept))
    }

    /// The value after bar `i`; a bar before `start` is the bar of a reset (NaN).
    #[inline]
    fn value(&self, i: usize) -> f64 {
        i.checked_sub(self.start)
            .and_then(|k| self.values.get(k))
            .copied()
            .unwrap_or(f64::NAN)
    }

    #[inline]
    fn prev(&self, i: usize) -> f64 {
        if i > self.start {
            self.value(i - 1)
        } else if i == self.start {
            self.before
        } else {
            f64::NAN
        }
    }

    /// `(value(i), prev(i))` in one look at the buffer (what a strategy's `next` reads).
    #[inline(always)]
    fn value_and_prev(&self, i: usize) -> (f64, f64) {
        let v = &self.values;
        // The usual bar: its value and the one before both in the buffer (1 <= k < len;
        // a bar before `start` wraps to a huge k).
        let k = i.wrapping_sub(self.start);
        if k.wrapping_sub(1) < v.len().saturating_sub(1) {
            // SAFETY: 1 <= k < v.len(), checked just above.
            return unsafe { (*v.get_unchecked(k), *v.get_unchecked(k - 1)) };
        }
        self.value_and_prev_at_edge(i)
    }

    /// `value_and_prev` at the buffer's edges: before `start`, at it, or past the values.
    #[cold]
    #[inline(never)]
    fn value_and_prev_at_edge(&self, i: usize) -> (f64, f64) {
        let v = &self.values;
        match i.checked_sub(self.start) {
            None => (f64::NAN, f64::NAN),
            Some(0) => (v.first().copied().unwrap_or(f64::NAN), self.before),
            Some(k) if k < v.len() => (v[k], v[k - 1]),
            Some(k) => (f64::NAN, v.get(k - 1).copied().unwrap_or(f64::NAN)),
        }
    }

    /// The value `k` bars before bar `i` (0: `value(i)`, 1: `prev(i)`), for `k` up to
    /// `keep_back + 1`: NaN before the first bar or the latest reset.
    fn back(&self, i: usize, k: usize) -> f64 {
        match i.checked_sub(k) {
            Some(j) if j >= self.start => self.value(j),
            Some(j) if j + 1 == self.start => self.before,
            _ => f64::NAN,
        }
    }

    fn is_ready(&self, i: usize) -> bool {
        i >= self.start
            && self
                .rolling
                .ready_after(self.fed_before + (i - self.start) + 1)
    }

    /// Forget every bar up to and including `bar` (the latest): it refills from the next.
    fn reset(&mut self, bar: Option<usize>) {
        self.rolling.reset();
        self.start = bar.map_or(0, |i| i + 1);
        self.values.clear();
        self.before = f64::NAN;
        self.fed_before = 0;
    }
}

/// A precomputed series' values, per symbol one per base bar, read where they are: owned
/// here, or borrowed from memory that `owner` keeps alive (numpy arrays the bindings hold,
/// so an indicator computed in Python is not copied) and that nothing changes while it
/// is held.
pub struct SeriesValues {
    /// Per symbol, where its values start and how many there are.
    columns: Vec<(*const f64, usize)>,
    _owner: Box<dyn std::any::Any + Send + Sync>,
}

// SAFETY: the columns are read-only memory owned by (or kept alive by) `owner`, which is
// Send and Sync; nothing is ever written through them.
unsafe impl Send for SeriesValues {}
unsafe impl Sync for SeriesValues {}

impl SeriesValues {
    /// Values owned by the studies.
    pub fn owned(values: Vec<Vec<f64>>) -> Self {
        let columns = values.iter().map(|v| (v.as_ptr(), v.len())).collect();
        // Moving the vectors into the box moves none of their buffers.
        SeriesValues {
            columns,
            _owner: Box::new(values),
        }
    }

    /// Values borrowed from memory `owner` keeps alive: per symbol (start, count).
    ///
    /// # Safety
    /// Each (start, count) must describe `count` initialised f64 that stay valid, and
    /// unchanged, as long as `owner` lives.
    pub unsafe fn borrowed(
        columns: Vec<(*const f64, usize)>,
        owner: Box<dyn std::any::Any + Send + Sync>,
    ) -> Self {
        SeriesValues {
            columns,
            _owner: owner,
        }
    }

    /// Symbols held.
    pub fn len(&self) -> usize {
        self.columns.len()
    }

    pub fn is_empty(&self) -> bool {
        self.columns.is_empty()
    }

    /// Symbol `s`'s values.
    #[inline(always)]
    pub fn column(&self, s: usize) -> &[f64] {
        let (start, len) = self.columns[s];
        // SAFETY: (start, len) describe a live slice for as long as `owner`, which `self`
        // holds, lives (`owned` and `borrowed`).
        unsafe { std::slice::from_raw_parts(start, len) }
    }
}

/// A rolling statistic's values before its previous one, newest last, for an indicator
/// declared to look further back than `value` and `prev` (`Studies::set_lookback`): a
/// ring written before each update with the value that update makes the one before
/// `prev`.
#[derive(Clone)]
struct Earlier {
    ring: Vec<f64>,
    /// Where the next value goes (the oldest one is there).
    next: usize,
}

impl Earlier {
    fn new(len: usize) -> Self {
        Earlier {
            ring: vec![f64::NAN; len],
            next: 0,
        }
    }

    /// Before an update of symbol `s`'s statistic `rolling`: the value the update pushes
    /// past `prev` joins the symbol's ring, when its indicator keeps one (`earlier` is
    /// empty otherwise).
    #[inline]
    fn before_update(earlier: &mut [Earlier], s: usize, rolling: &Rolling) {
        if let Some(ring) = earlier.get_mut(s) {
            ring.push(rolling.prev());
        }
    }

    #[inline]
    fn push(&mut self, x: f64) {
        if let Some(slot) = self.ring.get_mut(self.next) {
            *slot = x;
            self.next = (self.next + 1) % self.ring.len();
        }
    }

    /// The value `k` updates before `prev`'s (0: the one just before it); None past the
    /// ring.
    fn get(&self, k: usize) -> Option<f64> {
        let len = self.ring.len();
        (k < len).then(|| self.ring[(self.next + len - 1 - k) % len])
    }

    fn clear(&mut self) {
        self.ring.fill(f64::NAN);
    }
}

// An explicit tag: `value_and_prev` tells the kinds apart at every indicator and bar,
// and a tag byte is one compare where the kinds hidden in a field's unused values took a
// dozen instructions to tell apart.
#[repr(u8)]
enum Study {
    /// On base bars, the bars of a plan of the clock at a time.
    Bars { per_symbol: Vec<Blocked> },
    /// On a timeframe's completed candles, one candle at a time (or on an extra column,
    /// one value at a time); `earlier` per symbol when declared to look further back
    /// (else empty).
    Rolling {
        per_symbol: Vec<Rolling>,
        earlier: Vec<Earlier>,
    },
    /// A vectorised indicator computed over the whole history, one value per base bar.
    Series {
        values: SeriesValues,
        warmup_done: Vec<usize>,
    },
}

#[derive(Default)]
pub struct Studies {
    timeframes: Vec<Timeframe>,
    studies: Vec<Study>,
    /// Rolling studies fed by each timeframe (index = timeframe).
    by_timeframe: Vec<Vec<usize>>,
    base_rolling: Vec<usize>,
    /// Rolling studies on base bars fed by an extra column: (study, column index).
    column_rolling: Vec<(usize, usize)>,
    /// A base-bar statistic was reset: its values from the next bar on are to be computed
    /// again (`compute_ahead`).
    stale: bool,
    /// The calendar's wall clock, on which every timeframe reads its bars' spacing too.
    clock: Arc<WallClock>,
    /// The statistics a strategy reset during the run (their values then depend on when).
    reset: Vec<usize>,
}

impl Studies {
    /// The calendar's wall clock (the backtest's timezone): the timeframes read their
    /// bars' spacing on it too (see [`candles`]), those declared already included.
    pub fn set_wall_clock(&mut self, clock: WallClock) {
        self.clock = Arc::new(clock);
        for timeframe in &mut self.timeframes {
            timeframe.series = (0..timeframe.series.len())
                .map(|_| CandleSeries::with_clock(timeframe.capacity, Arc::clone(&self.clock)))
                .collect();
        }
    }

    /// The calendar's wall clock.
    pub fn wall_clock(&self) -> &Arc<WallClock> {
        &self.clock
    }

    pub fn is_empty(&self) -> bool {
        self.timeframes.is_empty() && self.base_rolling.is_empty() && self.column_rolling.is_empty()
    }

    /// Whether a study was computed from every bar at declaration (a precomputed series):
    /// it cannot follow a streamed run.
    pub fn needs_whole_history(&self) -> bool {
        self.studies
            .iter()
            .any(|s| matches!(s, Study::Series { .. }))
    }

    /// The timeframes whose buckets the caller gives per bar (`add_given_timeframe`),
    /// in the order declared: a streamed run gives them again for each window.
    pub fn given_timeframes(&self) -> Vec<usize> {
        (0..self.timeframes.len())
            .filter(|&k| matches!(self.timeframes[k].buckets, Buckets::Given { .. }))
            .collect()
    }

    /// Replace the buckets of given timeframe `tf` by those of another market's `bars`
    /// (a streamed run's next window: per symbol, a label and an end per bar it holds).
    pub fn set_given_buckets(
        &mut self,
        tf: usize,
        bars: &[&SymbolBars],
        labels: Vec<Vec<i64>>,
        ends: Vec<Vec<i64>>,
    ) -> Result<()> {
        match self.timeframes.get(tf).map(|t| &t.buckets) {
            Some(Buckets::Given { .. }) => {}
            _ => {
                return Err(EngineError::InvalidConfig(format!(
                    "timeframe {tf} is not one whose buckets are given per bar"
                )))
            }
        }
        check_given(bars, &labels, &ends)?;
        self.timeframes[tf].buckets = Buckets::Given { labels, ends };
        Ok(())
    }

    /// A clock-aligned timeframe of `period` ns counted from `origin`, keeping the last
    /// `capacity` completed candles per symbol.
    pub fn add_clock_timeframe(
        &mut self,
        symbols: usize,
        period: i64,
        origin: i64,
        capacity: usize,
    ) -> Result<usize> {
        if period <= 0 || capacity == 0 {
            return Err(EngineError::InvalidConfig(format!(
                "timeframe period {period} ns and history {capacity} must both be positive"
            )));
        }
        self.push_timeframe(symbols, Buckets::Clock { period, origin }, capacity)
    }

    /// A timeframe whose buckets were computed by the caller (sessions in a timezone).
    pub fn add_given_timeframe(
        &mut self,
        bars: &[&SymbolBars],
        labels: Vec<Vec<i64>>,
        ends: Vec<Vec<i64>>,
        capacity: usize,
    ) -> Result<usize> {
        if capacity == 0 {
            return Err(EngineError::InvalidConfig(
                "a timeframe's history must be positive".into(),
            ));
        }
        check_given(bars, &labels, &ends)?;
        self.push_timeframe(bars.len(), Buckets::Given { labels, ends }, capacity)
    }

    fn push_timeframe(
        &mut self,
        symbols: usize,
        buckets: Buckets,
        capacity: usize,
    ) -> Result<usize> {
        self.timeframes.push(Timeframe {
            buckets,
            capacity,
            series: (0..symbols)
                .map(|_| CandleSeries::with_clock(capacity, Arc::clone(&self.clock)))
                .collect(),
        });
        self.by_timeframe.push(Vec::new());
        Ok(self.timeframes.len() - 1)
    }

    /// A rolling statistic per symbol, on base bars (`timeframe` None) or on a timeframe's
    /// completed candles.
    pub fn add_rolling(
        &mut self,
        symbols: usize,
        kind: RollingKind,
        source: Source,
        timeframe: Option<usize>,
    ) -> Result<usize> {
        let proto = Rolling::new(kind, source).map_err(EngineError::InvalidConfig)?;
        let id = self.studies.len();
        match timeframe {
            None => {
                self.base_rolling.push(id);
                self.studies.push(Study::Bars {
                    per_symbol: vec![Blocked::new(proto); symbols],
                });
            }
            Some(tf) => {
                let list = self
                    .by_timeframe
                    .get_mut(tf)
                    .ok_or_else(|| EngineError::InvalidConfig(format!("no timeframe {tf}")))?;
                list.push(id);
                self.studies.push(Study::Rolling {
                    per_symbol: vec![proto; symbols],
                    earlier: Vec::new(),
                });
            }
        }
        Ok(id)
    }

    /// A rolling statistic per symbol on base bars whose input is the market's extra
    /// column `column` (e.g. a precomputed signal). A missing value (NaN, where the door
    /// allowed it) is not fed: the window holds the column's last values that exist. A
    /// symbol without the column never becomes ready. ATR reads high, low and close, so
    /// it has no column source.
    pub fn add_rolling_on_column(
        &mut self,
        symbols: usize,
        kind: RollingKind,
        column: usize,
    ) -> Result<usize> {
        if matches!(kind, RollingKind::Atr(_)) {
            return Err(EngineError::InvalidConfig(
                "atr reads high, low and close; it cannot take an extra column as its source"
                    .into(),
            ));
        }
        let proto = Rolling::new(kind, Source::Close).map_err(EngineError::InvalidConfig)?;
        let id = self.studies.len();
        self.column_rolling.push((id, column));
        self.studies.push(Study::Rolling {
            per_symbol: vec![proto; symbols],
            earlier: Vec::new(),
        });
        Ok(id)
    }

    /// A precomputed series: `values.column(symbol)[bar]`, revealed as bars are processed.
    pub fn add_series(&mut self, bars: &[&SymbolBars], values: SeriesValues) -> Result<usize> {
        if values.len() != bars.len() {
            return Err(EngineError::InvalidConfig(
                "one value array per symbol is required".into(),
            ));
        }
        for (s, b) in bars.iter().enumerate() {
            if values.column(s).len() != b.len() {
                return Err(EngineError::InvalidConfig(format!(
                    "symbol {s}: the indicator has {} values for {} bars",
                    values.column(s).len(),
                    b.len()
                )));
            }
        }
        let warmup_done = (0..values.len())
            .map(|s| {
                let v = values.column(s);
                v.iter().position(|x| !x.is_nan()).unwrap_or(usize::MAX)
            })
            .collect();
        self.studies.push(Study::Series {
            values,
            warmup_done,
        });
        Ok(self.studies.len() - 1)
    }

    /// Whether some statistic follows the bars one at a time (`update`): those of extra
    /// columns and timeframes. Base-bar statistics are computed ahead (`compute_ahead`).
    #[inline]
    pub fn follows_bars(&self) -> bool {
        !(self.column_rolling.is_empty() && self.timeframes.is_empty())
    }

    /// Whether `compute_ahead` has work: a plan of the clock was just made, or a base-bar
    /// statistic was reset since the last call.
    #[inline]
    pub fn needs_computing(&self, replanned: bool) -> bool {
        !self.base_rolling.is_empty() && (replanned || self.stale)
    }

    /// Compute the base-bar statistics of every symbol `s` for its next `span` bars (the
    /// clock's plan of `span` ticks holds no more of them), from its first bar without
    /// values, `next[s]` being its next bar; values before its latest bar are dropped.
    /// Values are only read at their own bar or later.
    ///
    /// A symbol at a time, so its columns come from memory once for all its statistics;
    /// sums and means of the same column two at a time, in one pass over it where the CPU
    /// gains by it (`Rolling::feed_pair`; in the order declared: each with the next one it
    /// can share a pass with).
    pub fn compute_ahead(&mut self, market: &Market, next: &[usize], span: usize) {
        let symbols = next.len();
        for (s, &next) in next.iter().enumerate() {
            let (base, b) = (market.base(s), market.bars(s));
            if s + 1 < symbols {
                self.prefetch_first(market, s + 1);
            }
            let (latest, to) = (next.saturating_sub(1), next.saturating_add(span));
            // A sum waiting for a partner: (its study, its first bar without a value).
            let mut waiting: Option<(usize, usize)> = None;
            for k in 0..self.base_rolling.len() {
                let id = self.base_rolling[k];
                let Study::Bars { per_symbol } = &self.studies[id] else {
                    continue;
                };
                let blocked = &per_symbol[s];
                let computed = blocked.computed();
                if computed >= to {
                    continue;
                }
                let partner = waiting.filter(|&(other, from)| {
                    from == computed
                        && self
                            .blocked(other, s)
                            .rolling
                            .sums_same_column(&blocked.rolling)
                });
                if let Some((other, _)) = partner {
                    waiting = None;
                    let (x, y) = self.two_blocked(other, id, s);
                    Blocked::refill_pair(x, y, latest, to, base, b);
                    continue;
                }
                if matches!(
                    blocked.rolling.kind(),
                    RollingKind::Sum(_) | RollingKind::Mean(_)
                ) {
                    // Wait for a partner; the one waiting so far goes alone.
                    if let Some((other, _)) = waiting.replace((id, computed)) {
                        self.blocked_mut(other, s).refill(latest, to, base, b);
                    }
                    continue;
                }
                self.blocked_mut(id, s).refill(latest, to, base, b);
            }
            if let Some((other, _)) = waiting {
                self.blocked_mut(other, s).refill(latest, to, base, b);
            }
        }
        self.stale = false;
    }

    /// Base-bar statistic `id`'s state for symbol `s`.
    fn blocked(&self, id: usize, s: usize) -> &Blocked {
        match &self.studies[id] {
            Study::Bars { per_symbol } => &per_symbol[s],
            _ => unreachable!("base_rolling lists base-bar statistics only"),
        }
    }

    fn blocked_mut(&mut self, id: usize, s: usize) -> &mut Blocked {
        match &mut self.studies[id] {
            Study::Bars { per_symbol } => &mut per_symbol[s],
            _ => unreachable!("base_rolling lists base-bar statistics only"),
        }
    }

    /// Two base-bar statistics' states for symbol `s` (`first < second`).
    fn two_blocked(
        &mut self,
        first: usize,
        second: usize,
        s: usize,
    ) -> (&mut Blocked, &mut Blocked) {
        let (before, after) = self.studies.split_at_mut(second);
        match (&mut before[first], &mut after[0]) {
            (Study::Bars { per_symbol: x }, Study::Bars { per_symbol: y }) => {
                (&mut x[s], &mut y[s])
            }
            _ => unreachable!("base_rolling lists base-bar statistics only"),
        }
    }

    /// Hint the CPU to load the first values `symbol`'s base-bar statistics will read
    /// (while the symbol before it is computed): the loops over a column prefetch it from
    /// a kilobyte ahead, so its first kilobyte is what would wait for memory.
    fn prefetch_first(&self, market: &Market, symbol: usize) {
        let (base, b) = (market.base(symbol), market.bars(symbol));
        for &id in &self.base_rolling {
            if let Study::Bars { per_symbol } = &self.studies[id] {
                let blocked = &per_symbol[symbol];
                let first = blocked.computed().wrapping_sub(base);
                let column = BarColumns::of_bars(b).of(blocked.rolling.source());
                for i in (first..first.saturating_add(PREFETCH_AHEAD)).step_by(8) {
                    prefetch(column, i);
                }
            }
        }
    }

    /// Market-phase update, bar by bar, of the statistics of extra columns and timeframes,
    /// for `symbol`'s bar at position `i` of the columns `b`.
    pub fn update(&mut self, s: usize, i: usize, b: &SymbolBars) {
        for &(id, k) in &self.column_rolling {
            if let (
                Some(values),
                Study::Rolling {
                    per_symbol,
                    earlier,
                },
            ) = (b.extra(k), &mut self.studies[id])
            {
                let x = values[i];
                if !x.is_nan() {
                    Earlier::before_update(earlier, s, &per_symbol[s]);
                    per_symbol[s].update(x, x, x, x, x);
                }
            }
        }
        if self.timeframes.is_empty() {
            return;
        }
        // Candles carry every column.
        let ohlcv = b.ohlcv(i);
        for (tf_id, tf) in self.timeframes.iter_mut().enumerate() {
            let ts = b.ts[i];
            let done = tf.series[s].feed(ts, tf.buckets.of(s, i, ts), ohlcv);
            for candle in done.iter() {
                for &id in &self.by_timeframe[tf_id] {
                    if let Study::Rolling {
                        per_symbol,
                        earlier,
                    } = &mut self.studies[id]
                    {
                        Earlier::before_update(earlier, s, &per_symbol[s]);
                        candle.feed(&mut per_symbol[s]);
                    }
                }
            }
        }
    }

    /// Whether study `id` is an ATR over base bars (what a trailing stop may follow).
    pub fn is_base_atr(&self, id: usize) -> bool {
        match self.studies.get(id) {
            Some(Study::Bars { per_symbol }) => per_symbol
                .first()
                .is_some_and(|b| matches!(b.rolling.kind(), RollingKind::Atr(_))),
            _ => false,
        }
    }

    #[inline]
    fn study(&self, id: usize) -> Result<&Study> {
        match self.studies.get(id) {
            Some(study) => Ok(study),
            None => Err(no_study(id)),
        }
    }

    /// Current value of study `id` for `symbol`; `bar` is the symbol's latest bar index.
    #[inline]
    pub fn value(&self, id: usize, s: usize, bar: Option<usize>) -> Result<f64> {
        Ok(match self.study(id)? {
            Study::Bars { per_symbol } => bar.map_or(f64::NAN, |i| per_symbol[s].value(i)),
            Study::Rolling { per_symbol, .. } => per_symbol[s].value(),
            Study::Series { values, .. } => bar.map_or(f64::NAN, |i| values.column(s)[i]),
        })
    }

    /// The value before the latest update.
    #[inline]
    pub fn prev(&self, id: usize, s: usize, bar: Option<usize>) -> Result<f64> {
        Ok(match self.study(id)? {
            Study::Bars { per_symbol } => bar.map_or(f64::NAN, |i| per_symbol[s].prev(i)),
            Study::Rolling { per_symbol, .. } => per_symbol[s].prev(),
            Study::Series { values, .. } => match bar {
                Some(i) if i > 0 => values.column(s)[i - 1],
                _ => f64::NAN,
            },
        })
    }

    /// `value` and `prev` in one read (what a strategy's `next` is given); None for no
    /// such study. Inlined into its callers: it runs for every indicator at every bar.
    #[inline(always)]
    pub fn value_and_prev(&self, id: usize, s: usize, bar: Option<usize>) -> Option<(f64, f64)> {
        Some(match (self.studies.get(id)?, bar) {
            (Study::Bars { per_symbol }, Some(i)) => per_symbol[s].value_and_prev(i),
            (Study::Rolling { per_symbol, .. }, _) => (per_symbol[s].value(), per_symbol[s].prev()),
            (Study::Series { values, .. }, Some(i)) => series_pair(values, s, i),
            (Study::Bars { .. } | Study::Series { .. }, None) => (f64::NAN, f64::NAN),
        })
    }

    /// Let rolling statistic `id` be read `lookback` values back (its latest included, so
    /// 2 is `value` and `prev` alone, as declared): its values per symbol are kept that
    /// far. A precomputed series keeps every bar's already.
    pub fn set_lookback(&mut self, id: usize, lookback: usize) -> Result<()> {
        let back = lookback.checked_sub(2).ok_or_else(|| {
            EngineError::InvalidConfig(format!(
                "lookback = {lookback}: an indicator keeps its latest value and the one \
                 before at least (lookback >= 2)"
            ))
        })?;
        match self.studies.get_mut(id) {
            Some(Study::Bars { per_symbol }) => {
                per_symbol.iter_mut().for_each(|b| b.keep_back = back);
            }
            Some(Study::Rolling {
                per_symbol,
                earlier,
            }) => {
                *earlier = if back == 0 {
                    Vec::new()
                } else {
                    vec![Earlier::new(back); per_symbol.len()]
                };
            }
            Some(Study::Series { .. }) => {}
            None => return Err(no_study(id)),
        }
        Ok(())
    }

    /// How many values back study `id` can be read (its latest included); None for a
    /// precomputed series, which keeps every bar's.
    pub fn lookback(&self, id: usize) -> Result<Option<usize>> {
        Ok(match self.study(id)? {
            Study::Bars { per_symbol } => Some(per_symbol.first().map_or(0, |b| b.keep_back) + 2),
            Study::Rolling { earlier, .. } => Some(earlier.first().map_or(0, |e| e.ring.len()) + 2),
            Study::Series { .. } => None,
        })
    }

    /// Study `id`'s value for symbol `s`, whose latest bar is `bar`, `k` updates before
    /// its latest (0: `value`, 1: `prev`; on base bars and a precomputed series an update
    /// is a bar): NaN where it had none yet (or before a reset), None past what it keeps
    /// (`lookback`).
    pub fn back(&self, id: usize, s: usize, bar: Option<usize>, k: usize) -> Result<Option<f64>> {
        Ok(match self.study(id)? {
            Study::Bars { per_symbol } => {
                let b = &per_symbol[s];
                (k <= b.keep_back + 1).then(|| bar.map_or(f64::NAN, |i| b.back(i, k)))
            }
            Study::Rolling {
                per_symbol,
                earlier,
            } => match k {
                0 => Some(per_symbol[s].value()),
                1 => Some(per_symbol[s].prev()),
                _ => earlier.get(s).and_then(|e| e.get(k - 2)),
            },
            Study::Series { values, .. } => Some(
                bar.and_then(|i| i.checked_sub(k))
                    .map_or(f64::NAN, |j| values.column(s)[j]),
            ),
        })
    }

    /// The values precomputed series `id` has revealed for symbol `s` whose latest bar is
    /// `bar`: one per bar up to it (none before its first bar). None when the study is a
    /// rolling statistic, which keeps its latest `lookback` values only (`back`).
    pub fn series_so_far(&self, id: usize, s: usize, bar: Option<usize>) -> Result<Option<&[f64]>> {
        Ok(match self.study(id)? {
            Study::Series { values, .. } => Some(bar.map_or(&[][..], |i| &values.column(s)[..=i])),
            Study::Bars { .. } | Study::Rolling { .. } => None,
        })
    }

    /// Whether study `id` was declared.
    pub fn has(&self, id: usize) -> bool {
        id < self.studies.len()
    }

    /// `value_and_prev` at symbol `s`'s bar `i` (the running symbol's, before its `next`),
    /// for a study whose existence the caller checked once (`value_and_prev` is None for
    /// no such study; here that is NaN): each kind read straight from its symbol's state,
    /// with no Option to unwrap per read.
    #[inline(always)]
    pub fn pair_at(&self, id: usize, s: usize, i: usize) -> (f64, f64) {
        match self.studies.get(id) {
            Some(Study::Bars { per_symbol }) if s < per_symbol.len() => {
                per_symbol[s].value_and_prev(i)
            }
            Some(Study::Rolling { per_symbol, .. }) if s < per_symbol.len() => {
                (per_symbol[s].value(), per_symbol[s].prev())
            }
            Some(Study::Series { values, .. }) => series_pair(values, s, i),
            _ => (f64::NAN, f64::NAN),
        }
    }

    pub fn is_ready(&self, id: usize, s: usize, bar: Option<usize>) -> Result<bool> {
        Ok(match self.study(id)? {
            Study::Bars { per_symbol } => bar.is_some_and(|i| per_symbol[s].is_ready(i)),
            Study::Rolling { per_symbol, .. } => per_symbol[s].is_ready(),
            Study::Series { warmup_done, .. } => bar.is_some_and(|i| i >= warmup_done[s]),
        })
    }

    /// Forget a rolling statistic's window for `symbol` (it refills from the next input);
    /// `bar` is the symbol's latest bar.
    pub fn reset(&mut self, id: usize, s: usize, bar: Option<usize>) -> Result<()> {
        if !self.reset.contains(&id) && id < self.studies.len() {
            self.reset.push(id);
        }
        match self.studies.get_mut(id) {
            Some(Study::Bars { per_symbol }) => {
                per_symbol[s].reset(bar);
                // It refills from the next bar, before that bar's tick.
                self.stale = true;
                Ok(())
            }
            Some(Study::Rolling {
                per_symbol,
                earlier,
            }) => {
                per_symbol[s].reset();
                if let Some(earlier) = earlier.get_mut(s) {
                    earlier.clear();
                }
                Ok(())
            }
            Some(Study::Series { .. }) => Err(EngineError::InvalidConfig(
                "a precomputed series cannot be reset".into(),
            )),
            None => Err(EngineError::InvalidConfig(format!("no indicator {id}"))),
        }
    }

    /// Rolling statistic `id`'s value at each of symbol `s`'s bars `b` (its whole
    /// history), as the run reads it there: on base bars fed in one pass (the same bits
    /// as the run's blocks), on an extra column with its missing values skipped, on a
    /// timeframe the value after the candles completed by each bar (NaN before the
    /// first). Computed afresh, after the run or before it, for the record of what the
    /// strategy saw. None for a precomputed series (its values are the caller's) and for
    /// a statistic reset during the run (afresh they would not be the run's).
    pub fn values_over(&self, id: usize, s: usize, b: &SymbolBars) -> Result<Option<Vec<f64>>> {
        let study = self.study(id)?;
        if self.reset.contains(&id) {
            return Ok(None);
        }
        let fresh =
            |r: &Rolling| Rolling::new(r.kind(), r.source()).map_err(EngineError::InvalidConfig);
        let n = b.len();
        match study {
            Study::Series { .. } => Ok(None),
            Study::Bars { per_symbol } => {
                let mut out = vec![f64::NAN; n];
                fresh(&per_symbol[s].rolling)?.feed(&BarColumns::of_bars(b), &mut out);
                Ok(Some(out))
            }
            Study::Rolling { per_symbol, .. } => {
                let mut rolling = fresh(&per_symbol[s])?;
                if let Some(&(_, k)) = self.column_rolling.iter().find(|(c, _)| *c == id) {
                    let Some(column) = b.extra(k) else {
                        return Ok(Some(vec![f64::NAN; n]));
                    };
                    let out = column
                        .iter()
                        .map(|&x| {
                            if !x.is_nan() {
                                rolling.update(x, x, x, x, x);
                            }
                            rolling.value()
                        })
                        .collect();
                    return Ok(Some(out));
                }
                let tf = self
                    .by_timeframe
                    .iter()
                    .position(|ids| ids.contains(&id))
                    .ok_or_else(|| {
                        EngineError::InvalidConfig(format!("indicator {id} has no timeframe"))
                    })?;
                let history = self.candle_history(tf, s, b)?;
                let c = &history.candles;
                // The value after each candle, then each bar's after those it completed.
                let mut after = Vec::with_capacity(c.ts.len() + 1);
                after.push(f64::NAN);
                for k in 0..c.ts.len() {
                    rolling.update(c.open[k], c.high[k], c.low[k], c.close[k], c.volume[k]);
                    after.push(rolling.value());
                }
                Ok(Some(
                    history
                        .completed
                        .iter()
                        .map(|&k| after[k as usize])
                        .collect(),
                ))
            }
        }
    }

    /// Symbol `s`'s whole bars `b` in timeframe `tf`'s buckets, fed afresh (the
    /// timeframe's own candles, kept by the market phase, are left as they are).
    pub fn candle_history(&self, tf: usize, s: usize, b: &SymbolBars) -> Result<CandleHistory> {
        self.timeframes
            .get(tf)
            .map(|t| t.buckets.history(s, b, &self.clock))
            .ok_or_else(|| EngineError::InvalidConfig(format!("no timeframe {tf}")))
    }

    pub fn candles(&self, tf: usize, s: usize) -> Result<&CandleSeries> {
        self.timeframes
            .get(tf)
            .map(|t| &t.series[s])
            .ok_or_else(|| EngineError::InvalidConfig(format!("no timeframe {tf}")))
    }
}

/// A precomputed series' value at symbol `s`'s bar `i` and the one before it.
#[inline(always)]
fn series_pair(values: &SeriesValues, s: usize, i: usize) -> (f64, f64) {
    let v = values.column(s);
    // Each symbol's series is a stream of its own, read one value per bar: more streams
    // than the hardware prefetcher follows once there are many symbols.
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        // SAFETY: a prefetch is only a hint: it reads nothing and never faults, whatever
        // the address (past the column's end it fetches nothing of use), and the pointer
        // is only formed (wrapping), never dereferenced.
        unsafe { _mm_prefetch::<_MM_HINT_T0>(v.as_ptr().wrapping_add(i + 16).cast::<i8>()) };
    }
    (v[i], if i > 0 { v[i - 1] } else { f64::NAN })
}

#[cold]
fn no_study(id: usize) -> EngineError {
    EngineError::InvalidConfig(format!("no indicator {id}"))
}

/// Parse a rolling kind name as the Python API spells it.
pub fn rolling_kind(name: &str, window: usize) -> Result<RollingKind> {
    Ok(match name {
        "sum" => RollingKind::Sum(window),
        "mean" | "sma" => RollingKind::Mean(window),
        "min" => RollingKind::Min(window),
        "max" => RollingKind::Max(window),
        "std" => RollingKind::Std(window),
        "ema" => RollingKind::Ema(window),
        "rsi" => RollingKind::Rsi(window),
        "atr" => RollingKind::Atr(window),
        other => {
            return Err(EngineError::InvalidConfig(format!(
                "unknown rolling statistic {other:?}: expected sum, mean, min, max, std, ema, rsi or atr"
            )))
        }
    })
}

pub fn source(name: &str) -> Result<Source> {
    Ok(match name {
        "open" => Source::Open,
        "high" => Source::High,
        "low" => Source::Low,
        "close" => Source::Close,
        "volume" => Source::Volume,
        other => {
            return Err(EngineError::InvalidConfig(format!(
                "unknown source {other:?}: expected open, high, low, close or volume"
            )))
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rolling_statistic_can_read_an_extra_column_and_skips_its_gaps() {
        let n = 6;
        let mut b = SymbolBars::from_vecs(
            (0..n as i64).collect(),
            vec![10.0; n],
            vec![11.0; n],
            vec![9.0; n],
            vec![10.0; n],
            vec![1.0; n],
        );
        b.extra = vec![Some(vec![1.0, 2.0, f64::NAN, 4.0, 5.0, 6.0].into())];
        let mut studies = Studies::default();
        let mean = studies
            .add_rolling_on_column(1, RollingKind::Mean(2), 0)
            .unwrap();
        let close = studies
            .add_rolling(1, RollingKind::Mean(2), Source::Close, None)
            .unwrap();
        assert!(!studies.is_empty());
        // The base-bar mean reads the prices alone.
        let prices = SymbolBars {
            extra: Vec::new(),
            ..b.clone()
        };
        let market = Market::new(vec!["X".into()], vec![prices]).unwrap();
        studies.compute_ahead(&market, &[0], n);
        let mut seen = Vec::new();
        for i in 0..n {
            studies.update(0, i, &b);
            seen.push(studies.value(mean, 0, Some(i)).unwrap());
            assert_eq!(studies.value(close, 0, Some(i)).unwrap().is_nan(), i == 0);
        }
        // The NaN at bar 2 is not fed: the window then holds 2.0 and 4.0.
        assert!(seen[0].is_nan());
        assert_eq!(&seen[1..], &[1.5, 1.5, 3.0, 4.5, 5.5]);
        let atr = studies.add_rolling_on_column(1, RollingKind::Atr(3), 0);
        assert!(atr
            .unwrap_err()
            .to_string()
            .contains("atr reads high, low and close"));
    }

    #[test]
    fn a_symbol_without_the_column_never_becomes_ready() {
        let b = SymbolBars::from_vecs(
            vec![0, 1],
            vec![1.0; 2],
            vec![1.0; 2],
            vec![1.0; 2],
            vec![1.0; 2],
            vec![1.0; 2],
        );
        let mut studies = Studies::default();
        let id = studies
            .add_rolling_on_column(1, RollingKind::Sum(1), 0)
            .unwrap();
        studies.update(0, 0, &b);
        studies.update(0, 1, &b);
        assert!(!studies.is_ready(id, 0, Some(1)).unwrap());
        assert!(studies.value(id, 0, Some(1)).unwrap().is_nan());
    }

    fn bars(n: usize) -> SymbolBars {
        // A deterministic walk (an LCG): prices around 100 with ties and gaps.
        let mut state = 7u64;
        let mut next = || {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((state >> 33) % 200) as f64 / 100.0 - 1.0
        };
        let mut close = Vec::with_capacity(n);
        let mut price = 100.0;
        for _ in 0..n {
            price += next();
            close.push((price * 100.0f64).round() / 100.0);
        }
        let open: Vec<f64> = close.iter().map(|c| c - 0.25).collect();
        let high: Vec<f64> = close.iter().map(|c| c + 0.5).collect();
        let low: Vec<f64> = close.iter().map(|c| c - 0.75).collect();
        let volume: Vec<f64> = (0..n).map(|i| 1000.0 + i as f64).collect();
        let ts: Vec<i64> = (0..n as i64).map(|i| i * 60_000_000_000).collect();
        SymbolBars::from_vecs(ts, open, high, low, close, volume)
    }

    #[test]
    fn earlier_values_are_read_newest_first_within_their_ring() {
        let mut ring = Earlier::new(3);
        assert!(ring.get(0).is_some_and(f64::is_nan));
        for x in 1..=5 {
            ring.push(f64::from(x));
        }
        assert_eq!(
            (ring.get(0), ring.get(1), ring.get(2), ring.get(3)),
            (Some(5.0), Some(4.0), Some(3.0), None)
        );
        ring.clear();
        assert!(ring.get(2).is_some_and(f64::is_nan));
        let mut none = Earlier::new(0);
        none.push(1.0);
        assert_eq!(none.get(0), None);
    }

    #[test]
    fn a_lookback_keeps_at_least_value_and_prev() {
        let mut studies = Studies::default();
        let id = studies
            .add_rolling(2, RollingKind::Mean(2), Source::Close, None)
            .unwrap();
        assert_eq!(studies.lookback(id).unwrap(), Some(2));
        let refused = studies.set_lookback(id, 1).unwrap_err().to_string();
        assert!(
            refused.contains("lookback = 1:") && refused.contains("lookback >= 2"),
            "{refused}"
        );
        studies.set_lookback(id, 6).unwrap();
        assert_eq!(studies.lookback(id).unwrap(), Some(6));
        assert_eq!(
            studies.back(id, 1, None, 5).unwrap().map(f64::is_nan),
            Some(true)
        );
        assert_eq!(studies.back(id, 1, None, 6).unwrap(), None);
        assert!(studies.set_lookback(id + 1, 3).is_err());
    }

    #[test]
    fn a_series_is_read_as_its_value_and_the_one_before_at_every_bar() {
        let (a, b) = (bars(6), bars(3));
        let values = vec![
            vec![1.5, f64::NAN, 3.0, -4.0, 5.25, 6.0],
            vec![7.0, 8.0, 9.5],
        ];
        let mut studies = Studies::default();
        let id = studies
            .add_series(&[&a, &b], SeriesValues::owned(values.clone()))
            .unwrap();
        for (s, column) in values.iter().enumerate() {
            assert!(studies
                .value_and_prev(id, s, None)
                .is_some_and(|(v, p)| v.is_nan() && p.is_nan()));
            for i in 0..column.len() {
                let (value, prev) = studies.value_and_prev(id, s, Some(i)).unwrap();
                let want_prev = if i == 0 { f64::NAN } else { column[i - 1] };
                assert_eq!(value.to_bits(), column[i].to_bits(), "symbol {s} bar {i}");
                assert_eq!(prev.to_bits(), want_prev.to_bits(), "symbol {s} bar {i}");
                assert_eq!(
                    value.to_bits(),
                    studies.value(id, s, Some(i)).unwrap().to_bits()
                );
                assert_eq!(
                    prev.to_bits(),
                    studies.prev(id, s, Some(i)).unwrap().to_bits()
                );
                let (v, p) = studies.pair_at(id, s, i);
                assert_eq!(
                    (v.to_bits(), p.to_bits()),
                    (value.to_bits(), prev.to_bits())
                );
            }
        }
    }

    /// `pair_at` of a statistic on a timeframe's candles is its value and previous value
    /// (read through the general path), and NaN for a study never declared.
    #[test]
    fn a_pair_at_a_bar_of_a_candles_statistic_is_its_value_and_prev() {
        let b = bars(40);
        let mut studies = Studies::default();
        let tf = studies
            .add_clock_timeframe(1, 5 * 60_000_000_000, 0, 8)
            .unwrap();
        let id = studies
            .add_rolling(1, RollingKind::Mean(2), Source::Close, Some(tf))
            .unwrap();
        let mut ready = 0;
        for i in 0..b.len() {
            studies.update(0, i, &b);
            let (v, p) = studies.pair_at(id, 0, i);
            let want = (
                studies.value(id, 0, Some(i)).unwrap(),
                studies.prev(id, 0, Some(i)).unwrap(),
            );
            assert_eq!(
                (v.to_bits(), p.to_bits()),
                (want.0.to_bits(), want.1.to_bits())
            );
            ready += usize::from(!v.is_nan() && !p.is_nan());
        }
        assert!(ready > 3, "candles completed and were read ({ready})");
        assert!(!studies.has(id + 1));
        let (v, p) = studies.pair_at(id + 1, 0, 3);
        assert!(v.is_nan() && p.is_nan());
    }

    /// `value_and_prev` of a base-bar statistic is `value` and `prev` read apart, at
    /// every bar a strategy could name: before the values kept (dropped with an earlier
    /// block, or before a reset), at the first kept one, inside them, and past the last
    /// one computed.
    #[test]
    fn a_pair_is_the_value_and_the_previous_value_at_every_bar() {
        let b = bars(300);
        let market = Market::new(vec!["X".into()], vec![b.clone()]).unwrap();
        let mut studies = Studies::default();
        let id = studies
            .add_rolling(1, RollingKind::Mean(4), Source::Close, None)
            .unwrap();
        let apart = |studies: &Studies, i| {
            let value = studies.value(id, 0, Some(i)).unwrap().to_bits();
            let prev = studies.prev(id, 0, Some(i)).unwrap().to_bits();
            (value, prev)
        };
        let mut checked = 0;
        for (from, reset_at) in [(0, None), (64, None), (128, Some(150)), (200, None)] {
            if let Some(r) = reset_at {
                studies.reset(id, 0, Some(r)).unwrap();
            }
            studies.compute_ahead(&market, &[from], 64);
            for i in 0..b.len() + 3 {
                let (value, prev) = studies.value_and_prev(id, 0, Some(i)).unwrap();
                assert_eq!(
                    (value.to_bits(), prev.to_bits()),
                    apart(&studies, i),
                    "bar {i}"
                );
                let (v, p) = studies.pair_at(id, 0, i);
                assert_eq!((v.to_bits(), p.to_bits()), apart(&studies, i), "bar {i}");
                checked += usize::from(!value.is_nan() && !prev.is_nan());
            }
        }
        assert!(
            checked > 100,
            "the values inside the buffer were read ({checked})"
        );
    }

    /// Base-bar statistics computed a block at a time read exactly (bit for bit) what
    /// bar-by-bar updates give: value, previous value and readiness at every bar,
    /// across block boundaries and after resets in the middle of a block; and the latest
    /// bar still reads the same once the next block is computed (a plan starts before the
    /// tick of its first bar, when another symbol's bar may be the latest).
    #[test]
    fn blocks_read_what_bar_by_bar_updates_give() {
        let b = bars(700);
        let market = Market::new(vec!["X".into()], vec![b.clone()]).unwrap();
        let kinds = [
            (RollingKind::Mean(10), Source::Close),
            (RollingKind::Sum(7), Source::Volume),
            (RollingKind::Std(5), Source::Close),
            (RollingKind::Max(4), Source::High),
            (RollingKind::Ema(6), Source::Open),
            (RollingKind::Rsi(5), Source::Close),
            (RollingKind::Atr(3), Source::Close),
        ];
        let resets = [5usize, 40, 41, 300, 517];
        let reading = |studies: &Studies, id, i| {
            let value = studies.value(id, 0, Some(i)).unwrap().to_bits();
            let prev = studies.prev(id, 0, Some(i)).unwrap().to_bits();
            (value, prev, studies.is_ready(id, 0, Some(i)).unwrap())
        };
        for block in [1, 2, 3, 16, 37, 256] {
            let mut studies = Studies::default();
            let ids: Vec<usize> = kinds
                .iter()
                .map(|&(k, src)| studies.add_rolling(1, k, src, None).unwrap())
                .collect();
            let mut reference: Vec<Rolling> = kinds
                .iter()
                .map(|&(k, src)| Rolling::new(k, src).unwrap())
                .collect();
            // As the engine: a plan of `block` bars when the last one is used up, and
            // again after a reset (its bars from the next on).
            let mut planned = 0;
            let mut latest = vec![None; kinds.len()];
            for i in 0..b.len() {
                let replanned = i == planned;
                if replanned {
                    planned = (i + block).min(b.len());
                }
                if studies.needs_computing(replanned) {
                    studies.compute_ahead(&market, &[i], block);
                }
                for (k, &seen) in latest.iter().enumerate() {
                    if let Some(seen) = seen {
                        assert_eq!(reading(&studies, ids[k], i - 1), seen, "block {block}");
                    }
                }
                studies.update(0, i, &b);
                let (o, h, l, c, v) = b.ohlcv(i);
                for (k, r) in reference.iter_mut().enumerate() {
                    r.update(o, h, l, c, v);
                    let id = ids[k];
                    let got = studies.value(id, 0, Some(i)).unwrap();
                    let prev = studies.prev(id, 0, Some(i)).unwrap();
                    let pair = studies.value_and_prev(id, 0, Some(i)).unwrap();
                    assert_eq!(
                        (pair.0.to_bits(), pair.1.to_bits()),
                        (got.to_bits(), prev.to_bits())
                    );
                    let at = studies.pair_at(id, 0, i);
                    assert_eq!(
                        (at.0.to_bits(), at.1.to_bits()),
                        (got.to_bits(), prev.to_bits())
                    );
                    assert_eq!(got.to_bits(), r.value().to_bits(), "{:?} bar {i}", kinds[k]);
                    assert_eq!(prev.to_bits(), r.prev().to_bits(), "{:?} bar {i}", kinds[k]);
                    assert_eq!(studies.is_ready(id, 0, Some(i)).unwrap(), r.is_ready());
                    if resets.contains(&i) && k % 2 == 0 {
                        studies.reset(id, 0, Some(i)).unwrap();
                        r.reset();
                        assert!(studies.value(id, 0, Some(i)).unwrap().is_nan());
                        assert!(studies.prev(id, 0, Some(i)).unwrap().is_nan());
                        let (v, p) = studies.value_and_prev(id, 0, Some(i)).unwrap();
                        assert!(v.is_nan() && p.is_nan());
                        assert!(!studies.is_ready(id, 0, Some(i)).unwrap());
                    }
                    latest[k] = Some(reading(&studies, id, i));
                }
            }
        }
    }
}
