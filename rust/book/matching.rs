//! Matching: which working order of one symbol fills next in its bar, and at what price.
//!
//! A `Play` walks one symbol's bar in the documented order — orders that fill at the open
//! first (in placement order), then, after the open, stop-type orders before limits; a
//! limit fill that adds bracket legs sends the walk back to the stops, so the new
//! stop-loss is matched before later limits; orders at the close last, at the close. It
//! only decides; the book executes each match before asking for the next one (an
//! execution may add legs or cancel siblings), and may pause a play while an increase
//! waits for its turn (see `book`).

use crate::broker::{match_order, ratchet, Bar, LimitFill, Moment};
use crate::orders::{Order, Side, Trail};
use crate::studies::Studies;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stage {
    Open,
    Stops,
    Limits,
    Close,
    Done,
}

/// Whether a play of `working` in bar `bar` would find nothing to do: every order is
/// live, none has a trail (it would move with the bar) or ends its life at this bar or
/// before (a good-for-bars or immediate order, whose end is checked at the end of its
/// last bar), and each is either not eligible yet or a plain stop or a plain limit that
/// neither the open nor the bar's range reaches. Such a bar fills nothing
/// and changes no order, so it is not played: the batch then reads no account either
/// (most bars of a position protected by a stop-loss are such bars). A stop-limit, a
/// market order or a dead order (swept by a play) always plays.
///
/// "Reaches" is `broker::match_order`'s rule at both moments, written out for the two
/// plain kinds (it runs for every bar of a protected position): a sell stop or a buy
/// limit fills when the open or the low is at or below its price, a buy stop or a sell
/// limit when the open or the high is at or above it (a NaN price reaches nothing, in
/// both).
#[inline]
pub(super) fn is_quiet(working: &[Order], bar: usize, prices: &Bar) -> bool {
    working.iter().all(|o| {
        if !o.live || o.trail.is_some() || o.last_bar.is_some_and(|last| last <= bar) {
            return false;
        }
        if o.eligible_from > bar {
            return true;
        }
        let Some((level, falling)) = plain_level(o) else {
            return false;
        };
        let reached = if falling {
            prices.open <= level || prices.low <= level
        } else {
            prices.open >= level || prices.high >= level
        };
        !reached
    })
}

/// A plain stop's or plain limit's price, and whether a falling price reaches it (a sell
/// stop, a buy limit) rather than a rising one; `None` for a stop-limit or a market order.
#[inline]
fn plain_level(o: &Order) -> Option<(f64, bool)> {
    match (o.stop, o.limit) {
        (Some(stop), None) => Some((stop, o.side == Side::Sell)),
        (None, Some(limit)) => Some((limit, o.side == Side::Buy)),
        _ => None,
    }
}

/// What one symbol's working orders can reach, summed up: the highest price among those a
/// falling price reaches and the lowest among those a rising one does, the earliest last
/// bar of any, and whether any order plays whatever the bar (`is_quiet`'s other kinds). A
/// bar before that last bar whose open and range reach neither price is quiet for every
/// order, as `is_quiet` would find order by order, so a symbol holding many resting
/// orders is not walked at each bar. Eligibility is left out (an order not yet eligible
/// counts as if it were): the summary can only say "maybe" where the walk says quiet,
/// never the other way.
#[derive(Clone, Copy, Debug)]
pub(super) struct Reach {
    falling: f64,
    rising: f64,
    /// The earliest `Order::last_bar` (`usize::MAX`: none).
    ends: usize,
    plays_anyway: bool,
}

impl Reach {
    pub const NOTHING: Reach = Reach {
        falling: f64::NEG_INFINITY,
        rising: f64::INFINITY,
        ends: usize::MAX,
        plays_anyway: false,
    };

    /// The summary of `working`.
    #[cfg(test)]
    pub fn of(working: &[Order]) -> Reach {
        Reach::NOTHING.fold(working)
    }

    /// This summary with `orders` added. (It stops at the first order that plays anyway:
    /// nothing after it can change the answer, and no summary with it is made smaller.)
    pub fn fold(self, orders: &[Order]) -> Reach {
        let mut reach = self;
        for o in orders {
            if reach.plays_anyway {
                break;
            }
            reach = reach.with(o);
        }
        reach
    }

    /// This summary with order `o` added. (A NaN price reaches nothing: `f64::max` and
    /// `min` keep the other operand.)
    #[inline]
    pub fn with(self, o: &Order) -> Reach {
        if !o.live || o.trail.is_some() {
            return Reach {
                plays_anyway: true,
                ..self
            };
        }
        let ends = o.last_bar.map_or(self.ends, |last| last.min(self.ends));
        let this = Reach { ends, ..self };
        match plain_level(o) {
            Some((level, true)) => Reach {
                falling: this.falling.max(level),
                ..this
            },
            Some((level, false)) => Reach {
                rising: this.rising.min(level),
                ..this
            },
            None => Reach {
                plays_anyway: true,
                ..this
            },
        }
    }

    /// Whether bar `bar` may reach some order (`false`: `is_quiet` holds for every one).
    #[inline]
    pub fn may_reach(&self, prices: &Bar, bar: usize) -> bool {
        self.plays_anyway || bar >= self.ends || self.reaches(prices.open, prices.low, prices.high)
    }

    /// Whether a bar of these prices reaches one of the plain stops' and limits' prices.
    #[inline]
    fn reaches(&self, open: f64, low: f64, high: f64) -> bool {
        open <= self.falling || low <= self.falling || open >= self.rising || high >= self.rising
    }
}

/// One symbol's bar being matched.
#[derive(Clone, Debug)]
pub(super) struct Play {
    pub symbol: usize,
    pub bar: usize,
    pub ts: i64,
    pub prices: Bar,
    /// When a price reaching a limit fills it (`Config::limit_fill`).
    limits: LimitFill,
    stage: Stage,
    /// Next index into the symbol's working orders.
    k: usize,
    /// During the limits stage: the number of working orders when the last limit filled;
    /// more now means that fill added legs, whose stops are matched first.
    limit_len: usize,
}

/// A working order that fills: its index in the symbol's book, its price before
/// slippage, and when in the bar.
#[derive(Clone, Copy, Debug)]
pub(super) struct Match {
    pub k: usize,
    pub raw_price: f64,
    pub moment: Moment,
}

impl Play {
    pub fn new(symbol: usize, bar: usize, ts: i64, prices: Bar, limits: LimitFill) -> Self {
        Play {
            symbol,
            bar,
            ts,
            prices,
            limits,
            stage: Stage::Open,
            k: 0,
            limit_len: usize::MAX,
        }
    }

    /// The next order of `working` that fills in this bar, or `None` when the bar is done.
    pub fn next_match(&mut self, working: &mut [Order], studies: &Studies) -> Option<Match> {
        let i = self.bar;
        loop {
            match self.stage {
                Stage::Done => return None,
                Stage::Open => {
                    let Some(o) = working.get_mut(self.k) else {
                        // After the open only stops, limits and orders at the close can
                        // fill (and only a fill adds orders): with none working the bar
                        // is done.
                        let rest = working
                            .iter()
                            .any(|o| o.live && (!o.is_market() || o.at_close()));
                        self.stage = if rest { Stage::Stops } else { Stage::Done };
                        self.k = 0;
                        continue;
                    };
                    let k = self.k;
                    self.k += 1;
                    if !o.live || o.eligible_from > i || o.at_close() {
                        continue;
                    }
                    if o.trail.is_some() {
                        // A trailing stop first follows the open (a gap through it fills there).
                        let atr = self.atr(o, studies);
                        ratchet(o, self.prices.open, atr);
                    }
                    if let Some(m) = self.try_match(o, k, Moment::Open) {
                        return Some(self.first_of_group(working, m));
                    }
                }
                Stage::Stops | Stage::Limits => {
                    let stops = self.stage == Stage::Stops;
                    if !stops && working.len() > self.limit_len {
                        self.stage = Stage::Stops;
                        self.k = 0;
                        continue;
                    }
                    let len = working.len();
                    let Some(o) = working.get_mut(self.k) else {
                        if stops {
                            self.stage = Stage::Limits;
                            self.limit_len = len;
                        } else {
                            let at_close = working.iter().any(|o| o.live && o.at_close());
                            self.stage = if at_close { Stage::Close } else { Stage::Done };
                        }
                        self.k = 0;
                        continue;
                    };
                    let k = self.k;
                    self.k += 1;
                    if !o.live
                        || o.eligible_from > i
                        || o.is_market()
                        || o.checked_bar == i
                        || o.is_stop_type() != stops
                        || o.at_open()
                        || o.at_close()
                    {
                        continue;
                    }
                    o.checked_bar = i;
                    if let Some(m) = self.try_match(o, k, Moment::Intrabar) {
                        if !stops {
                            self.limit_len = len;
                        }
                        return Some(self.first_of_group(working, m));
                    }
                    if o.trail.is_some() {
                        // It survived the bar's adverse extreme with the stop set at the
                        // open; only now does the favourable extreme move it (for the next
                        // bar): the path that would fill it higher is not assumed.
                        let atr = self.atr(o, studies);
                        let best = if o.side == Side::Sell {
                            self.prices.high
                        } else {
                            self.prices.low
                        };
                        ratchet(o, best, atr);
                    }
                }
                Stage::Close => {
                    // The bar's last moment: orders at the close alone, in placement order
                    // (a fill there adds legs for the next bar, none for this one).
                    let Some(o) = working.get_mut(self.k) else {
                        self.stage = Stage::Done;
                        continue;
                    };
                    let k = self.k;
                    self.k += 1;
                    if !o.live || o.eligible_from > i || !o.at_close() || o.checked_bar == i {
                        continue;
                    }
                    o.checked_bar = i;
                    if let Some(m) = self.try_match(o, k, Moment::Close) {
                        return Some(self.first_of_group(working, m));
                    }
                }
            }
        }
    }

    /// When the order matched at `m` belongs to a one-cancels-other group, the group's leg
    /// that fills is the one reached first from the open: of the legs that would fill at
    /// this moment, the one whose price is nearest the open; on a tie stop-type orders
    /// before limits (as for brackets), then placement order. Only that one is returned;
    /// the others are cancelled when it fills.
    fn first_of_group(&mut self, working: &mut [Order], m: Match) -> Match {
        let Some(group) = working[m.k].oco else {
            return m;
        };
        let open = self.prices.open;
        let key = |o: &Order, price: f64| ((price - open).abs(), !o.is_stop_type());
        let mut best = (key(&working[m.k], m.raw_price), m);
        for (k, o) in working.iter().enumerate() {
            let fresh = m.moment == Moment::Open || o.checked_bar != self.bar;
            if k == m.k || !o.live || o.oco != Some(group) || o.eligible_from > self.bar || !fresh {
                continue;
            }
            // (Only orders of the moment compete: at the close, orders at the close alone;
            // before it, none of them, and after the open none at the open.)
            let of_moment = match m.moment {
                Moment::Open => !o.at_close(),
                Moment::Intrabar => !o.is_market() && !o.at_open() && !o.at_close(),
                Moment::Close => o.at_close(),
            };
            if !of_moment {
                continue;
            }
            let mut probe = *o;
            if let Some(price) = match_order(&mut probe, &self.prices, m.moment, self.limits) {
                let candidate = key(o, price);
                if candidate < best.0 {
                    best = (
                        candidate,
                        Match {
                            k,
                            raw_price: price,
                            moment: m.moment,
                        },
                    );
                }
            }
        }
        let chosen = best.1;
        if chosen.k != m.k {
            // The leg matched first stays a candidate in this bar should the chosen one be
            // rejected: the walk resumes at it (if the chosen one fills, it is cancelled).
            working[m.k].checked_bar = usize::MAX;
            working[chosen.k].checked_bar = self.bar;
            self.k = m.k;
        }
        chosen
    }

    /// The ATR a trailing stop follows, as of the bar before this one.
    fn atr(&self, o: &Order, studies: &Studies) -> f64 {
        match o.trail {
            Some(Trail::Atr { study, .. }) => studies
                .prev(study, self.symbol, Some(self.bar))
                .unwrap_or(f64::NAN),
            _ => f64::NAN,
        }
    }

    fn try_match(&self, o: &mut Order, k: usize, moment: Moment) -> Option<Match> {
        let was_triggered = o.triggered;
        match match_order(o, &self.prices, moment, self.limits) {
            Some(raw_price) => Some(Match {
                k,
                raw_price,
                moment,
            }),
            None => {
                if o.triggered && !was_triggered {
                    // A stop-limit triggered but not marketable rests from the next bar.
                    o.checked_bar = self.bar;
                    o.eligible_from = self.bar + 1;
                }
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::orders::{Role, Side};

    /// A deterministic stream of numbers (no rand dependency in the core).
    struct Stream(u64);

    impl Stream {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }

        fn pick(&mut self, n: u64) -> u64 {
            self.next() % n
        }

        /// A price near 100 on a coarse grid, so prices often coincide (ties matter).
        fn price(&mut self) -> f64 {
            95.0 + self.pick(21) as f64 * 0.5
        }
    }

    fn random_order(r: &mut Stream, id: u64) -> Order {
        let side = if r.pick(2) == 0 {
            Side::Buy
        } else {
            Side::Sell
        };
        let mut o = Order::new(id, 0, side, 1.0 + r.pick(3) as f64, Role::Entry);
        match r.pick(6) {
            0 => {}
            1 | 2 => o.stop = Some(r.price()),
            3 | 4 => o.limit = Some(r.price()),
            _ => {
                o.stop = Some(r.price());
                o.limit = Some(r.price());
                o.triggered = r.pick(3) == 0;
            }
        }
        if r.pick(8) == 0 {
            o.trail = Some(Trail::Distance(1.0));
            o.stop = Some(r.price());
            o.limit = None;
        }
        o.live = r.pick(10) != 0;
        o.eligible_from = r.pick(3) as usize;
        if r.pick(8) == 0 {
            o.last_bar = Some(r.pick(4) as usize);
        }
        if r.pick(6) == 0 {
            o.oco = Some(1);
        }
        o
    }

    /// The rule `is_quiet` writes out, through the broker's own matching: an order that
    /// can act is live, has no trail, does not end at this bar or before, and is not yet
    /// eligible, or is a plain stop or limit that `match_order` fills at neither moment.
    fn quiet_by_the_broker(working: &[Order], bar: usize, prices: &Bar) -> bool {
        working.iter().all(|o| {
            if !o.live || o.trail.is_some() || o.last_bar.is_some_and(|last| last <= bar) {
                return false;
            }
            if o.eligible_from > bar {
                return true;
            }
            if o.stop.is_some() == o.limit.is_some() {
                return false;
            }
            let mut probe = *o;
            match_order(&mut probe, prices, Moment::Open, LimitFill::Touch).is_none()
                && match_order(&mut probe, prices, Moment::Intrabar, LimitFill::Touch).is_none()
        })
    }

    /// Four prices in any order, each missing (NaN) one time in twelve.
    fn gapped_bar(r: &mut Stream) -> Bar {
        let mut price = || {
            if r.pick(12) == 0 {
                f64::NAN
            } else {
                r.price()
            }
        };
        Bar {
            open: price(),
            high: price(),
            low: price(),
            close: price(),
        }
    }

    #[test]
    fn quiet_is_the_brokers_rule_also_for_missing_prices() {
        let mut r = Stream(0x2545_F491_4F6C_DD1D);
        let (mut quiet, mut loud) = (0, 0);
        for _ in 0..50_000 {
            let working: Vec<Order> = (0..1 + r.pick(3))
                .map(|k| random_order(&mut r, k + 1))
                .collect();
            let prices = gapped_bar(&mut r);
            let bar = r.pick(3) as usize;
            let expected = quiet_by_the_broker(&working, bar, &prices);
            assert_eq!(
                is_quiet(&working, bar, &prices),
                expected,
                "{working:?} {prices:?}"
            );
            if expected {
                quiet += 1;
            } else {
                loud += 1;
            }
        }
        assert!(quiet > 1_000 && loud > 1_000, "{quiet} quiet, {loud} not");
    }

    #[test]
    fn the_summary_of_a_list_says_quiet_only_where_the_walk_does() {
        let mut r = Stream(0x6A09_E667_F3BC_C909);
        let (mut unreached, mut maybe) = (0, 0);
        for _ in 0..50_000 {
            let mut working: Vec<Order> = (0..r.pick(6))
                .map(|k| random_order(&mut r, k + 1))
                .collect();
            let prices = gapped_bar(&mut r);
            let bar = r.pick(3) as usize;
            let reach = Reach::of(&working);
            if !reach.may_reach(&prices, bar) {
                unreached += 1;
                assert!(is_quiet(&working, bar, &prices), "{working:?} {prices:?}");
            } else {
                maybe += 1;
            }
            // With every order eligible, the summary is the walk's answer exactly.
            for o in &mut working {
                o.eligible_from = 0;
            }
            assert_eq!(
                Reach::of(&working).may_reach(&prices, bar),
                !is_quiet(&working, bar, &prices),
                "{working:?} {prices:?}"
            );
        }
        assert!(
            unreached > 1_000 && maybe > 1_000,
            "{unreached} unreached, {maybe} not"
        );
    }

    /// What a play may not change in an order of a quiet bar: all but `checked_bar`
    /// (the walk's own bookmark within a bar, never read across bars).
    fn state(o: &Order) -> String {
        let mut o = *o;
        o.checked_bar = 0;
        format!("{o:?}")
    }

    #[test]
    fn a_quiet_bar_is_one_a_play_would_fill_nothing_in_and_change_no_order_of() {
        let studies = Studies::default();
        let mut r = Stream(0x9E37_79B9_7F4A_7C15);
        let (mut quiet, mut loud) = (0, 0);
        for _ in 0..20_000 {
            let working: Vec<Order> = (0..1 + r.pick(3))
                .map(|k| random_order(&mut r, k + 1))
                .collect();
            let (a, b, c, d) = (r.price(), r.price(), r.price(), r.price());
            let prices = Bar {
                open: a,
                high: a.max(b).max(c).max(d),
                low: a.min(b).min(c).min(d),
                close: d,
            };
            let bar = 1 + r.pick(2) as usize;
            let probed = working.clone();
            if !is_quiet(&probed, bar, &prices) {
                loud += 1;
                continue;
            }
            quiet += 1;
            let before: Vec<String> = working.iter().map(state).collect();
            assert_eq!(before, probed.iter().map(state).collect::<Vec<_>>());
            let mut played = working.clone();
            let mut play = Play::new(0, bar, 0, prices, LimitFill::Touch);
            assert!(
                play.next_match(&mut played, &studies).is_none(),
                "{working:?} {prices:?}"
            );
            assert_eq!(before, played.iter().map(state).collect::<Vec<_>>());
        }
        // Both kinds are common enough for the property to mean something.
        assert!(quiet > 1_000 && loud > 1_000, "{quiet} quiet, {loud} not");
    }

    #[test]
    fn a_bar_that_reaches_a_stop_or_a_limit_is_not_quiet() {
        let prices = Bar {
            open: 100.0,
            high: 102.0,
            low: 99.0,
            close: 101.0,
        };
        let stop = |side, at| {
            let mut o = Order::new(1, 0, side, 1.0, Role::StopLoss);
            o.stop = Some(at);
            vec![o]
        };
        assert!(is_quiet(&stop(Side::Sell, 98.5), 0, &prices));
        assert!(!is_quiet(&stop(Side::Sell, 99.0), 0, &prices)); // the low touches it
        assert!(!is_quiet(&stop(Side::Buy, 102.0), 0, &prices)); // the high touches it
        assert!(!is_quiet(&stop(Side::Buy, 100.0), 0, &prices)); // the open gaps through
        let mut later = stop(Side::Sell, 99.5);
        later[0].eligible_from = 1;
        assert!(is_quiet(&later, 0, &prices)); // not eligible in this bar
        let mut market = stop(Side::Sell, 1.0);
        market[0].stop = None;
        assert!(!is_quiet(&market, 0, &prices));
    }
}
