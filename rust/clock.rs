//! Clock: walks the union timeline and says which symbols have a bar at each tick.
//!
//! Two bitmaps: the front one is read during a tick (`has_data` is one bit test); the back
//! one is built for the next tick at the barrier (`prepare`), while the front one still
//! answers for the tick being closed (the barrier's trade-on-close fills ask it), and the
//! two swap when the next tick begins (`begin`). Building the back map advances nothing:
//! each symbol's cursor moves only in the market phase.
//!
//! The back maps are copied from a plan of the next ticks (up to 1,024), made in one pass
//! over each symbol's times when a tick leaves the previous plan: one stream of times per
//! symbol at a time, where asking every symbol at every tick reads all their columns at
//! once. The maps depend on the market alone, so a market keeps them for its whole
//! timeline once made (`market_maps`, where they are small beside the times): the plans of
//! every run on it then read them, with no pass over the times, wherever each cursor
//! stands where taking every bar at its tick leaves it (else the plan is made as before).
//! A plan holds times only, no prices: the engine computes the base-bar statistics of the
//! next bars then (`Studies::compute_ahead`), each read only from its own bar on.

use crate::market::{prefetch, Market, PREFETCH_AHEAD};

/// Nanoseconds in a UTC day: the one definition of the core.
pub const NANOS_PER_DAY: i64 = 86_400 * NANOS_PER_SECOND;
pub const NANOS_PER_SECOND: i64 = 1_000_000_000;

/// Nanoseconds since the epoch as an ISO-8601 UTC string (for messages: the
/// core's errors name times so, and the bindings' notes).
pub fn iso_time(ns: i64) -> String {
    if ns == i64::MIN {
        return "start-up (before the first tick)".into();
    }
    let days = ns.div_euclid(NANOS_PER_DAY);
    let nanos = ns.rem_euclid(NANOS_PER_SECOND);
    let sod = ns.rem_euclid(NANOS_PER_DAY) / NANOS_PER_SECOND;
    // Civil date from days since 1970-01-01 (proleptic Gregorian).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    let frac = if nanos == 0 {
        String::new()
    } else {
        format!(".{nanos:09}")
    };
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}{frac} UTC",
        sod / 3600,
        sod % 3600 / 60,
        sod % 60
    )
}

/// Whether tick `t` of `timeline` ends a trading day: as `session_end` says (the
/// backtest's timezone, computed by the caller), else at the last tick of each UTC day.
/// The one rule for equity samples and day orders.
pub fn ends_day(timeline: &[i64], session_end: Option<&[bool]>, t: usize) -> bool {
    match session_end {
        Some(ends) => ends[t],
        None => {
            t + 1 == timeline.len()
                || timeline[t].div_euclid(NANOS_PER_DAY)
                    != timeline[t + 1].div_euclid(NANOS_PER_DAY)
        }
    }
}

/// The first tick at or after `from` that ends a trading day by `ends_day`'s rule
/// (`timeline.len()` when none): found by a search, not by asking each tick, for drivers
/// that visit only some ticks.
pub fn next_day_end(timeline: &[i64], session_end: Option<&[bool]>, from: usize) -> usize {
    match session_end {
        Some(ends) => ends
            .get(from..)
            .and_then(|rest| rest.iter().position(|&e| e))
            .map_or(timeline.len(), |k| from + k),
        None => {
            let Some(&ts) = timeline.get(from) else {
                return timeline.len();
            };
            // The day's last tick: the one before the first tick of a later UTC day, which
            // is a day's ticks on (hundreds of minutes): galloped to, not bisected out
            // of the rest of the timeline, whose far ticks would each wait for memory.
            let next_day = next_utc_day(ts);
            gallop(timeline, from, |x| x < next_day) - 1
        }
    }
}

/// The start of the UTC day after the one holding `ts`: a UTC day's last tick is the one
/// before the first tick at or after it.
fn next_utc_day(ts: i64) -> i64 {
    (ts.div_euclid(NANOS_PER_DAY) + 1).saturating_mul(NANOS_PER_DAY)
}

/// The ticks that end trading days, found in turn by a run that visits only some ticks
/// (see `next_day_end`). A day most often has as many ticks as the day before: its end is
/// first looked for there (one line of times, where a search reads a dozen far apart).
pub struct DayEnds<'a> {
    timeline: &'a [i64],
    session_end: Option<&'a [bool]>,
    /// How many ticks the last day found had (1 before any).
    last_len: usize,
}

impl<'a> DayEnds<'a> {
    pub fn new(timeline: &'a [i64], session_end: Option<&'a [bool]>) -> Self {
        DayEnds {
            timeline,
            session_end,
            last_len: 1,
        }
    }

    /// The first tick at or after `from` that ends a trading day (`timeline.len()`: none),
    /// as `next_day_end` finds it.
    pub fn from(&mut self, from: usize) -> usize {
        let end = match (self.session_end, self.timeline.get(from)) {
            (None, Some(&ts)) => {
                let next_day = next_utc_day(ts);
                let guess = from + self.last_len - 1;
                let ends_there = |g: usize| {
                    self.timeline.get(g).is_some_and(|&x| x < next_day)
                        && self.timeline.get(g + 1).is_none_or(|&x| x >= next_day)
                };
                if ends_there(guess) {
                    guess
                } else {
                    next_day_end(self.timeline, None, from)
                }
            }
            _ => next_day_end(self.timeline, self.session_end, from),
        };
        if end < self.timeline.len() {
            self.last_len = end + 1 - from;
        }
        end
    }
}

/// The first index at or after `from` whose time is not `before` (sorted times), found
/// by galloping from `from`: for a place a few steps away, as the places sought are.
pub fn gallop(times: &[i64], from: usize, before: impl Fn(i64) -> bool) -> usize {
    // Everything in times[from..lo] is before; blocks of doubling length are skipped.
    let (mut lo, mut len) = (from, 1);
    while lo + len <= times.len() && before(times[lo + len - 1]) {
        lo += len;
        len *= 2;
    }
    let hi = (lo + len).min(times.len());
    lo + times[lo..hi].partition_point(|&x| before(x))
}

/// Bytes of plan kept per symbol and statistic ahead of the ticks (see `plan_ticks`).
const PLAN_BUDGET: usize = 4 << 20;

/// How many ticks one plan covers for `symbols` symbols: about `PLAN_BUDGET` bytes of f64
/// per statistic over all symbols (the studies compute their values a plan at a time),
/// within [16, 1024] ticks (longer plans spread the cost of starting one; beyond ~1,000
/// ticks the values no longer stay in cache).
pub fn plan_ticks(symbols: usize) -> usize {
    (PLAN_BUDGET / 8 / symbols.max(1)).clamp(16, 1024)
}

pub struct Clock {
    words: usize,
    front: Vec<u64>,
    back: Vec<u64>,
    /// Index into the market timeline of the current tick (`usize::MAX` before the first).
    tick: usize,
    symbols: usize,
    /// Per symbol, the index of the next bar not yet processed; then cursors for the rest
    /// of the last map word's bits, which are never set (so a walk over a map's bits
    /// indexes cursors in bounds without a check per bit).
    next_bar: Vec<usize>,
    /// The bitmaps of ticks `planned_from..planned_to`, `words` per tick: a copy of the
    /// market's maps where they serve (`make_plan`), else made here from the times.
    plan: Vec<u64>,
    planned_from: usize,
    planned_to: usize,
    /// Whether the market's maps may be used (tests compare both ways).
    market_maps_allowed: bool,
    /// Ticks per plan.
    span: usize,
    /// Whether the latest `prepare` made a new plan.
    replanned: bool,
}

impl Clock {
    pub fn new(market: &Market) -> Self {
        let n = market.symbol_count();
        let words = n.div_ceil(64);
        Clock {
            words,
            front: vec![0; words],
            back: vec![0; words],
            tick: usize::MAX,
            symbols: n,
            next_bar: vec![0; words * 64],
            plan: Vec::new(),
            planned_from: 0,
            planned_to: 0,
            market_maps_allowed: true,
            span: plan_ticks(n),
            replanned: false,
        }
    }

    /// Index of the current tick in the timeline.
    #[inline]
    pub fn tick(&self) -> usize {
        self.tick
    }

    /// Does `symbol` have a bar at the current tick?
    #[inline]
    pub fn has_data(&self, symbol: usize) -> bool {
        (self.front[symbol >> 6] >> (symbol & 63)) & 1 == 1
    }

    /// The front bitmap (one bit per symbol, symbol 0 in the lowest bit of word 0).
    pub fn bitmap(&self) -> &[u64] {
        &self.front
    }

    /// Fill the back bitmap with the symbols whose next unprocessed bar is at tick `t`.
    /// Returns false when `t` is past the end of the timeline.
    ///
    /// The bitmaps come from a plan of the next ticks, made when `t` leaves the current
    /// one: every symbol with a bar at a tick takes it (`take_bar`) before the next tick
    /// is prepared, so the cursors at the start of a plan decide its ticks. A new market
    /// (the next window of a streamed run) needs `forget_plan` first.
    #[inline]
    pub fn prepare(&mut self, market: &Market, t: usize) -> bool {
        if t >= market.timeline().len() {
            self.replanned = false;
            return false;
        }
        self.replanned = !(self.planned_from..self.planned_to).contains(&t);
        if self.replanned {
            self.make_plan(market, t);
        }
        let words = self.words;
        let at = (t - self.planned_from) * words;
        if words == 1 {
            // Up to 64 symbols (the usual case): one word, no copy of a slice.
            self.back[0] = self.plan[at];
        } else {
            self.back.copy_from_slice(&self.plan[at..at + words]);
        }
        true
    }

    /// Whether the latest `prepare` made a new plan (what the studies compute ahead for).
    #[inline]
    pub fn replanned(&self) -> bool {
        self.replanned
    }

    /// Per symbol, the run index of its next bar (the first not yet processed).
    pub fn next_bars(&self) -> &[usize] {
        &self.next_bar[..self.symbols]
    }

    /// Ticks per plan: a symbol has at most that many bars on one.
    pub fn plan_span(&self) -> usize {
        self.span
    }

    /// Plans of `ticks` ticks (tests: plans end at many places).
    #[cfg(test)]
    pub(crate) fn set_plan_ticks(&mut self, ticks: usize) {
        self.span = ticks.max(1);
        self.forget_plan();
    }

    /// Whether plans may be the market's maps (tests: the same bitmaps either way).
    #[cfg(test)]
    pub(crate) fn allow_market_maps(&mut self, allowed: bool) {
        self.market_maps_allowed = allowed;
        self.forget_plan();
    }

    /// Drop the plan: the market changes (a streamed run's next window).
    pub fn forget_plan(&mut self) {
        self.planned_from = 0;
        self.planned_to = 0;
    }

    /// The plan of the ticks from `from` on: the market's maps where it has them and every
    /// cursor stands at its first bar from tick `from` on (its bars before that tick taken,
    /// none after it: what taking each bar at its tick leaves); else made here. Those maps
    /// are copied (a plan's rows are a few kilobytes): each tick then reads its row from the
    /// plan alike, with no question about where the plan came from.
    #[inline(never)]
    fn make_plan(&mut self, market: &Market, from: usize) {
        let timeline = market.timeline();
        let to = (from + self.span).min(timeline.len());
        self.planned_from = from;
        self.planned_to = to;
        let words = self.words;
        self.plan.clear();
        if let Some(maps) = market
            .tick_maps(market_maps)
            .filter(|_| self.market_maps_allowed && self.cursors_at(market, timeline[from]))
        {
            self.plan.extend_from_slice(&maps[from * words..to * words]);
            return;
        }
        let ticks = &timeline[from..to];
        self.plan.resize(ticks.len() * words, 0);
        let symbols = self.symbols;
        for s in 0..symbols {
            // Cursors count the symbol's bars over the whole run; a streamed window holds
            // them from `base` on (a cursor is never behind it: wrapping makes that miss).
            let bars = times_from(market, s, self.next_bar[s]);
            if s + 1 < symbols {
                // The next symbol's first times, while this one's are placed.
                let after = times_from(market, s + 1, self.next_bar[s + 1]);
                for i in (0..PREFETCH_AHEAD).step_by(8) {
                    prefetch(after, i);
                }
            }
            place(bars, ticks, &mut self.plan[s >> 6..], words, 1 << (s & 63));
        }
    }

    /// Whether every symbol's cursor is at its first bar at or after `time` (or past its
    /// last bar, all of them before `time`).
    fn cursors_at(&self, market: &Market, time: i64) -> bool {
        self.next_bars().iter().enumerate().all(|(s, &next)| {
            let ts = &market.bars(s).ts[..];
            let Some(j) = next.checked_sub(market.base(s)).filter(|&j| j <= ts.len()) else {
                return false;
            };
            let before = j.checked_sub(1).is_none_or(|i| ts[i] < time);
            before && ts.get(j).is_none_or(|&x| x >= time)
        })
    }

    /// Start tick `t`: the back bitmap prepared for it becomes the front one.
    pub fn begin(&mut self, t: usize) {
        std::mem::swap(&mut self.front, &mut self.back);
        self.tick = t;
    }

    /// `prepare` then `begin`: for walking the timeline without a barrier in between.
    pub fn advance_to(&mut self, market: &Market, t: usize) -> bool {
        let more = self.prepare(market, t);
        if more {
            self.begin(t);
        }
        more
    }

    /// Move `symbol`'s cursor onto its bar at this tick; returns that bar's index.
    #[inline]
    pub fn take_bar(&mut self, symbol: usize) -> usize {
        let i = self.next_bar[symbol];
        self.next_bar[symbol] = i + 1;
        i
    }

    /// `take_bar` for every symbol with a bar at this tick, listing them in `active`
    /// (ascending): one walk over the front map does both, with no iterator between the
    /// bits and the list (what the bare loop pays per symbol-bar): a bit's cursor is found
    /// in its word's 64 (`next_bar` has one for every bit of the map, so no bounds check).
    #[inline]
    pub fn take_bars(&mut self, active: &mut Vec<usize>) {
        active.clear();
        // Room for a symbol per bit of the map (once: the list keeps it from tick to tick).
        active.reserve(self.next_bar.len());
        let slots = active.spare_capacity_mut();
        let mut taken = 0;
        for (w, (&word, cursors)) in self
            .front
            .iter()
            .zip(self.next_bar.chunks_exact_mut(64))
            .enumerate()
        {
            let mut bits = word;
            while bits != 0 {
                let b = bits.trailing_zeros() as usize & 63;
                bits &= bits - 1;
                cursors[b] += 1;
                // SAFETY: `slots` has room for a symbol per bit of the map (reserved above,
                // the list cleared), and each bit is listed once.
                unsafe { slots.get_unchecked_mut(taken).write(w * 64 + b) };
                taken += 1;
            }
        }
        // SAFETY: the first `taken` slots were written just above.
        unsafe { active.set_len(taken) };
    }

    /// `take_bars` without the list: only the cursors move (a tick nobody visits).
    #[inline]
    pub fn take_bars_unlisted(&mut self) {
        for (&word, cursors) in self.front.iter().zip(self.next_bar.chunks_exact_mut(64)) {
            let mut bits = word;
            while bits != 0 {
                cursors[bits.trailing_zeros() as usize & 63] += 1;
                bits &= bits - 1;
            }
        }
    }

    /// Index of `symbol`'s bar at this tick, once taken (`take_bar`, `take_bars`).
    #[inline]
    pub fn taken_bar(&self, symbol: usize) -> usize {
        self.next_bar[symbol] - 1
    }

    /// Index of `symbol`'s latest processed bar, if it has had one.
    #[inline]
    pub fn current_bar(&self, symbol: usize) -> Option<usize> {
        self.next_bar[symbol].checked_sub(1)
    }

    /// Symbols with a bar at this tick, ascending: iterates set bits of the front map.
    pub fn active(&self) -> ActiveSymbols<'_> {
        ActiveSymbols::of(&self.front[..self.words])
    }
}

/// Ticks per block when the market's maps are made (as a plan's: one block of the
/// timeline stays in cache while each symbol's bars are placed on it).
const MAPS_BLOCK: usize = 1024;

/// The maps of who has a bar at each tick of `market`'s whole timeline, for every run on
/// it (`Market::tick_maps`): the plans then read them, where each run made its own from
/// the symbols' times. Made as plans are (a block of ticks, each symbol's bars placed on
/// it in turn), each symbol from its first bar on the timeline (a streamed window's kept
/// past is before it). Kept where they are small beside the times (an eighth of their
/// bytes, or under 64 KB): one bit per symbol and tick, where a time is 64 bits per bar.
pub(crate) fn market_maps(market: &Market) -> Option<Vec<u64>> {
    let timeline = market.timeline();
    let symbols = market.symbol_count();
    let words = symbols.div_ceil(64);
    let size = timeline.len().checked_mul(words)?;
    if size > (market.bar_count() / 8).max(8 << 10) {
        return None;
    }
    let first = *timeline.first()?;
    let mut next: Vec<usize> = (0..symbols)
        .map(|s| market.bars(s).ts.partition_point(|&x| x < first))
        .collect();
    let mut maps = vec![0u64; size];
    for from in (0..timeline.len()).step_by(MAPS_BLOCK) {
        let ticks = &timeline[from..(from + MAPS_BLOCK).min(timeline.len())];
        let rows = &mut maps[from * words..];
        for s in 0..symbols {
            let bars = market.bars(s).ts.get(next[s]..).unwrap_or_default();
            if let Some(after) = next
                .get(s + 1)
                .and_then(|&j| market.bars(s + 1).ts.get(j..))
            {
                for i in (0..PREFETCH_AHEAD).step_by(8) {
                    prefetch(after, i);
                }
            }
            next[s] += place(bars, ticks, &mut rows[s >> 6..], words, 1 << (s & 63));
        }
    }
    Some(maps)
}

/// `symbol`'s times from its bar with run index `next` on (none if the market does not
/// hold it).
#[inline]
fn times_from(market: &Market, symbol: usize, next: usize) -> &[i64] {
    let first = next.wrapping_sub(market.base(symbol));
    market.bars(symbol).ts.get(first..).unwrap_or_default()
}

/// Set `bit` in the row of each tick (`rows[k * words]` for `ticks[k]`) that one of `bars`
/// falls on, the bars in order from the first; returns how many were placed. A bar whose
/// time is no tick of `ticks` (after the last, before the first, or a repeated time)
/// ends the placing: never at a tick (as when each tick asked), and nor are the bars
/// after it.
///
/// Eight bars at a time where they fall on the next eight ticks (a symbol with a bar at
/// most ticks: one comparison of eight times), else one at a time with a search over the
/// ticks it has no bar at: the same bits either way.
fn place(bars: &[i64], ticks: &[i64], rows: &mut [u64], words: usize, bit: u64) -> usize {
    let (mut j, mut k, mut hinted) = (0, 0, 0);
    while j < bars.len() {
        if j >= hinted {
            prefetch(bars, j + PREFETCH_AHEAD);
            hinted = j + 8;
        }
        if let (Some(eight), Some(next)) = (bars.get(j..j + 8), ticks.get(k..k + 8)) {
            let differ = eight.iter().zip(next).fold(0, |d, (x, y)| d | (x ^ y));
            if differ == 0 {
                if words == 1 {
                    for row in &mut rows[k..k + 8] {
                        *row |= bit;
                    }
                } else {
                    for row in rows[k * words..].iter_mut().step_by(words).take(8) {
                        *row |= bit;
                    }
                }
                (j, k) = (j + 8, k + 8);
                continue;
            }
        }
        let x = bars[j];
        if ticks.get(k) != Some(&x) {
            // Mostly a tick or two without a bar: step over them; a search for longer
            // gaps (a symbol trading less often than the others).
            let rest = ticks.get(k..).unwrap_or_default();
            let gap = rest.iter().take(16).take_while(|&&y| y < x).count();
            k += gap;
            if gap == 16 {
                k += ticks[k..].partition_point(|&y| y < x);
            }
            if ticks.get(k) != Some(&x) {
                return j;
            }
        }
        rows[k * words] |= bit;
        (j, k) = (j + 1, k + 1);
    }
    bars.len()
}

/// Iterator over the set bits of a bitmap.
pub struct ActiveSymbols<'a> {
    words: &'a [u64],
    word: usize,
    bits: u64,
}

impl<'a> ActiveSymbols<'a> {
    /// The set bits of `words`, ascending (symbol 0 is word 0's lowest bit).
    pub fn of(words: &'a [u64]) -> Self {
        ActiveSymbols {
            words,
            word: 0,
            bits: words.first().copied().unwrap_or(0),
        }
    }
}

impl Iterator for ActiveSymbols<'_> {
    type Item = usize;

    #[inline]
    fn next(&mut self) -> Option<usize> {
        loop {
            if self.bits != 0 {
                let bit = self.bits.trailing_zeros() as usize;
                self.bits &= self.bits - 1;
                return Some(self.word * 64 + bit);
            }
            self.word += 1;
            if self.word >= self.words.len() {
                return None;
            }
            self.bits = self.words[self.word];
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::market::SymbolBars;
    use crate::test_draws::draws;

    fn at(ts: &[i64]) -> SymbolBars {
        let n = ts.len();
        SymbolBars::from_vecs(
            ts.to_vec(),
            vec![1.0; n],
            vec![1.0; n],
            vec![1.0; n],
            vec![1.0; n],
            vec![1.0; n],
        )
    }

    /// Each tick's map holds exactly the symbols with a bar at that tick, whatever the
    /// plan's length and whether plans are the market's maps or made per run: symbols with
    /// a bar at every tick (placed eight at a time), short and long gaps (stepped over,
    /// searched), a late start, an early end and a single bar, over two map words. A
    /// symbol whose bar is not taken at its tick (what the engine never does) is then seen
    /// alike both ways: the plan made from the cursors leaves it out from the next plan on.
    #[test]
    fn plans_place_every_bar_at_its_tick() {
        let mut next = draws(0x853c_49e6_748f_ea9b);
        let minutes = 700i64;
        let mut times: Vec<Vec<i64>> = vec![
            (0..minutes).collect(),
            (0..minutes).filter(|m| m % 9 != 4).collect(),
            (0..minutes).filter(|m| !(100..140).contains(m)).collect(),
            (0..minutes).filter(|m| m % 37 == 0).collect(),
            (250..minutes).collect(),
            (0..333).collect(),
            vec![421],
        ];
        // Symbols missing a pseudo-random 2%, 20% and 60% of the minutes.
        for missing in [2, 20, 60] {
            times.push((0..minutes).filter(|_| next() % 100 >= missing).collect());
        }
        // Up to 70 symbols: the maps take two words.
        while times.len() < 70 {
            let k = times.len() % 10;
            times.push(times[k].clone());
        }
        let names = (0..times.len()).map(|s| format!("S{s:02}")).collect();
        let m = Market::new(names, times.iter().map(|t| at(t)).collect()).unwrap();
        assert!(m.tick_maps(market_maps).is_some());
        for span in [1, 3, 8, 9, 16, 17, 64, 1024] {
            for (maps, skip) in [
                (true, None),
                (false, None),
                (true, Some(500)),
                (false, Some(500)),
            ] {
                let mut c = Clock::new(&m);
                c.set_plan_ticks(span);
                c.allow_market_maps(maps);
                let mut t = 0;
                let mut skipped = None;
                while c.advance_to(&m, t) {
                    let now = m.timeline()[t];
                    let active: Vec<usize> = c.active().collect();
                    // Symbol 1 stops taking its bars at minute 500 (`skip`): it is seen
                    // until the plan that holds that minute ends.
                    let gone = skipped.filter(|&at| t >= at - at % span + span);
                    let want: Vec<usize> = (0..times.len())
                        .filter(|&s| times[s].binary_search(&now).is_ok())
                        .filter(|&s| s != 1 || gone.is_none())
                        .collect();
                    assert_eq!(active, want, "plans of {span} ticks, maps {maps}, tick {t}");
                    for &s in &active {
                        if s == 1 && (skipped.is_some() || Some(now) >= skip) {
                            skipped = skipped.or(Some(t));
                            continue;
                        }
                        c.take_bar(s);
                    }
                    t += 1;
                }
                assert_eq!(t, m.timeline().len());
            }
        }
    }

    /// `take_bars` moves the cursors and lists the symbols that `take_bar` for each
    /// active symbol does (`take_bars_unlisted` moves them alike): symbols with a bar at every tick, missing 2%, 20% or 60% of
    /// them, a late start, an early end and a single bar, over 75 symbols (two map
    /// words, the second one partly used).
    #[test]
    fn take_bars_moves_and_lists_what_take_bar_does() {
        let mut next = draws(0x2545_f491_4f6c_dd1d);
        let minutes = 400i64;
        let times: Vec<Vec<i64>> = (0..75)
            .map(|s| match s % 7 {
                0 => (0..minutes).collect(),
                1 => (0..minutes).filter(|_| next() % 100 >= 2).collect(),
                2 => (0..minutes).filter(|_| next() % 100 >= 20).collect(),
                3 => (0..minutes).filter(|_| next() % 100 >= 60).collect(),
                4 => (150..minutes).collect(),
                5 => (0..90).collect(),
                _ => vec![(s as i64 * 13) % minutes],
            })
            .collect();
        let names = (0..times.len()).map(|s| format!("S{s:02}")).collect();
        let m = Market::new(names, times.iter().map(|t| at(t)).collect()).unwrap();
        let (mut one_by_one, mut all) = (Clock::new(&m), Clock::new(&m));
        let mut unlisted = Clock::new(&m);
        let mut listed = vec![7; 3];
        let mut t = 0;
        while one_by_one.advance_to(&m, t) {
            assert!(all.advance_to(&m, t));
            assert!(unlisted.advance_to(&m, t));
            let active: Vec<usize> = one_by_one.active().collect();
            for &s in &active {
                one_by_one.take_bar(s);
            }
            all.take_bars(&mut listed);
            assert_eq!(listed, active, "tick {t}");
            assert_eq!(all.next_bars(), one_by_one.next_bars(), "tick {t}");
            // Every fourth tick without the list (its plans see the same cursors).
            if t % 4 == 0 {
                unlisted.take_bars_unlisted();
            } else {
                unlisted.take_bars(&mut listed);
            }
            assert_eq!(unlisted.next_bars(), one_by_one.next_bars(), "tick {t}");
            t += 1;
        }
        assert_eq!(t, m.timeline().len());
    }

    /// A market keeps its maps where they are small beside its times (an eighth of their
    /// bytes, or under 64 KB), and declines them where they are not: 20 symbols with a
    /// bar at each of 20,000 ticks need 20,000 words of maps for 400,000 times, but two
    /// symbols taking turns over 40,000 ticks hold 40,000 bars, whose maps would be 40,000
    /// words (one symbol alone: as many words as times).
    #[test]
    fn maps_are_kept_only_where_small_beside_the_times() {
        let every = || at(&(0..20_000).collect::<Vec<_>>());
        let names = (0..20).map(|s| format!("S{s}")).collect();
        let dense = Market::new(names, (0..20).map(|_| every()).collect()).unwrap();
        assert!(dense.tick_maps(market_maps).is_some());
        let alone = Market::new(vec!["A".into()], vec![every()]).unwrap();
        assert!(alone.tick_maps(market_maps).is_none());
        let turns = |first: i64| at(&(0..20_000).map(|i| 2 * i + first).collect::<Vec<_>>());
        let sparse = Market::new(vec!["A".into(), "B".into()], vec![turns(0), turns(1)]);
        let sparse = sparse.unwrap();
        assert_eq!(sparse.timeline().len(), 40_000);
        assert!(sparse.tick_maps(market_maps).is_none());
        // Their plans are made per run, from the times.
        let mut c = Clock::new(&sparse);
        for t in 0..40_000 {
            assert!(c.advance_to(&sparse, t));
            let active: Vec<usize> = c.active().collect();
            assert_eq!(active, vec![t % 2], "tick {t}");
            c.take_bar(t % 2);
        }
        assert!(!c.advance_to(&sparse, 40_000));
    }

    /// `next_day_end` finds, from every tick, the first tick at or after it that
    /// `ends_day` says ends a day: UTC days over timelines with gaps of minutes to days,
    /// before and after 1970 (negative times), a day of one tick, and given session ends
    /// (none at the last ticks: then no day end is found). The engine's loop finds its day
    /// ends so, and the sparse driver too.
    #[test]
    fn next_day_end_finds_the_ticks_ends_day_marks() {
        let mut next = draws(0x6a09_e667_f3bc_c909);
        for first in [-3 * NANOS_PER_DAY - 7, 0, 1_700_000_000 * NANOS_PER_SECOND] {
            let mut timeline = vec![first];
            for _ in 0..3000 {
                let step = match next() % 10 {
                    0 => NANOS_PER_DAY + 1,
                    1 => 3 * 3_600 * NANOS_PER_SECOND,
                    _ => 60 * NANOS_PER_SECOND,
                };
                timeline.push(timeline.last().unwrap() + step);
            }
            let sessions: Vec<bool> = (0..timeline.len())
                .map(|t| t + 5 < timeline.len() && next().is_multiple_of(50))
                .collect();
            for ends in [None, Some(&sessions[..])] {
                for from in 0..=timeline.len() {
                    let want = (from..timeline.len())
                        .find(|&t| ends_day(&timeline, ends, t))
                        .unwrap_or(timeline.len());
                    assert_eq!(next_day_end(&timeline, ends, from), want, "from {from}");
                }
            }
        }
    }

    /// `DayEnds` finds in turn, from the tick after each day end, the day ends
    /// `next_day_end` finds: over days of equal length (found at the guess), of lengths
    /// that change (found by the search), and with given session ends.
    #[test]
    fn day_ends_in_turn_are_next_day_ends() {
        let mut next = draws(0x3c6e_f372_fe94_f82b);
        let minute = 60 * NANOS_PER_SECOND;
        for first in [
            -2 * NANOS_PER_DAY + 11 * minute,
            0,
            1_700_000_000 * NANOS_PER_SECOND,
        ] {
            let mut timeline = vec![first];
            for _ in 0..20_000 {
                let last = *timeline.last().unwrap();
                // Mostly whole days of minutes; now and then a gap of hours or of a day.
                let step = match next() % 500 {
                    0 => NANOS_PER_DAY + minute,
                    1 => 5 * 3_600 * NANOS_PER_SECOND,
                    2 => 7 * minute,
                    _ => minute,
                };
                timeline.push(last + step);
            }
            let sessions: Vec<bool> = (0..timeline.len()).map(|t| t % 390 == 389).collect();
            for ends in [None, Some(&sessions[..])] {
                let mut days = DayEnds::new(&timeline, ends);
                let (mut from, mut found) = (0, 0);
                loop {
                    let end = days.from(from);
                    assert_eq!(end, next_day_end(&timeline, ends, from), "from {from}");
                    if end == timeline.len() {
                        break;
                    }
                    (from, found) = (end + 1, found + 1);
                }
                assert!(found > 10, "{found} days");
                assert_eq!(days.from(timeline.len()), timeline.len());
            }
        }
    }

    #[test]
    fn bitmaps_follow_each_symbols_bars() {
        // 70 symbols so the map spans two words; symbol 65 misses tick 1.
        let mut bars = Vec::new();
        for s in 0..70 {
            bars.push(if s == 65 {
                at(&[10, 30])
            } else {
                at(&[10, 20, 30])
            });
        }
        let names = (0..70).map(|s| format!("S{s}")).collect();
        let m = Market::new(names, bars).unwrap();
        let mut c = Clock::new(&m);
        let mut seen = Vec::new();
        let mut t = 0;
        let mut taken = vec![7; 3];
        while c.advance_to(&m, t) {
            let active: Vec<usize> = c.active().collect();
            // `take_bars` lists the same symbols and moves the same cursors as
            // `take_bar` for each (the list's old entries dropped).
            let before = c.next_bars().to_vec();
            c.take_bars(&mut taken);
            assert_eq!(taken, active);
            for (s, (&after, &was)) in c.next_bars().iter().zip(&before).enumerate() {
                let moved = after - was;
                assert_eq!(
                    moved,
                    usize::from(active.contains(&s)),
                    "tick {t} symbol {s}"
                );
            }
            for &s in &active {
                assert_eq!(c.taken_bar(s), before[s]);
            }
            seen.push(active);
            t += 1;
        }
        assert_eq!(seen.len(), 3);
        assert_eq!(seen[0].len(), 70);
        assert_eq!(seen[1].len(), 69);
        assert!(!seen[1].contains(&65));
        assert_eq!(seen[2].len(), 70);
        assert_eq!(c.current_bar(65), Some(1));
        assert_eq!(c.current_bar(0), Some(2));
    }
}
