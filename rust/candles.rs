//! Higher-timeframe candles for one symbol, built bar by bar with no look-ahead.
//!
//! Each base bar belongs to a bucket, given as its start `label` and its `end` (ns UTC):
//! either from the clock ([`clock_bucket`]: fixed periods from an origin) or precomputed
//! by the caller (e.g. exchange sessions in a timezone, computed in Python).
//!
//! Conventions a strategy can rely on:
//! * A candle is labelled by its bucket start. open = the first base bar's open,
//!   high = max, low = min, close = the last base bar's close, volume = sum.
//! * **When a candle completes** is decided from this symbol's own bars up to the current
//!   one — nothing later, nothing from other symbols. A bar starting at `ts` is taken to
//!   end at `ts + spacing`, where `spacing` is the greatest common divisor of the gaps
//!   between the symbol's bars so far (unknown before its second bar), read on the clock
//!   the bars keep: UTC, or the calendar's wall clock ([`WallClock`], the backtest's
//!   timezone), whichever gives the coarser spacing. Daily bars stamped at local
//!   midnight are 23 or 25 hours apart in UTC across a change of offset (daylight
//!   saving), which would make their spacing an hour; on the wall clock they stay a day
//!   apart, and such a bar ends at the next local midnight. The candle is complete, and
//!   visible in [`CandleSeries::last`] and friends:
//!   - with the bar that ends at or after the bucket end (its last bar by the spacing
//!     seen so far), or
//!   - else with the symbol's first bar of a later bucket (the bucket's final bars were
//!     missing, or the spacing was not yet known), or its first bar at or after the
//!     bucket end that belongs to no bucket ([`CandleSeries::observe_time`]).
//!
//!   Until then it is the [`CandleSeries::forming`] candle. The gcd never exceeds the
//!   smallest gap, so gaps in the data (missing bars) never make a candle complete
//!   early; it can only be too large while every gap so far is a multiple of a coarser
//!   step (e.g. 1-minute bars whose first gaps are all even).
//! * A completed candle is final. If a bar arrives for a bucket whose candle already
//!   completed (the symbol's bars turned out finer than every gap before), it starts a
//!   new candle of that bucket labelled by the bar's own timestamp: the late prices are
//!   neither lost nor written into a candle the strategy has already seen.
//! * A call can complete two candles: the previous forming one (a new bucket started)
//!   and the new one (its single bar also reaches its end). Both are returned, oldest
//!   first, and are visible after the call; the next bar's bucket is then forming.
//! * Empty buckets produce no candle: labels of consecutive candles may skip.
//!
//! Memory is bounded: a series keeps the last `capacity` completed candles in a ring.

use std::collections::VecDeque;
use std::ops::Deref;
use std::sync::Arc;

use crate::rolling::Rolling;

/// The bucket `(label, end)` of the instant `ts` for fixed periods counted from
/// `origin`: label = floor((ts − origin) / period) · period + origin, end = label +
/// period. Floors toward −∞, so timestamps before the origin (or 1970) are bucketed
/// like any other. `origin` 0 gives UTC epoch boundaries (whole minutes, hours, days).
///
/// # Panics
/// If `period <= 0`, or the bucket does not fit in i64 nanoseconds (years ±292).
pub fn clock_bucket(ts: i64, period: i64, origin: i64) -> (i64, i64) {
    assert!(
        period > 0,
        "a candle period must be positive, got {period} ns"
    );
    // i128: ts − origin can overflow i64 when they are far apart.
    let (ts, period, origin) = (ts as i128, period as i128, origin as i128);
    let label = origin + (ts - origin).div_euclid(period) * period;
    let fits = |t: i128| i64::try_from(t).expect("candle bucket outside the i64 nanosecond range");
    (fits(label), fits(label + period))
}

/// The bucket label of a base bar that belongs to no candle (e.g. outside the session).
pub const NO_BUCKET: i64 = i64::MIN;

/// One symbol's whole history fed through a [`CandleSeries`] bar by bar, as the engine
/// feeds it tick by tick: every candle that completed, and for each base bar which
/// candle it joined and how many had completed once it was fed. A function of the
/// candles computed once over all of them (`self.I(..., timeframe=)`) is then revealed
/// at each bar only as far as the candles complete there: nothing a bar sees comes from
/// a candle still forming.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct CandleHistory {
    /// The completed candles, oldest first (a final candle still forming at the last
    /// bar never completes and is not among them).
    pub candles: CandleColumns,
    /// Per base bar, the index in `candles` of the candle it joined (`candles.len()`
    /// for the final one still forming); -1 for a bar in no bucket.
    pub joined: Vec<i64>,
    /// Per base bar, how many candles had completed once the bar was fed.
    pub completed: Vec<i64>,
}

/// [`CandleHistory`] of the bars `ts` with columns `open`, `high`, `low`, `close`,
/// `volume` (each as long as `ts`), bar `i` of bucket `bucket(i)` ([`NO_BUCKET`] for
/// none), their spacing read on `clock` too. Bars must come in time order.
pub fn history(
    ts: &[i64],
    [open, high, low, close, volume]: [&[f64]; 5],
    clock: Arc<WallClock>,
    bucket: impl Fn(usize) -> (i64, i64),
) -> CandleHistory {
    let mut series = CandleSeries::with_clock(1, clock);
    let mut out = CandleHistory {
        candles: CandleColumns::default(),
        joined: Vec::with_capacity(ts.len()),
        completed: Vec::with_capacity(ts.len()),
    };
    for (i, &t) in ts.iter().enumerate() {
        let at = bucket(i);
        let done = series.feed(t, at, (open[i], high[i], low[i], close[i], volume[i]));
        for candle in done.iter() {
            out.candles.push(candle);
        }
        let count = out.candles.ts.len() as i64;
        // The bar's candle is the one forming after it, or else the one it completed
        // (every older candle completed before a newer one started).
        out.joined
            .push(match (at.0 == NO_BUCKET, series.forming.is_some()) {
                (true, _) => -1,
                (false, true) => count,
                (false, false) => count - 1,
            });
        out.completed.push(count);
    }
    out
}

/// One candle: its bucket `[ts, end)` and prices.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Candle {
    /// Bucket start (the label), ns UTC.
    pub ts: i64,
    /// Bucket end, ns UTC: the candle covers base bars starting in `[ts, end)`.
    pub end: i64,
    pub open: f64,
    pub high: f64,
    pub low: f64,
    pub close: f64,
    pub volume: f64,
}

impl Candle {
    /// Feeds this candle to a rolling cache as one bar: a rolling statistic of a higher
    /// timeframe is updated once per completed candle, never with the forming one.
    pub fn feed(&self, rolling: &mut Rolling) {
        rolling.update(self.open, self.high, self.low, self.close, self.volume);
    }

    fn merge(&mut self, high: f64, low: f64, close: f64, volume: f64) {
        self.high = self.high.max(high);
        self.low = self.low.min(low);
        self.close = close;
        self.volume += volume;
    }
}

/// Completed candles as columns, oldest first (copies, ready to become numpy arrays).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct CandleColumns {
    /// Labels (bucket starts), ns UTC.
    pub ts: Vec<i64>,
    /// Bucket ends, ns UTC.
    pub end: Vec<i64>,
    pub open: Vec<f64>,
    pub high: Vec<f64>,
    pub low: Vec<f64>,
    pub close: Vec<f64>,
    pub volume: Vec<f64>,
}

impl CandleColumns {
    /// Append one candle to every column.
    pub fn push(&mut self, candle: &Candle) {
        self.ts.push(candle.ts);
        self.end.push(candle.end);
        self.open.push(candle.open);
        self.high.push(candle.high);
        self.low.push(candle.low);
        self.close.push(candle.close);
        self.volume.push(candle.volume);
    }
}

/// The candles one [`CandleSeries::update`] completed: none, one or two, oldest first.
/// Dereferences to a slice: `for candle in series.update(..).iter()`.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Completed {
    candles: [Candle; 2],
    len: usize,
}

impl Completed {
    fn push(&mut self, candle: Candle) {
        self.candles[self.len] = candle;
        self.len += 1;
    }
}

impl Deref for Completed {
    type Target = [Candle];

    fn deref(&self) -> &[Candle] {
        &self.candles[..self.len]
    }
}

/// The candles of one symbol at one timeframe: the last `capacity` completed ones and
/// the forming one.
#[derive(Clone, Debug)]
pub struct CandleSeries {
    capacity: usize,
    completed: VecDeque<Candle>,
    total_completed: u64,
    forming: Option<Candle>,
    /// Bucket label of the forming candle (its `ts`, unless it holds late bars).
    forming_bucket: i64,
    /// Bucket label of the latest completed candle.
    completed_bucket: Option<i64>,
    /// The symbol's bar spacing known so far; see the module docs.
    spacing: BarSpacing,
    /// The calendar's wall clock, on which the spacing is read too (None: UTC, where
    /// there is nothing more to read).
    clock: Option<Arc<WallClock>>,
}

/// The calendar's wall clock: the UTC offset in force from each instant on (the
/// backtest's timezone, its daylight saving included), read where bars may be stamped on
/// local time. UTC by default.
#[derive(Clone, Debug, PartialEq)]
pub struct WallClock {
    /// The instant (ns UTC) from which each offset is in force, ascending; the first
    /// offset also holds before its start, and a sentinel `i64::MAX` closes the last.
    starts: Vec<i64>,
    /// The offsets (ns, local minus UTC), one per start.
    offsets: Vec<i64>,
    /// Every offset is 0: the wall clock is UTC and nothing is converted.
    utc: bool,
}

impl Default for WallClock {
    fn default() -> Self {
        WallClock::utc()
    }
}

impl WallClock {
    /// UTC: no offset, ever.
    pub fn utc() -> Self {
        WallClock {
            starts: vec![i64::MIN, i64::MAX],
            offsets: vec![0],
            utc: true,
        }
    }

    /// The offset `offsets[k]` (ns, local minus UTC) in force from instant `starts[k]` on
    /// (ns UTC, strictly ascending; the first offset also holds before `starts[0]`).
    pub fn new(starts: Vec<i64>, offsets: Vec<i64>) -> std::result::Result<Self, String> {
        if starts.is_empty() || starts.len() != offsets.len() {
            return Err(format!(
                "a wall clock needs one offset per start, at least one: got {} starts and {} offsets",
                starts.len(),
                offsets.len()
            ));
        }
        if let Some(k) = (1..starts.len()).find(|&k| starts[k] <= starts[k - 1]) {
            return Err(format!(
                "the wall clock's starts must be strictly ascending: start {k} ({}) is not after start {} ({})",
                starts[k],
                k - 1,
                starts[k - 1]
            ));
        }
        if starts[starts.len() - 1] == i64::MAX {
            return Err(
                "the wall clock's last start must be before the end of time (i64 max)".into(),
            );
        }
        // A day either way spans every offset a timezone has had (-12:00 to +14:00).
        const DAY: i64 = 86_400_000_000_000;
        if let Some(k) = offsets.iter().position(|o| o.abs() > DAY) {
            return Err(format!(
                "the wall clock's offset {k} ({} ns) is more than a day from UTC",
                offsets[k]
            ));
        }
        let utc = offsets.iter().all(|&o| o == 0);
        let mut starts = starts;
        starts[0] = i64::MIN;
        starts.push(i64::MAX);
        Ok(WallClock {
            starts,
            offsets,
            utc,
        })
    }

    /// The period (index of its offset) of the instant `ts`, looked for from period
    /// `from` on: instants come in time order, so the walk is short.
    #[inline]
    fn period_of(&self, ts: i64, mut from: usize) -> usize {
        while ts >= self.starts[from + 1] {
            from += 1;
        }
        from
    }

    /// The instant (ns UTC) at which the wall clock reads `wall`, looked for from
    /// period `from` on. A wall time read twice (the hour repeated when clocks go back)
    /// gives the later instant, one skipped (clocks going forward) the first instant
    /// after it, the change itself: a bar taken to end there never ends early.
    fn instant(&self, wall: i64, from: usize) -> i64 {
        // The last period whose offset puts `wall` at or after the period's start.
        let mut k = from;
        let mut at = wall.saturating_sub(self.offsets[k]);
        while k + 1 < self.offsets.len() {
            let next = wall.saturating_sub(self.offsets[k + 1]);
            if next < self.starts[k + 1] {
                break;
            }
            (k, at) = (k + 1, next);
        }
        // Past that period's end: the wall time was skipped.
        at.min(self.starts[k + 1])
    }
}

/// The spacing of one symbol's bars as known from its bars so far: the greatest common
/// divisor of the gaps between them (never more than the smallest gap), in UTC and, with
/// a wall clock, on it; the coarser of the two is the bars' own.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
struct BarSpacing {
    last_ts: Option<i64>,
    /// The gcd of the gaps in UTC.
    gcd: Option<i64>,
    /// The same bars on the calendar's wall clock (left at its default in UTC).
    wall: WallSpacing,
}

/// A symbol's bar spacing on the calendar's wall clock.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
struct WallSpacing {
    /// The last bar's wall time.
    last: i64,
    /// The gcd of the gaps on the wall clock (a gap of none or less, the hour clocks go
    /// back, left out).
    gcd: Option<i64>,
    /// The wall clock's period of the last bar.
    period: usize,
    /// The bars keep the wall clock: its gcd is coarser than UTC's.
    kept: bool,
}

impl BarSpacing {
    /// Takes the bar at `ts` into account (bars come in time order), on the wall `clock`
    /// too when there is one.
    // Always inlined: the market phase calls it per bar and timeframe, where a call costs
    // about as much as the gcd. The wall clock's part is out of line: UTC runs skip it.
    #[inline(always)]
    fn observe(&mut self, ts: i64, clock: Option<&WallClock>) {
        if let Some(last) = self.last_ts {
            let gap = ts.saturating_sub(last);
            if gap > 0 {
                self.gcd = Some(self.gcd.map_or(gap, |g| gcd(g, gap)));
            }
        }
        if let Some(clock) = clock {
            self.observe_wall(ts, clock);
        }
        self.last_ts = Some(ts);
    }

    #[inline(never)]
    fn observe_wall(&mut self, ts: i64, clock: &WallClock) {
        let w = &mut self.wall;
        w.period = clock.period_of(ts, w.period);
        // Wrapping: no bar is within a day of i64's ends (years 1678 and 2262), and a gap
        // that wrapped would be left out as none.
        let wall = ts.wrapping_add(clock.offsets[w.period]);
        let gap = wall.wrapping_sub(w.last);
        if self.last_ts.is_some() && gap > 0 {
            w.gcd = Some(w.gcd.map_or(gap, |g| gcd(g, gap)));
        }
        w.last = wall;
        w.kept = matches!((self.gcd, w.gcd), (Some(u), Some(g)) if g > u);
    }

    /// The spacing known so far (None before the second bar), on the bars' own clock.
    fn get(&self) -> Option<i64> {
        if self.wall.kept {
            self.wall.gcd
        } else {
            self.gcd
        }
    }

    /// The instant the bar at `ts`, the last observed, is taken to end, if the spacing
    /// is known: a spacing later on the clock the bars keep.
    #[inline(always)]
    fn bar_end(&self, ts: i64, clock: Option<&WallClock>) -> Option<i64> {
        match clock {
            Some(clock) if self.wall.kept => Some(self.wall.end(clock)),
            _ => self.gcd.map(|g| ts.saturating_add(g)),
        }
    }
}

impl WallSpacing {
    /// The instant the last bar ends on the wall clock (its spacing is known).
    #[inline(never)]
    fn end(&self, clock: &WallClock) -> i64 {
        let g = self.gcd.expect("a wall clock's spacing is known once kept");
        clock.instant(self.last.saturating_add(g), self.period)
    }
}

#[inline(always)]
fn gcd(mut a: i64, mut b: i64) -> i64 {
    // Regular bars: the gap is the spacing already, and a division costs tens of cycles.
    if a == b {
        return a;
    }
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

impl CandleSeries {
    /// An empty series keeping at most `capacity` completed candles, however long the run.
    ///
    /// # Panics
    /// If `capacity` is 0.
    pub fn new(capacity: usize) -> Self {
        Self::with_clock(capacity, Arc::new(WallClock::utc()))
    }

    /// [`new`](Self::new), the bars' spacing read on the calendar's wall `clock` too
    /// (see the module docs).
    ///
    /// # Panics
    /// If `capacity` is 0.
    pub fn with_clock(capacity: usize, clock: Arc<WallClock>) -> Self {
        let clock = (!clock.utc).then_some(clock);
        assert!(
            capacity >= 1,
            "a candle series must keep at least 1 completed candle"
        );
        Self {
            capacity,
            completed: VecDeque::new(),
            total_completed: 0,
            forming: None,
            forming_bucket: i64::MIN,
            completed_bucket: None,
            spacing: BarSpacing::default(),
            clock,
        }
    }

    /// Feeds the symbol's base bar starting at `ts`, of bucket `[label, end)`. Bars must
    /// come in time order (labels of buckets never go back).
    ///
    /// Returns the candles this call completed (see the module docs for when).
    // One argument per column, as the engine holds them: a struct per call would be
    // built only to be taken apart again.
    #[allow(clippy::too_many_arguments)]
    pub fn update(
        &mut self,
        ts: i64,
        label: i64,
        end: i64,
        open: f64,
        high: f64,
        low: f64,
        close: f64,
        volume: f64,
    ) -> Completed {
        self.spacing.observe(ts, self.clock.as_deref());
        let mut done = Completed::default();
        match &mut self.forming {
            Some(forming) if self.forming_bucket == label => {
                debug_assert_eq!(forming.end, end, "bars of one bucket disagree on its end");
                forming.merge(high, low, close, volume);
            }
            _ => {
                if let Some(previous) = self.forming.take() {
                    debug_assert!(
                        label > self.forming_bucket,
                        "bucket labels went back in time"
                    );
                    self.complete(previous, self.forming_bucket, &mut done);
                }
                // A bar of a bucket that already completed (see the module docs) opens
                // a candle of its own, labelled by the bar.
                let late = self.completed_bucket == Some(label);
                debug_assert!(
                    late || self.completed_bucket.is_none_or(|last| label > last),
                    "a bar arrived for bucket {label}, older than the last completed one"
                );
                self.forming_bucket = label;
                self.forming = Some(Candle {
                    ts: if late { ts } else { label },
                    end,
                    open,
                    high,
                    low,
                    close,
                    volume,
                });
            }
        }
        if self
            .spacing
            .bar_end(ts, self.clock.as_deref())
            .is_some_and(|bar_end| bar_end >= end)
        {
            if let Some(forming) = self.forming.take() {
                self.complete(forming, label, &mut done);
            }
        }
        done
    }

    /// Feeds the symbol's base bar starting at `ts` with its bucket `(label, end)` and
    /// its `(open, high, low, close, volume)`: [`update`](Self::update), or
    /// [`observe_time`](Self::observe_time) when `label` is [`NO_BUCKET`] (the bar
    /// belongs to no candle). The engine's market phase and [`history`] feed bars
    /// through here alike.
    #[inline]
    pub fn feed(
        &mut self,
        ts: i64,
        (label, end): (i64, i64),
        (open, high, low, close, volume): (f64, f64, f64, f64, f64),
    ) -> Completed {
        if label == NO_BUCKET {
            // Outside any bucket: no prices join a candle, but time has passed.
            self.observe_time(ts)
        } else {
            self.update(ts, label, end, open, high, low, close, volume)
        }
    }

    /// A base bar of the symbol that belongs to no bucket (e.g. outside the session)
    /// still tells the time: once its `ts` reaches the forming candle's end, that candle
    /// is complete. It also counts for the symbol's bar spacing.
    pub fn observe_time(&mut self, ts: i64) -> Completed {
        self.spacing.observe(ts, self.clock.as_deref());
        let mut done = Completed::default();
        if self.forming.is_some_and(|f| ts >= f.end) {
            let forming = self.forming.take().expect("checked above");
            self.complete(forming, self.forming_bucket, &mut done);
        }
        done
    }

    /// The symbol's bar spacing known so far (the gcd of its gaps on the clock the bars
    /// keep; None before its second bar).
    pub fn spacing(&self) -> Option<i64> {
        self.spacing.get()
    }

    fn complete(&mut self, candle: Candle, bucket: i64, done: &mut Completed) {
        self.completed_bucket = Some(bucket);
        if self.completed.len() == self.capacity {
            self.completed.pop_front();
        }
        self.completed.push_back(candle);
        self.total_completed += 1;
        done.push(candle);
    }

    /// How many completed candles are retained (at most the capacity).
    pub fn completed_len(&self) -> usize {
        self.completed.len()
    }

    /// How many candles have ever completed, retained or not.
    pub fn total_completed(&self) -> u64 {
        self.total_completed
    }

    /// The last `count` completed candles (all retained ones if fewer), oldest first.
    pub fn last(&self, count: usize) -> CandleColumns {
        let take = count.min(self.completed.len());
        let mut columns = CandleColumns {
            ts: Vec::with_capacity(take),
            end: Vec::with_capacity(take),
            open: Vec::with_capacity(take),
            high: Vec::with_capacity(take),
            low: Vec::with_capacity(take),
            close: Vec::with_capacity(take),
            volume: Vec::with_capacity(take),
        };
        for candle in self.completed.range(self.completed.len() - take..) {
            columns.push(candle);
        }
        columns
    }

    /// [`last`](Self::last), followed by the forming candle when `forming` is true and
    /// one is forming.
    pub fn columns(&self, count: usize, forming: bool) -> CandleColumns {
        let mut columns = self.last(count);
        if let Some(candle) = self.forming.filter(|_| forming) {
            columns.push(&candle);
        }
        columns
    }

    /// The candle still forming (its bucket has bars but has not completed), if any.
    pub fn forming(&self) -> Option<Candle> {
        self.forming
    }

    /// The latest completed candle, if any.
    pub fn last_completed(&self) -> Option<Candle> {
        self.completed.back().copied()
    }

    /// The retained completed candle at `index`, 0 being the oldest retained. Indices
    /// shift down by one each time a full ring evicts its oldest candle.
    pub fn get(&self, index: usize) -> Option<Candle> {
        self.completed.get(index).copied()
    }

    /// Index (as in [`CandleSeries::get`]) of the latest retained completed candle
    /// labelled at or before `ts`, by binary search: the candle containing `ts` when
    /// `ts < end`, else the one before an empty bucket or the forming candle holding
    /// `ts`. None if `ts` is before the oldest retained candle (or none is retained).
    pub fn index_at(&self, ts: i64) -> Option<usize> {
        self.completed
            .partition_point(|candle| candle.ts <= ts)
            .checked_sub(1)
    }
}

#[cfg(test)]
#[path = "candles_tests.rs"]
mod tests;
