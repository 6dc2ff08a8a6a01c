//! Broker: the rules by which a working order fills against one bar.
//!
//! Fill rules (what a researcher can rely on):
//! - A market order fills at the open of its symbol's next bar (or, with `FillAt::Close`,
//!   at the close of the bar on which it was placed — decided by the engine at the barrier).
//! - Limit buy at L: fills at the open if the bar opens at or below L (a gap through the
//!   limit gives the better price), else at L if the low reaches L. Limit sell mirrors it.
//! - Stop buy at S: fills at the open if the bar opens at or above S (a gap through the
//!   stop fills at the worse open), else at S if the high reaches S. Stop sell mirrors it.
//! - Stop-limit: when the stop is touched the order becomes a limit; it fills in that same
//!   bar only if the trigger price is within the limit, otherwise it rests as a limit from
//!   the next bar on (the path after the trigger is unknown).
//! - Within one bar, orders that fill at the open go first; after the open, stop-type
//!   orders are matched before limits. So when a stop-loss and a take-profit both lie
//!   inside one bar, the stop-loss fills (conservative) and cancels the take-profit.
//! - Slippage (basis points, against the trader) applies to market and stop fills, never
//!   to a limit (a limit fills at its price or better).
//! - Orders at the open (`tif="opg"`) match at the open alone; orders at the close
//!   (`tif="close"`) at the close alone, after everything else in the bar: a market order
//!   at the close, a limit at the close if the close is at or better than its price.
//! - With `LimitFill::Through` (`limit_fill="through"`), a limit price is filled only
//!   where the market trades through it: "at or below L" above reads "below L" (and a
//!   stop-limit's trigger must be better than its limit), as orders resting at L before
//!   this one may have taken all that traded there.

use crate::error::{EngineError, Result};
use crate::orders::{Order, Side, Trail};

/// When a price reaching a limit fills it (`limit_fill`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LimitFill {
    /// At a touch: the price at the limit fills it (the default).
    Touch,
    /// Only through it: the price must pass the limit (below a buy's, above a sell's).
    Through,
}

impl LimitFill {
    /// The option's spelling: `limit_fill="touch" | "through"`.
    pub fn parse(value: &str) -> Result<LimitFill> {
        match value {
            "touch" => Ok(LimitFill::Touch),
            "through" => Ok(LimitFill::Through),
            other => Err(EngineError::InvalidConfig(format!(
                "limit_fill = {other:?}: must be 'touch' or 'through'"
            ))),
        }
    }

    /// Whether `price` fills a limit at `limit` on the `buy` side.
    #[inline(always)]
    fn fills(self, buy: bool, price: f64, limit: f64) -> bool {
        match (self, buy) {
            (LimitFill::Touch, true) => price <= limit,
            (LimitFill::Touch, false) => price >= limit,
            (LimitFill::Through, true) => price < limit,
            (LimitFill::Through, false) => price > limit,
        }
    }
}

/// One bar's prices.
#[derive(Clone, Copy, Debug)]
pub struct Bar {
    pub open: f64,
    pub high: f64,
    pub low: f64,
    pub close: f64,
}

/// The moments of a bar at which the broker matches orders.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Moment {
    /// The opening print: market orders, and anything the open gaps through.
    Open,
    /// After the open, anywhere in [low, high].
    Intrabar,
    /// The closing print: orders at the close (`TimeInForce::AtTheClose`) alone.
    Close,
}

/// The price at which `order` fills at `moment` of `bar`, before slippage; `None` if it
/// does not fill. A stop-limit whose stop is touched but whose limit is not marketable is
/// marked `triggered` and does not fill in this bar. `limits` says when a price reaching
/// a limit fills it.
pub fn match_order(order: &mut Order, bar: &Bar, moment: Moment, limits: LimitFill) -> Option<f64> {
    let buy = order.side == Side::Buy;
    match (order.stop, order.limit, order.triggered) {
        (None, None, _) => match moment {
            Moment::Open => Some(bar.open),
            Moment::Intrabar => None,
            Moment::Close => Some(bar.close),
        },
        (Some(stop), None, _) => stop_touch(buy, stop, bar, moment),
        (None, Some(limit), _) | (Some(_), Some(limit), true) => {
            limit_touch(buy, limit, bar, moment, limits)
        }
        (Some(stop), Some(limit), false) => {
            let trigger = stop_touch(buy, stop, bar, moment)?;
            if limits.fills(buy, trigger, limit) {
                Some(trigger)
            } else {
                order.triggered = true;
                None
            }
        }
    }
}

fn stop_touch(buy: bool, stop: f64, bar: &Bar, moment: Moment) -> Option<f64> {
    match moment {
        Moment::Open => {
            let through = if buy {
                bar.open >= stop
            } else {
                bar.open <= stop
            };
            through.then_some(bar.open)
        }
        Moment::Intrabar => {
            let touched = if buy {
                bar.high >= stop
            } else {
                bar.low <= stop
            };
            touched.then_some(stop)
        }
        // (Stops are not taken at the close: nothing to match there.)
        Moment::Close => None,
    }
}

fn limit_touch(buy: bool, limit: f64, bar: &Bar, moment: Moment, limits: LimitFill) -> Option<f64> {
    match moment {
        Moment::Open => limits.fills(buy, bar.open, limit).then_some(bar.open),
        Moment::Intrabar => {
            let extreme = if buy { bar.low } else { bar.high };
            limits.fills(buy, extreme, limit).then_some(limit)
        }
        Moment::Close => limits.fills(buy, bar.close, limit).then_some(bar.close),
    }
}

/// How far a trailing stop sits from the best price `best`; `atr` is the declared ATR's
/// value as of the previous bar (NaN until it is ready: the stop is not set till then).
pub fn trail_gap(trail: Trail, best: f64, atr: f64) -> f64 {
    match trail {
        Trail::Distance(d) => d,
        Trail::Fraction(f) => best * f,
        Trail::Atr { multiple, .. } => multiple * atr,
    }
}

/// Move a trailing stop with a price the market reached: the best price only improves
/// (highest for a sell stop protecting a long, lowest for a buy stop), and the stop only
/// moves in the trader's favour, never back.
pub fn ratchet(order: &mut Order, price: f64, atr: f64) {
    let Some(trail) = order.trail else { return };
    let sell = order.side == Side::Sell;
    if order.best.is_nan() || (sell && price > order.best) || (!sell && price < order.best) {
        order.best = price;
    }
    let gap = trail_gap(trail, order.best, atr);
    let candidate = if sell {
        order.best - gap
    } else {
        order.best + gap
    };
    if !candidate.is_finite() {
        return;
    }
    let stop = order.stop.unwrap_or(f64::NAN);
    if stop.is_nan() || (sell && candidate > stop) || (!sell && candidate < stop) {
        order.stop = Some(candidate);
    }
}

/// Apply slippage against the trader on the side actually executed (`direction` +1 for a
/// buy, -1 for a sell — for a `close()` that is decided at fill time, not when placed):
/// buys pay more, sells receive less. Limits (and triggered stop-limits) never slip past
/// their limit, so they are left untouched.
#[inline]
pub fn slipped(order: &Order, direction: f64, price: f64, slippage_bps: f64) -> f64 {
    if order.limit.is_some() || slippage_bps == 0.0 {
        return price;
    }
    price * (1.0 + direction * slippage_bps * 1e-4)
}

/// Move a fill's price against the trader by its share of the bar's volume: a fraction
/// `impact` × `share`² of it (a square-law market impact: a tenth of the volume with an
/// impact of 0.1 costs 0.1%). Like slippage, never past a limit: orders with one are left
/// untouched.
#[inline]
pub fn impacted(order: &Order, direction: f64, price: f64, share: f64, impact: f64) -> f64 {
    if order.limit.is_some() || impact == 0.0 {
        return price;
    }
    price * (1.0 + direction * impact * share * share)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::orders::Role;

    fn order(side: Side, limit: Option<f64>, stop: Option<f64>) -> Order {
        let mut o = Order::new(1, 0, side, 1.0, Role::Entry);
        o.limit = limit;
        o.stop = stop;
        o
    }

    #[test]
    fn a_trailing_stop_ratchets_only_in_the_traders_favour() {
        let mut o = order(Side::Sell, None, Some(f64::NAN));
        o.trail = Some(Trail::Distance(2.0));
        ratchet(&mut o, 100.0, f64::NAN);
        assert_eq!((o.best, o.stop), (100.0, Some(98.0)));
        ratchet(&mut o, 104.0, f64::NAN);
        assert_eq!(o.stop, Some(102.0));
        ratchet(&mut o, 101.0, f64::NAN); // a lower price never lowers it
        assert_eq!((o.best, o.stop), (104.0, Some(102.0)));
        let mut short = order(Side::Buy, None, Some(f64::NAN));
        short.trail = Some(Trail::Fraction(0.05));
        ratchet(&mut short, 100.0, f64::NAN);
        ratchet(&mut short, 90.0, f64::NAN);
        assert!((short.stop.unwrap() - 94.5).abs() < 1e-12);
        let mut atr = order(Side::Sell, None, Some(f64::NAN));
        atr.trail = Some(Trail::Atr {
            study: 0,
            multiple: 3.0,
        });
        ratchet(&mut atr, 100.0, f64::NAN); // not ready: no stop yet
        assert!(atr.stop.unwrap().is_nan());
        ratchet(&mut atr, 100.0, 1.5);
        assert_eq!(atr.stop, Some(95.5));
    }

    const BAR: Bar = Bar {
        open: 100.0,
        high: 105.0,
        low: 96.0,
        close: 101.0,
    };

    /// The default rule: a limit fills at a touch.
    fn match_order(order: &mut Order, bar: &Bar, moment: Moment) -> Option<f64> {
        super::match_order(order, bar, moment, LimitFill::Touch)
    }

    #[test]
    fn through_a_limit_the_price_must_pass_it() {
        let through = |o: &mut Order, m| super::match_order(o, &BAR, m, LimitFill::Through);
        // A buy at the low (96) or a sell at the high (105): a touch, not through.
        let mut at_low = order(Side::Buy, Some(96.0), None);
        assert_eq!(match_order(&mut at_low, &BAR, Moment::Intrabar), Some(96.0));
        assert_eq!(through(&mut at_low, Moment::Intrabar), None);
        let mut below = order(Side::Buy, Some(96.5), None);
        assert_eq!(through(&mut below, Moment::Intrabar), Some(96.5));
        let mut at_high = order(Side::Sell, Some(105.0), None);
        assert_eq!(through(&mut at_high, Moment::Intrabar), None);
        // At the open and at the close alike: the open at the limit does not fill it.
        let mut at_open = order(Side::Buy, Some(100.0), None);
        assert_eq!(through(&mut at_open, Moment::Open), None);
        assert_eq!(match_order(&mut at_open, &BAR, Moment::Open), Some(100.0));
        let mut at_close = order(Side::Sell, Some(101.0), None);
        assert_eq!(through(&mut at_close, Moment::Close), None);
        assert_eq!(match_order(&mut at_close, &BAR, Moment::Close), Some(101.0));
        // A stop-limit triggered at its limit rests rather than filling there.
        let mut stop_limit = order(Side::Buy, Some(104.0), Some(104.0));
        assert_eq!(through(&mut stop_limit, Moment::Intrabar), None);
        assert!(stop_limit.triggered);
        assert_eq!(LimitFill::parse("through").unwrap(), LimitFill::Through);
        assert!(LimitFill::parse("thru")
            .unwrap_err()
            .to_string()
            .contains("'touch' or 'through'"));
    }

    #[test]
    fn market_fills_only_at_the_open() {
        let mut o = order(Side::Buy, None, None);
        assert_eq!(match_order(&mut o, &BAR, Moment::Open), Some(100.0));
        assert_eq!(match_order(&mut o, &BAR, Moment::Intrabar), None);
    }

    #[test]
    fn limit_fills_at_its_price_or_the_better_open() {
        let mut buy = order(Side::Buy, Some(97.0), None);
        assert_eq!(match_order(&mut buy, &BAR, Moment::Open), None);
        assert_eq!(match_order(&mut buy, &BAR, Moment::Intrabar), Some(97.0));
        let mut gap = order(Side::Buy, Some(102.0), None);
        assert_eq!(match_order(&mut gap, &BAR, Moment::Open), Some(100.0));
        let mut sell = order(Side::Sell, Some(104.0), None);
        assert_eq!(match_order(&mut sell, &BAR, Moment::Intrabar), Some(104.0));
        let mut out_of_reach = order(Side::Sell, Some(106.0), None);
        assert_eq!(match_order(&mut out_of_reach, &BAR, Moment::Intrabar), None);
    }

    #[test]
    fn stop_fills_at_its_price_or_the_worse_open() {
        let mut sell_stop = order(Side::Sell, None, Some(97.0));
        assert_eq!(match_order(&mut sell_stop, &BAR, Moment::Open), None);
        assert_eq!(
            match_order(&mut sell_stop, &BAR, Moment::Intrabar),
            Some(97.0)
        );
        // Gap down through a sell stop at 102: filled at the open, 100.
        let mut gapped = order(Side::Sell, None, Some(102.0));
        assert_eq!(match_order(&mut gapped, &BAR, Moment::Open), Some(100.0));
        let mut buy_stop = order(Side::Buy, None, Some(104.0));
        assert_eq!(
            match_order(&mut buy_stop, &BAR, Moment::Intrabar),
            Some(104.0)
        );
    }

    #[test]
    fn stop_limit_triggers_then_rests_when_not_marketable() {
        // Buy stop 104 limit 104.5: touched at 104, marketable -> fills 104.
        let mut ok = order(Side::Buy, Some(104.5), Some(104.0));
        assert_eq!(match_order(&mut ok, &BAR, Moment::Intrabar), Some(104.0));
        // Buy stop 99 limit 98: the open 100 gaps through the stop, above the limit.
        let mut rest = order(Side::Buy, Some(98.0), Some(99.0));
        assert_eq!(match_order(&mut rest, &BAR, Moment::Open), None);
        assert!(rest.triggered);
        // Next bar it behaves as a limit at 98.
        let next = Bar {
            open: 99.0,
            high: 99.5,
            low: 97.5,
            close: 98.0,
        };
        assert_eq!(match_order(&mut rest, &next, Moment::Intrabar), Some(98.0));
    }

    #[test]
    fn slippage_is_against_the_trader_and_spares_limits() {
        let buy = order(Side::Buy, None, None);
        let sell = order(Side::Sell, None, Some(97.0));
        let lim = order(Side::Sell, Some(104.0), None);
        assert!((slipped(&buy, 1.0, 100.0, 10.0) - 100.1).abs() < 1e-12);
        assert!((slipped(&sell, -1.0, 97.0, 10.0) - 96.903).abs() < 1e-12);
        assert_eq!(slipped(&lim, -1.0, 104.0, 10.0), 104.0);
        // A sell order executed as a buy (a close whose position flipped) pays more.
        assert!((slipped(&sell, 1.0, 97.0, 10.0) - 97.097).abs() < 1e-12);
    }
}
