//! Signals mode: a native strategy that trades boolean entry and exit signals through the
//! same engine, book, fill rules and portfolio as any other strategy.
//!
//! A signal on a symbol's bar `i` is read in that bar's `on_bar`, exactly where a Python
//! strategy's `next` would place its order, so it fills from the next bar on (or at this
//! bar's close under trade-on-close): no shift is needed and no look-ahead is possible.
//!
//! The rules, per symbol and bar (one place, mirrored by the equivalent Python strategy in
//! the tests):
//! - An entry with an exit of the same side on the same bar is ignored (the exit wins);
//!   a long entry together with a short entry is ignored (no side wins). `Conflicts`
//!   may read them otherwise: the entry wins, or neither acts; the long or the short
//!   entry wins.
//! - Long and an exit, or a short entry: close the position. Short and a short exit, or a
//!   long entry: close it. An exit signal may close only a portion of the position
//!   (`exit_portion`, the oldest trades first, as `close(portion)` in `next` does); a time
//!   exit, a stop or an entry against the position closes all of it.
//! - A long entry while flat or short (a reversal) buys; a short entry while flat or long
//!   sells. The close and the new entry fill in one batch (the close first). `Conflicts`
//!   may have an entry against the position only close it, or be ignored. No pyramiding:
//!   an entry on the side already held is ignored, unless the rules `accumulate`: then it
//!   adds an order of its size (with its own stops), as another `buy` in `next` would.
//! - An entry is sized at the bar's close: `Amount` units, `Value` cash / close, or
//!   `Percent` × equity / close; a non-positive or non-finite size places nothing.
//!   The size is the rules' one, or the symbol's own per bar: NaN or 0 there (or any
//!   size not above 0) sets no entry on that bar, as if none were signalled (its exits
//!   still act).
//! - `TargetPercent` (vectorbt's `targetpercent`): an entry means "hold `size` × equity of
//!   this side". One market order for the difference from what will be held (nothing if
//!   an exit closes it on this bar): from flat it buys what `Percent` buys, a reversal is
//!   one order that flips (its reducing part first), and an entry on the side already
//!   held re-sizes the position to the target (skipped when it is there exactly).
//! - With a lot size (`SymbolSignals::lot_size`) an entry's units are rounded down to
//!   whole lots (nothing when below one lot), and a `TargetPercent` target towards zero
//!   (never overshot), as `tickstep.sizing.order_to_target` rounds it.
//! - A time exit (`exit_after_bars` = n): a position whose oldest open lot was entered n
//!   or more of the symbol's bars before this one is exited here, as by an exit signal of
//!   its side on this bar (so an entry of that side on it is ignored, an opposite one
//!   reverses). n is the rules' one, or the symbol's own per bar
//!   (`SymbolSignals::exit_after_bars`): the number on the bar of the entry that opened
//!   the position (placed while flat, or reversing), which it keeps to its end.
//! - Stops as fractions of that close — a long's stop-loss at close × (1 − sl) and
//!   take-profit at close × (1 + tp), a short's mirrored — or as prices, one per bar (NaN:
//!   none for an entry on that bar). The fractions are the rules' ones, or the symbol's
//!   own per bar (`SymbolSignals::stop_loss_fraction`, ...; NaN: none on that bar). They
//!   become the book's bracket of the order that adds to the position (a re-sizing order
//!   that reduces it carries none).
//! - A trailing stop-loss (`sl_trail`, instead of `sl`): the same order's trailing
//!   stop-loss leg at that fraction of the best price since the fill (the book's
//!   `Trail::Fraction`, exactly what `sl_trail="x%"` on an order placed in `next` does).
//! - A limit entry (`limit`, a fraction of the close, or `limit_price` per bar; NaN: a
//!   market entry on that bar): the entry is a limit order — a long's at close × (1 −
//!   limit), a short's at close × (1 + limit) — sized at that price and carrying stops
//!   that are fractions of it, working until it fills, for `limit_bars` of the symbol's
//!   bars when given, or until a later bar of the symbol with an entry of either side or
//!   an exit of its side (its time exit included) cancels it, before that bar's orders
//!   (a new entry replaces it). With `TargetPercent` a reversal closes at the market
//!   first and the limit order goes to the target from flat; a re-size that reduces the
//!   position is a market order.
//!
//! `run_grid` and `summarise_grid` (`grid`) run many independent backtests (engines, each
//! with its own signals) on a pool of threads sharing one market: each result equals the
//! same backtest run alone.

use crate::clock::iso_time;
use crate::context::TickContext;
use crate::engine::Engine;
use crate::error::{EngineError, Result};
use crate::market::Market;
use crate::orders::{
    is_portion, round_to_lot, Order, OrderRequest, Role, ShareAtFill, Side, TimeInForce, Trail,
};
use crate::portfolio::worth;
use crate::strategy::Strategy;
use std::cell::Cell;

mod grid;
mod sparse;

pub use grid::{run_grid, summarise_grid, GridRun, RunSummary};

/// How an entry's `size` is read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SizeType {
    /// Units of the instrument.
    Amount,
    /// Cash to invest: units = size / close.
    Value,
    /// Fraction of current equity: units = size × equity / close.
    Percent,
    /// Fraction of the buying power when the entry fills (`orders::ShareAtFill`): the most
    /// units whose cost there, with its slippage and commission, is size × buying power
    /// (and that the fill's margin check passes) — vectorbt's `percent` of the cash.
    PercentAtFill,
    /// Target position of size × equity / close units on the entry's side.
    TargetPercent,
}

impl SizeType {
    /// The option's spelling: `size_type="amount" | "value" | "percent" |
    /// "percent_at_fill" | "target_percent"`.
    pub fn parse(value: &str) -> Result<SizeType> {
        match value {
            "amount" => Ok(SizeType::Amount),
            "value" => Ok(SizeType::Value),
            "percent" => Ok(SizeType::Percent),
            "percent_at_fill" => Ok(SizeType::PercentAtFill),
            "target_percent" => Ok(SizeType::TargetPercent),
            other => Err(EngineError::InvalidConfig(format!(
                "size_type = {other:?}: must be 'amount', 'value', 'percent', \
                 'percent_at_fill' or 'target_percent'"
            ))),
        }
    }
}

/// What an entry and an exit of the same side on one bar do.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SameSide {
    /// The exit acts, the entry is ignored.
    #[default]
    Exit,
    /// The entry acts, the exit is ignored.
    Entry,
    /// Neither acts (vectorbt's default).
    Ignore,
}

/// What a long and a short entry on one bar do.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum BothSides {
    /// Neither acts.
    #[default]
    Ignore,
    /// The long entry acts.
    Long,
    /// The short entry acts.
    Short,
}

/// What an entry against the position held does.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum OppositeEntry {
    /// It closes the position and enters on its side (the close first).
    #[default]
    Reverse,
    /// It closes the position, as an exit of the side held would.
    Close,
    /// Nothing.
    Ignore,
}

/// How one bar's signals that contradict each other or the position held are read
/// (vectorbt's `upon_long_conflict` / `upon_short_conflict`, `upon_dir_conflict` and
/// `upon_opposite_entry`). By default the exit wins, two entries cancel out and an
/// opposite entry reverses. They apply in that order, the first as the signals are read
/// (`SignalBars`), a time exit between the first and the others (`Conflicts::decide`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Conflicts {
    pub same_side: SameSide,
    pub both_sides: BothSides,
    pub opposite_entry: OppositeEntry,
}

impl Conflicts {
    /// The options' spellings: `conflict="exit" | "entry" | "ignore"`, `side_conflict=
    /// "ignore" | "long" | "short"`, `opposite_entry="reverse" | "close" | "ignore"`; one
    /// not given (None) reads as its default.
    pub fn parse(
        conflict: Option<&str>,
        side_conflict: Option<&str>,
        opposite_entry: Option<&str>,
    ) -> Result<Conflicts> {
        let refused = |option: &str, value: &str, takes: &str| {
            Err(EngineError::InvalidConfig(format!(
                "{option} = {value:?}: must be {takes}"
            )))
        };
        let same_side = match conflict {
            None => SameSide::default(),
            Some("exit") => SameSide::Exit,
            Some("entry") => SameSide::Entry,
            Some("ignore") => SameSide::Ignore,
            Some(other) => return refused("conflict", other, "'exit', 'entry' or 'ignore'"),
        };
        let both_sides = match side_conflict {
            None => BothSides::default(),
            Some("ignore") => BothSides::Ignore,
            Some("long") => BothSides::Long,
            Some("short") => BothSides::Short,
            Some(other) => return refused("side_conflict", other, "'ignore', 'long' or 'short'"),
        };
        let opposite_entry = match opposite_entry {
            None => OppositeEntry::default(),
            Some("reverse") => OppositeEntry::Reverse,
            Some("close") => OppositeEntry::Close,
            Some("ignore") => OppositeEntry::Ignore,
            Some(other) => {
                return refused("opposite_entry", other, "'reverse', 'close' or 'ignore'");
            }
        };
        Ok(Conflicts {
            same_side,
            both_sides,
            opposite_entry,
        })
    }

    /// What a bar's signals (`kinds`) ask of a symbol holding `held` units: whether to
    /// exit a long, whether to exit a short, and the side of the entry (1, -1, or 0 for
    /// none). An entry and an exit of one side were read already, as the signals were
    /// (`SameSide::settle`, the first of the readings). A time exit due (`timed_out`) is
    /// the rules' own, not a signal: it exits the side held, and an entry of that side is
    /// then ignored, before the other readings.
    #[inline(always)]
    fn decide(self, kinds: u64, held: f64, timed_out: bool) -> (bool, bool, f64) {
        let exit_long = kinds & EXIT != 0 || (timed_out && held > 0.0);
        let exit_short = kinds & SHORT_EXIT != 0 || (timed_out && held < 0.0);
        let long_entry = kinds & ENTRY != 0 && !exit_long;
        let short_entry = kinds & SHORT_ENTRY != 0 && !exit_short;
        let want = match (long_entry, short_entry) {
            (true, false) => 1.0,
            (false, true) => -1.0,
            (true, true) => self.both_sides.side(),
            (false, false) => 0.0,
        };
        if held * want >= 0.0 || self.opposite_entry == OppositeEntry::Reverse {
            return (exit_long, exit_short, want);
        }
        // An entry against the position: it closes it, or does nothing.
        let close = self.opposite_entry == OppositeEntry::Close;
        (
            exit_long || (close && held > 0.0),
            exit_short || (close && held < 0.0),
            0.0,
        )
    }

    /// Whether these readings of both entries or of an entry against the position differ
    /// from the defaults (the rules then read them out of line,
    /// `SignalStrategy::decide_in_parts`).
    fn rereads(self) -> bool {
        self.both_sides != BothSides::default() || self.opposite_entry != OppositeEntry::default()
    }
}

impl SameSide {
    /// One side's entries and exits (a bit per bar, a block of 64 bars) as they act: of an
    /// entry and an exit on one bar, the exit, the entry, or neither.
    #[inline]
    fn settle(self, entries: u64, exits: u64) -> (u64, u64) {
        let both = entries & exits;
        match self {
            SameSide::Exit => (entries & !both, exits),
            SameSide::Entry => (entries, exits & !both),
            SameSide::Ignore => (entries & !both, exits & !both),
        }
    }
}

impl BothSides {
    /// The side of the entry that acts when both are set (1, -1, or 0 for neither).
    #[inline]
    fn side(self) -> f64 {
        match self {
            BothSides::Ignore => 0.0,
            BothSides::Long => 1.0,
            BothSides::Short => -1.0,
        }
    }
}

/// How signals become orders: sizing, stops and when trading starts.
#[derive(Clone, Copy, Debug)]
pub struct SignalRules {
    /// The size of every entry; `None` when each symbol with entries gives its own per bar
    /// (`SymbolSignals::size`).
    pub size: Option<f64>,
    pub size_type: SizeType,
    /// Stop-loss distance as a fraction of the entry bar's close, in (0, 1).
    pub stop_loss: Option<f64>,
    /// Take-profit distance as a fraction of the entry bar's close, > 0 (< 1 for shorts).
    pub take_profit: Option<f64>,
    /// Trailing stop-loss distance as a fraction of the best price since the entry filled,
    /// in (0, 1) (instead of `stop_loss`).
    pub stop_loss_trail: Option<f64>,
    /// Signals on bars before this timestamp are not acted on (the warm-up).
    pub trade_start: i64,
    /// Whether an entry on the side already held adds to the position (pyramiding; not
    /// with `TargetPercent`, whose entries re-size the position to the target).
    pub accumulate: bool,
    /// Exit a position this many bars (>= 1) after its oldest open lot was entered.
    pub exit_after_bars: Option<usize>,
    /// Entries are limit orders this fraction of the signal bar's close better than it
    /// (below for a long, above for a short), in [0, 1).
    pub limit: Option<f64>,
    /// A limit entry works for this many of the symbol's bars (>= 1) from the next one,
    /// then expires; `None`: until it fills or a later signal cancels it.
    pub limit_bars: Option<usize>,
    /// How signals that contradict each other or the position are read.
    pub conflicts: Conflicts,
    /// The portion of the position an exit signal closes, in (0, 1] (the oldest trades
    /// first); `None`: all of it.
    pub exit_portion: Option<f64>,
}

impl SignalRules {
    /// Refuse rules out of range, naming the option and the rule.
    pub fn validate(&self, shorts: bool) -> Result<()> {
        let bad = |m: String| Err(EngineError::InvalidConfig(m));
        if let Some(size) = self.size.filter(|x| !(x.is_finite() && *x > 0.0)) {
            return bad(format!("size = {size}: must be finite and > 0"));
        }
        for (stop, fraction) in [
            (Stop::Loss, self.stop_loss),
            (Stop::Trail, self.stop_loss_trail),
            (Stop::Profit, self.take_profit),
        ] {
            let Some(x) = fraction else { continue };
            if let Some(rule) = stop.refuses(x, shorts) {
                return bad(format!("{} = {x}: {rule}", stop.name()));
            }
        }
        if self.stop_loss_trail.is_some() && self.stop_loss.is_some() {
            return bad("give sl or sl_trail, not both".into());
        }
        if self.exit_after_bars == Some(0) {
            return bad("exit_after_bars = 0: must be a whole number of bars >= 1".into());
        }
        if let Some(x) = self.limit.filter(|x| !limit_takes(*x)) {
            return bad(format!("limit = {x}: {LIMIT_RULE}"));
        }
        if self.limit_bars == Some(0) {
            return bad("limit_bars = 0: must be a whole number of bars >= 1".into());
        }
        if let Some(x) = self.exit_portion.filter(|x| !is_portion(*x)) {
            return bad(format!("exit_portion = {x}: {PORTION_RULE}"));
        }
        if self.accumulate && self.size_type == SizeType::TargetPercent {
            return bad(
                "accumulate with size_type 'target_percent': its entries already \
                        re-size the position to the target (give one or the other)"
                    .into(),
            );
        }
        Ok(())
    }
}

/// A stop an entry may carry as a fraction of its signal bar's close.
#[derive(Clone, Copy, Debug)]
enum Stop {
    Loss,
    Profit,
    Trail,
}

impl Stop {
    /// The option that gives it.
    fn name(self) -> &'static str {
        match self {
            Stop::Loss => "sl",
            Stop::Profit => "tp",
            Stop::Trail => "sl_trail",
        }
    }

    /// The rule fraction `x` breaks (`short`: it may go with a short entry), or None when
    /// it is one this stop takes: a stop-loss, trailing or not, strictly between the price
    /// and zero; a take-profit above the price, and above zero for a short, whose target
    /// is close × (1 − tp).
    fn refuses(self, x: f64, short: bool) -> Option<&'static str> {
        match self {
            Stop::Loss if !(x > 0.0 && x < 1.0) => {
                Some("must be a fraction of the price in (0, 1)")
            }
            Stop::Trail if !(x > 0.0 && x < 1.0) => {
                Some("must be a fraction of the best price in (0, 1)")
            }
            Stop::Profit if !(x.is_finite() && x > 0.0) => {
                Some("must be a fraction of the price > 0")
            }
            Stop::Profit if short && x >= 1.0 => {
                Some("must be below 1 with short entries (a short's target is close x (1 - tp))")
            }
            _ => None,
        }
    }
}

/// Whether `x` is a fraction a limit entry takes (how much better than the close).
fn limit_takes(x: f64) -> bool {
    (0.0..1.0).contains(&x)
}

const PORTION_RULE: &str = "must be a portion of the position in (0, 1] (0.5: half of it, 1: all)";

const LIMIT_RULE: &str = "must be a fraction of the close in [0, 1) (a long's limit at close x \
     (1 - limit), a short's at close x (1 + limit))";

/// One symbol's signals, each aligned to the symbol's own bars (`None`: never set).
#[derive(Clone, Copy, Debug, Default)]
pub struct SymbolSignals<'a> {
    pub entries: Option<&'a [bool]>,
    pub exits: Option<&'a [bool]>,
    pub short_entries: Option<&'a [bool]>,
    pub short_exits: Option<&'a [bool]>,
    /// Stop-loss and take-profit prices of an entry decided on each bar (NaN: none);
    /// instead of the rules' fractions.
    pub stop_loss: Option<&'a [f64]>,
    pub take_profit: Option<&'a [f64]>,
    /// The symbol's own stops as fractions of the close of an entry decided on each bar
    /// (NaN: none on that bar), instead of the rules' ones: a stop-loss, a take-profit, a
    /// trailing stop-loss. This, the time exits and the limit fractions may also be one
    /// value for all the symbol's bars (a number given per symbol: `on_bar`).
    pub stop_loss_fraction: Option<&'a [f64]>,
    pub take_profit_fraction: Option<&'a [f64]>,
    pub trail_fraction: Option<&'a [f64]>,
    /// The symbol's own time exit, per bar: a position is exited this many of the
    /// symbol's bars after it opened, by the number on the bar of the entry that opened it
    /// (a whole number >= 1; NaN: no time exit for an entry on that bar), instead of the
    /// rules' one.
    pub exit_after_bars: Option<&'a [f64]>,
    /// The size of an entry decided on each bar, instead of the rules' size (NaN or 0: no
    /// entry on that bar; validated at the door as NaN or finite and >= 0); or one size
    /// for all the symbol's bars (`on_bar`).
    pub size: Option<&'a [f64]>,
    /// Entries in whole lots of this many units (shares, contracts, a board lot), > 0.
    pub lot_size: Option<f64>,
    /// The limit price of an entry decided on each bar (NaN: a market entry), instead of
    /// the rules' fraction.
    pub limit_price: Option<&'a [f64]>,
    /// The symbol's own limit per bar as a fraction of the close (NaN: a market entry on
    /// that bar), instead of the rules' one.
    pub limit_fraction: Option<&'a [f64]>,
    /// The portion of the position an exit signal on each bar closes, in (0, 1] (NaN: all
    /// of it), instead of the rules' one; or one value for all the symbol's bars.
    pub exit_portion: Option<&'a [f64]>,
}

/// A stop of an entry decided on `bar` at `price`: the bar's own price when given per bar
/// (NaN: none), else the fraction away from the price (`toward` −1 below, +1 above): the
/// symbol's own on the bar (NaN: none), else the rules' one.
#[inline]
fn stop_at(
    prices: Option<&[f64]>,
    fractions: Option<&[f64]>,
    fraction: Option<f64>,
    bar: usize,
    price: f64,
    toward: f64,
) -> Option<f64> {
    match prices {
        Some(p) => Some(p[bar]).filter(|x| !x.is_nan()),
        None => fraction_on(fractions, fraction, bar).map(|f| price * (1.0 + toward * f)),
    }
}

/// The fraction a stop takes on `bar`: the symbol's own on it (NaN: none), else the
/// rules' one.
#[inline]
fn fraction_on(fractions: Option<&[f64]>, fraction: Option<f64>, bar: usize) -> Option<f64> {
    match fractions {
        Some(f) => Some(on_bar(f, bar)).filter(|x| !x.is_nan()),
        None => fraction,
    }
}

/// A symbol's own value on `bar` from its column, where one value (a number given per
/// symbol) stands for every bar: a grid of numbers per symbol then holds a value, not a
/// column of the symbol's bars, per set, symbol and kind.
#[inline]
fn on_bar(values: &[f64], bar: usize) -> f64 {
    values[if values.len() == 1 { 0 } else { bar }]
}

/// Whether a symbol's column of `len` values is one value for every one of its `bars`
/// bars (`on_bar`), rather than a column of its bars.
#[inline]
fn one_for_all(len: usize, bars: usize) -> bool {
    len == 1 && bars != 1
}

/// Where value `i` of symbol `s`'s column of `len` values is, for a refusal: its bar
/// (" on the bar at T (its bar i)"), or nothing when one value stands for every bar.
fn at_bar(market: &Market, s: usize, len: usize, i: usize) -> String {
    match one_for_all(len, market.bars(s).ts.len()) {
        true => String::new(),
        false => format!(
            " on the bar at {} (its bar {i})",
            iso_time(market.bars(s).ts[i])
        ),
    }
}

/// The book's refusal of an entry the rules placed, with the bar it was signalled on.
/// Only stop prices given per bar (`sl_price`, `tp_price`) can be refused (on the wrong
/// side of the close they are checked against); fractions never are.
#[cold]
#[inline(never)]
fn refused_entry(err: EngineError, bar: usize, now: i64) -> EngineError {
    match err {
        EngineError::InvalidOrder(m) => EngineError::InvalidOrder(format!(
            "{m}, from the stop prices given per bar (sl_price, tp_price) on the bar at {} \
             (the symbol's bar {bar}), where an entry was signalled: a long entry's stop-loss \
             must be below its price (that bar's close, or its limit) and its take-profit \
             above it, a short's the other way round (NaN: no stop on that bar)",
            iso_time(now)
        )),
        other => other,
    }
}

/// Refuse a symbol's own stop fraction on a bar that its stop does not take (NaN is none),
/// naming the symbol, the bar and the rule; a take-profit's rule for shorts applies on
/// the bars with a short entry (one fraction for all bars: if any bar has one).
fn check_fractions(market: &Market, s: usize, sig: &SymbolSignals<'_>) -> Result<()> {
    let shorts = sig.short_entries;
    let short = |i: usize, one: bool| match one {
        true => shorts.is_some_and(|e| e.contains(&true)),
        false => shorts.is_some_and(|e| e[i]),
    };
    for (stop, fractions) in [
        (Stop::Loss, sig.stop_loss_fraction),
        (Stop::Trail, sig.trail_fraction),
        (Stop::Profit, sig.take_profit_fraction),
    ] {
        let Some(fractions) = fractions else {
            continue;
        };
        let one = one_for_all(fractions.len(), market.bars(s).ts.len());
        let refused = fractions.iter().enumerate().find_map(|(i, &x)| {
            let rule = (!x.is_nan())
                .then(|| stop.refuses(x, short(i, one)))
                .flatten();
            rule.map(|rule| (i, x, rule))
        });
        if let Some((i, x, rule)) = refused {
            return Err(EngineError::InvalidConfig(format!(
                "{} of {}{} = {x}: {rule} (NaN: no stop for an entry on that bar)",
                stop.name(),
                market.name(s),
                at_bar(market, s, fractions.len(), i),
            )));
        }
    }
    Ok(())
}

/// Refuse a symbol's own time exit on a bar where it is not a whole number of bars >= 1
/// (NaN is none), naming the symbol, the bar and the rule.
fn check_time_exits(market: &Market, s: usize, sig: &SymbolSignals<'_>) -> Result<()> {
    let Some(counts) = sig.exit_after_bars else {
        return Ok(());
    };
    let whole = |n: f64| n >= 1.0 && n.fract() == 0.0;
    match counts.iter().position(|&n| !n.is_nan() && !whole(n)) {
        None => Ok(()),
        Some(i) => Err(EngineError::InvalidConfig(format!(
            "exit_after_bars of {}{} = {}: must be a whole number of bars >= 1 (NaN: no time \
             exit for an entry on that bar)",
            market.name(s),
            at_bar(market, s, counts.len(), i),
            counts[i],
        ))),
    }
}

/// Refuse a symbol's own exit portions outside (0, 1] (NaN is all of it), naming the
/// symbol, the bar and the rule; and a portion below 1 with lot sizes, which the rest
/// of the position would not keep to.
fn check_portions(
    market: &Market,
    s: usize,
    sig: &SymbolSignals<'_>,
    rules: &SignalRules,
) -> Result<()> {
    if let Some(portions) = sig.exit_portion {
        if let Some(i) = portions.iter().position(|&x| !x.is_nan() && !is_portion(x)) {
            return Err(EngineError::InvalidConfig(format!(
                "exit_portion of {}{} = {}: {PORTION_RULE}; NaN on a bar: all of it",
                market.name(s),
                at_bar(market, s, portions.len(), i),
                portions[i],
            )));
        }
    }
    let part = match sig.exit_portion {
        Some(portions) => portions.iter().any(|&x| x < 1.0),
        None => rules.exit_portion.is_some_and(|x| x < 1.0),
    };
    if let (true, Some(lot)) = (part, sig.lot_size) {
        // The book closes a portion of the units held, not of its lots.
        return Err(EngineError::InvalidConfig(format!(
            "exit_portion of {} with lot_size = {lot}: a portion of the position below 1 \
             would leave it in part lots (give one or the other)",
            market.name(s)
        )));
    }
    Ok(())
}

/// Refuse a symbol's limit entries that cannot be: its own limits per bar out of range
/// (fractions in [0, 1), prices finite and > 0; NaN is a market entry) or given both
/// ways, naming the symbol, the bar and the rule.
fn check_limits(
    market: &Market,
    s: usize,
    sig: &SymbolSignals<'_>,
    rules: &SignalRules,
) -> Result<()> {
    let bad = |m: String| Err(EngineError::InvalidConfig(m));
    let given = rules.limit.is_some() || sig.limit_fraction.is_some();
    if sig.limit_price.is_some() && given {
        return bad(format!(
            "limit of {}: give limit as a fraction or limit_price per bar, not both",
            market.name(s)
        ));
    }
    for (name, values, takes, rule) in [
        (
            "limit",
            sig.limit_fraction,
            limit_takes as fn(f64) -> bool,
            LIMIT_RULE,
        ),
        (
            "limit_price",
            sig.limit_price,
            |x: f64| x.is_finite() && x > 0.0,
            "must be a finite price > 0",
        ),
    ] {
        let Some(values) = values else { continue };
        if let Some(i) = values.iter().position(|&x| !x.is_nan() && !takes(x)) {
            return bad(format!(
                "{name} of {}{} = {}: {rule} (NaN: a market entry on that bar)",
                market.name(s),
                at_bar(market, s, values.len(), i),
                values[i],
            ));
        }
    }
    Ok(())
}

/// The ids of the limit entries among `orders` that a signal cancels: longs' when `long`,
/// shorts' when `short` (a partly filled one's rest included).
fn limit_entries<'o>(orders: impl Iterator<Item = &'o Order>, long: bool, short: bool) -> Vec<u64> {
    orders
        .filter(|o| o.live && o.role == Role::Entry && o.limit.is_some())
        .filter(|o| if o.side == Side::Buy { long } else { short })
        .map(|o| o.id)
        .collect()
}

impl SymbolSignals<'_> {
    fn columns(&self) -> [(&'static str, Option<&[bool]>); 4] {
        [
            ("entries", self.entries),
            ("exits", self.exits),
            ("short_entries", self.short_entries),
            ("short_exits", self.short_exits),
        ]
    }
}

/// Which signals are set on a bar, one bit per column of `SymbolSignals::columns`.
const ENTRY: u64 = 1;
const EXIT: u64 = 2;
const SHORT_ENTRY: u64 = 4;
const SHORT_EXIT: u64 = 8;
/// The bits of a signal bar's record holding which signals are set (the rest: its bar).
const KIND_BITS: u32 = 4;

/// Signals (bytes holding 0 or 1) as bits, 64 to a word, the first lowest. Each column
/// is packed on its own, in one tight pass, before the columns' words are read together:
/// packing the four columns' blocks in one loop kept a dozen slices' bounds live, most of
/// them on the stack (about 300 instructions per block of 64 bars, against 200 now on the
/// peers' data; 2% of that whole run's instructions).
fn words_of(bytes: &[u8]) -> Vec<u64> {
    let blocks = bytes.chunks_exact(64);
    let rest = blocks.remainder();
    let mut words: Vec<u64> = blocks
        .map(|b| word_of_64(b.try_into().expect("64 signals")))
        .collect();
    if !rest.is_empty() {
        words.push(
            rest.iter()
                .enumerate()
                .fold(0, |w, (j, &b)| w | u64::from(b) << j),
        );
    }
    words
}

/// 64 signals (bytes holding 0 or 1) as bits: sixteen at a time, each byte's bit moved to
/// its top and the tops gathered in one instruction (SSE2, which every x86-64 has).
#[cfg(target_arch = "x86_64")]
#[inline]
fn word_of_64(bytes: &[u8; 64]) -> u64 {
    use std::arch::x86_64::{__m128i, _mm_loadu_si128, _mm_movemask_epi8, _mm_slli_epi64};
    let mut w = 0u64;
    for (j, sixteen) in bytes.chunks_exact(16).enumerate() {
        // SAFETY: SSE2 is part of x86-64; the load reads the 16 bytes of `sixteen`
        // (unaligned loads allowed), and a shift within 64-bit lanes moves each byte's
        // bit 0 to its bit 7 (bytes hold 0 or 1, so nothing crosses into the next byte).
        let bits = unsafe {
            let v = _mm_loadu_si128(sixteen.as_ptr().cast::<__m128i>());
            _mm_movemask_epi8(_mm_slli_epi64::<7>(v)) as u32 as u64
        };
        w |= bits << (16 * j);
    }
    w
}

/// 64 signals (bytes holding 0 or 1) as bits, eight at a time: the multiply moves byte
/// k's bit to bit 56 + k without carries (each partial product lands apart).
#[cfg(not(target_arch = "x86_64"))]
#[inline]
fn word_of_64(bytes: &[u8; 64]) -> u64 {
    bytes.chunks_exact(8).enumerate().fold(0, |w, (j, eight)| {
        let eight = u64::from_le_bytes(eight.try_into().expect("8 bytes"));
        w | (eight.wrapping_mul(0x0102_0408_1020_4080) >> 56) << (8 * j)
    })
}

/// Sizes as bits, 64 to a word, the first lowest: whether each is above 0.
fn sized_words(sizes: &[f64]) -> Vec<u64> {
    sizes
        .chunks(64)
        .map(|c| {
            c.iter()
                .enumerate()
                .fold(0, |w, (j, &x)| w | u64::from(x > 0.0) << j)
        })
        .collect()
}

/// One symbol's signal bars in order, each with which signals are set there: the bars in
/// between need no work at all, so a symbol's next signal is the next record, and the
/// rules read what is set on a bar from it (the columns are read once, here). Also how
/// many entries and exits are set.
#[derive(Clone, Debug, Default)]
struct SignalBars {
    /// Per bar with a signal set: bar << KIND_BITS | its signals (`ENTRY` ... `SHORT_EXIT`).
    marks: Vec<u64>,
    /// Long plus short entries, exits of both sides.
    entries: usize,
    exits: usize,
}

impl SignalBars {
    /// `sig`'s signal bars of a symbol with `bars` bars, an entry and an exit of one side
    /// on one bar read as `same_side` says.
    fn new(sig: &SymbolSignals<'_>, bars: usize, same_side: SameSide) -> Self {
        // SAFETY: a bool is one byte holding 0 or 1, so the slice reads as bytes.
        let words = sig.columns().map(|(_, c)| {
            c.map_or_else(Vec::new, |c| {
                words_of(unsafe { std::slice::from_raw_parts(c.as_ptr().cast::<u8>(), c.len()) })
            })
        });
        // An entry on a bar whose own size is not above 0 (NaN or 0) is not set at all:
        // the rule costs the runs nothing (the rules' one size is always above 0).
        // (One size for all the symbol's bars, `one_for_all`: every entry set, or none.
        // Written out here: calling it moved the compiler's layout of the run's loop, 2%
        // more instructions there.)
        let sized = sig.size.map(|s| match s.len() == 1 && bars != 1 {
            true => vec![if s[0] > 0.0 { u64::MAX } else { 0 }; bars.div_ceil(64)],
            false => sized_words(s),
        });
        let mut marks = Vec::new();
        for k in 0..bars.div_ceil(64) {
            // Block k of 64 bars, a word per column (none: no signal set).
            let word = |c: usize| words[c].get(k).copied().unwrap_or(0);
            let sized = sized.as_ref().map_or(u64::MAX, |s| s[k]);
            let (entry, exit) = same_side.settle(word(0) & sized, word(1));
            let (short_entry, short_exit) = same_side.settle(word(2) & sized, word(3));
            let mut any = entry | exit | short_entry | short_exit;
            while any != 0 {
                let j = any.trailing_zeros();
                any &= any - 1;
                let kinds = (entry >> j & 1)
                    | (exit >> j & 1) << 1
                    | (short_entry >> j & 1) << 2
                    | (short_exit >> j & 1) << 3;
                marks.push(((64 * k + j as usize) as u64) << KIND_BITS | kinds);
            }
        }
        // Counted from the records rather than by counting each block's bits: the wheel's
        // baseline processor has no instruction for that, and a dozen in its place for
        // each of four words cost more than the few records of a block.
        let (entries, exits) = marks.iter().fold((0, 0), |(n, x), &m| {
            let set = |kind: u64| usize::from(m & kind != 0);
            (
                n + set(ENTRY) + set(SHORT_ENTRY),
                x + set(EXIT) + set(SHORT_EXIT),
            )
        });
        SignalBars {
            marks,
            entries,
            exits,
        }
    }

    /// The place in `marks` of the first signal bar at or after `from`, looking from
    /// place `k` on (the records before `k` are before `from`).
    #[inline]
    fn next_from(&self, mut k: usize, from: usize) -> usize {
        while self
            .marks
            .get(k)
            .is_some_and(|&m| ((m >> KIND_BITS) as usize) < from)
        {
            k += 1;
        }
        k
    }
}

/// How many records ahead of the next one a symbol's signal bars are fetched into cache
/// (a line of eight): each symbol reads its own records at its own pace, so they are
/// twenty streams (or more) no hardware prefetcher follows, and the read of every eighth
/// record waited for memory (3% of the 20 symbols' run).
const MARKS_AHEAD: usize = 8;

/// Per symbol, its signal bars and the next one to act on.
#[derive(Clone, Debug)]
struct Due {
    bars: SignalBars,
    /// The place in `bars.marks` of the next signal bar.
    next: usize,
    /// That bar (`usize::MAX`: none) and its signals.
    bar: usize,
    kinds: u64,
}

impl Due {
    fn new(sig: &SymbolSignals<'_>, bars: usize, same_side: SameSide) -> Self {
        let mut due = Due {
            bars: SignalBars::new(sig, bars, same_side),
            next: 0,
            bar: 0,
            kinds: 0,
        };
        due.at(0);
        due
    }

    /// Make the record at place `k` the next one.
    #[inline]
    fn at(&mut self, k: usize) {
        self.next = k;
        crate::market::prefetch_far(&self.bars.marks, k + MARKS_AHEAD);
        (self.bar, self.kinds) = match self.bars.marks.get(k) {
            Some(&m) => ((m >> KIND_BITS) as usize, m & ((1 << KIND_BITS) - 1)),
            None => (usize::MAX, 0),
        };
    }

    /// Move on to the first signal at or after `from`.
    #[inline]
    fn advance(&mut self, from: usize) {
        self.at(self.bars.next_from(self.next, from));
    }
}

/// The native strategy of signals mode.
pub struct SignalStrategy<'a> {
    signals: Vec<SymbolSignals<'a>>,
    due: Vec<Due>,
    rules: SignalRules,
    /// Whether an entry can carry anything its bar decides beyond its size: a stop (as a
    /// fraction, a trail or a price per bar) or a time exit of the symbol's own. Decided
    /// once, so a run without them places its entries without looking.
    attaches: bool,
    /// Whether any position can have a time exit (the rules' or a symbol's own).
    time_exits: bool,
    /// Per symbol with time exits of its own, how many bars its position is held at most:
    /// the number on the bar of the entry placed while it was flat or reversing (the
    /// entry that opens the position it holds), None for none.
    /// (Cells: kept from `&self`, so that the rules' hot path reads the rest as unchanged.)
    hold_for: Vec<Cell<Option<usize>>>,
    /// Whether any entry can be a limit order (the rules' `limit`, a symbol's own).
    limits: bool,
    /// Whether an exit signal can close less than the whole position (the rules'
    /// `exit_portion`, a symbol's own).
    portions: bool,
    /// Whether the rules decide out of their hot path (`decide_in_parts`): other readings
    /// of conflicting signals than the defaults, or `portions`. (Kept, not derived at each
    /// signal bar: the hot path then reads one flag.)
    out_of_line: bool,
}

impl<'a> SignalStrategy<'a> {
    /// Check that every symbol has one signal per bar of its own, and the rules.
    pub fn new(
        market: &Market,
        signals: Vec<SymbolSignals<'a>>,
        rules: SignalRules,
    ) -> Result<Self> {
        if signals.len() != market.symbol_count() {
            return Err(EngineError::InvalidConfig(format!(
                "signals for {} symbols, the market has {}",
                signals.len(),
                market.symbol_count()
            )));
        }
        for (s, sig) in signals.iter().enumerate() {
            let bars = market.bars(s).ts.len();
            let lengths = sig.columns().map(|(name, c)| (name, c.map(<[bool]>::len)));
            // (The symbol's own rules may be one value for all its bars: `on_bar`.)
            let prices = [
                ("sl_price", sig.stop_loss, false),
                ("tp_price", sig.take_profit, false),
                ("size", sig.size, true),
                ("sl", sig.stop_loss_fraction, true),
                ("tp", sig.take_profit_fraction, true),
                ("sl_trail", sig.trail_fraction, true),
                ("exit_after_bars", sig.exit_after_bars, true),
                ("limit_price", sig.limit_price, false),
                ("limit", sig.limit_fraction, true),
                ("exit_portion", sig.exit_portion, true),
            ]
            .map(|(name, c, one)| (name, c.map(<[f64]>::len), one));
            let lengths = lengths.map(|(name, len)| (name, len, false));
            for (name, len, one) in lengths.into_iter().chain(prices) {
                if let Some(len) =
                    len.filter(|&len| len != bars && !(one && one_for_all(len, bars)))
                {
                    return Err(EngineError::InvalidConfig(format!(
                        "{name} of {}: {len} values for its {bars} bars (signals are \
                         aligned to each symbol's own bars)",
                        market.name(s),
                    )));
                }
            }
            for (name, prices, fraction) in [
                (
                    "sl",
                    sig.stop_loss,
                    rules.stop_loss.is_some() || sig.stop_loss_fraction.is_some(),
                ),
                (
                    "tp",
                    sig.take_profit,
                    rules.take_profit.is_some() || sig.take_profit_fraction.is_some(),
                ),
            ] {
                if prices.is_some() && fraction {
                    return Err(EngineError::InvalidConfig(format!(
                        "{name} of {}: give {name} as a fraction or as prices per bar, not both",
                        market.name(s)
                    )));
                }
            }
            check_fractions(market, s, sig)?;
            check_time_exits(market, s, sig)?;
            check_limits(market, s, sig, &rules)?;
            check_portions(market, s, sig, &rules)?;
            let enters = sig.entries.is_some() || sig.short_entries.is_some();
            if rules.size.is_none() && sig.size.is_none() && enters {
                return Err(EngineError::InvalidConfig(format!(
                    "size: sizes are given per bar, but none for {}, which has entry \
                     signals (give every symbol with entries its sizes)",
                    market.name(s)
                )));
            }
            if let Some(lot) = sig.lot_size.filter(|x| !(x.is_finite() && *x > 0.0)) {
                return Err(EngineError::InvalidConfig(format!(
                    "lot_size of {} = {lot}: must be a finite number of units > 0",
                    market.name(s)
                )));
            }
            let trails = rules.stop_loss_trail.is_some() || sig.trail_fraction.is_some();
            if sig.stop_loss.is_some() && trails {
                return Err(EngineError::InvalidConfig(format!(
                    "sl_price of {}: give sl_price or sl_trail, not both",
                    market.name(s)
                )));
            }
            if trails && (rules.stop_loss.is_some() || sig.stop_loss_fraction.is_some()) {
                return Err(EngineError::InvalidConfig(format!(
                    "sl of {}: give sl or sl_trail, not both",
                    market.name(s)
                )));
            }
        }
        rules.validate(signals.iter().any(|s| s.short_entries.is_some()))?;
        let due = signals
            .iter()
            .enumerate()
            .map(|(s, sig)| Due::new(sig, market.bars(s).ts.len(), rules.conflicts.same_side))
            .collect();
        let attaches = rules.stop_loss.is_some()
            || rules.take_profit.is_some()
            || rules.stop_loss_trail.is_some()
            || signals.iter().any(|s| {
                s.stop_loss.is_some()
                    || s.take_profit.is_some()
                    || s.stop_loss_fraction.is_some()
                    || s.take_profit_fraction.is_some()
                    || s.trail_fraction.is_some()
                    || s.exit_after_bars.is_some()
            });
        let time_exits =
            rules.exit_after_bars.is_some() || signals.iter().any(|s| s.exit_after_bars.is_some());
        let limits = rules.limit.is_some()
            || signals
                .iter()
                .any(|s| s.limit_price.is_some() || s.limit_fraction.is_some());
        let hold_for = vec![Cell::new(None); signals.len()];
        let portions =
            rules.exit_portion.is_some() || signals.iter().any(|s| s.exit_portion.is_some());
        Ok(SignalStrategy {
            signals,
            due,
            rules,
            attaches,
            time_exits,
            hold_for,
            limits,
            portions,
            out_of_line: rules.conflicts.rereads() || portions,
        })
    }

    /// At most how many orders and closed trades the signals can make (capped: a hint to
    /// size the logs, see `Engine::reserve`). Each entry signal places at most a close, an
    /// entry and its two legs; each exit signal at most a close.
    pub fn log_sizes(&self) -> (usize, usize) {
        const CAP: usize = 1 << 20;
        let entries: usize = self.due.iter().map(|d| d.bars.entries).sum();
        let exits: usize = self.due.iter().map(|d| d.bars.exits).sum();
        let prices = |f: fn(&SymbolSignals<'_>) -> bool| self.signals.iter().any(f);
        let legs = usize::from(
            self.rules.stop_loss.is_some()
                || self.rules.stop_loss_trail.is_some()
                || prices(|s| {
                    s.stop_loss.is_some()
                        || s.stop_loss_fraction.is_some()
                        || s.trail_fraction.is_some()
                }),
        ) + usize::from(
            self.rules.take_profit.is_some()
                || prices(|s| s.take_profit.is_some() || s.take_profit_fraction.is_some()),
        );
        ((entries * (2 + legs) + exits).min(CAP), entries.min(CAP))
    }

    /// Place an order of `units` (signed: + buys) for `symbol`, decided on bar `bar` at
    /// `price` (its limit, for a limit entry: `limit`); the stops go with it when it adds
    /// to a position on the `want` side, and when it opens one (decided while `held` was
    /// flat, or reversing) its time exit. Returns its id (None: nothing to place).
    /// (Inlined into its two callers, where it was before the rules grew.)
    #[inline(always)]
    #[allow(clippy::too_many_arguments)] // (inlined: each is a register, not a struct to fill)
    fn place<D: Desk>(
        &self,
        desk: &mut D,
        symbol: usize,
        bar: usize,
        price: f64,
        units: f64,
        want: f64,
        held: f64,
        limit: Option<f64>,
    ) -> Result<Option<u64>> {
        if !(units.is_finite() && units != 0.0) {
            return Ok(None);
        }
        let side = if units > 0.0 { Side::Buy } else { Side::Sell };
        let mut req = OrderRequest::market(symbol, side, units.abs());
        if limit.is_some() {
            self.limit_order(&mut req, limit);
        }
        if self.attaches && side.sign() == want {
            self.attach(&mut req, bar, price, want, held * want <= 0.0);
        }
        match desk.submit(req) {
            Ok(id) => Ok(Some(id)),
            Err(e) => Err(refused_entry(e, bar, desk.now())),
        }
    }

    /// Give `req`, an entry of `req.symbol` decided on `bar` at `price` that adds to the
    /// `want` side, its stops, and keep the symbol's own time exit on that bar when it
    /// `opens` a position. Out of line and cold (once per entry, where the rules run at
    /// every signal bar): runs without either never come here, and the rules' hot code
    /// stays as small as before they were added (the stops inlined cost the peers' data's
    /// run 8-10%, a time exit kept in the rules 4%: the instruction cache, BENCHMARKS.md).
    #[cold]
    #[inline(never)]
    fn attach(&self, req: &mut OrderRequest, bar: usize, price: f64, want: f64, opens: bool) {
        if opens {
            self.hold_from(req.symbol, bar);
        }
        let (r, sig) = (&self.rules, &self.signals[req.symbol]);
        req.stop_loss = stop_at(
            sig.stop_loss,
            sig.stop_loss_fraction,
            r.stop_loss,
            bar,
            price,
            -want,
        );
        req.take_profit = stop_at(
            sig.take_profit,
            sig.take_profit_fraction,
            r.take_profit,
            bar,
            price,
            want,
        );
        req.stop_loss_trail =
            fraction_on(sig.trail_fraction, r.stop_loss_trail, bar).map(Trail::Fraction);
    }

    /// Make `req` a limit order at `limit`, for the rules' `limit_bars` when given.
    #[cold]
    #[inline(never)]
    fn limit_order(&self, req: &mut OrderRequest, limit: Option<f64>) {
        req.limit = limit;
        if let Some(n) = self.rules.limit_bars {
            req.time_in_force = TimeInForce::Bars(n);
        }
    }

    /// The limit price of `symbol`'s entry on the `want` side decided on `bar` at `close`
    /// (None: a market entry): its own price on the bar, else a fraction better than the
    /// close (the symbol's own on the bar, else the rules').
    #[inline]
    fn limit_on(&self, symbol: usize, bar: usize, close: f64, want: f64) -> Option<f64> {
        if !self.limits || want == 0.0 {
            return None;
        }
        self.limit_price(symbol, bar, close, want)
    }

    #[cold]
    #[inline(never)]
    fn limit_price(&self, symbol: usize, bar: usize, close: f64, want: f64) -> Option<f64> {
        let sig = &self.signals[symbol];
        match sig.limit_price {
            Some(prices) => Some(prices[bar]).filter(|x| !x.is_nan()),
            None => fraction_on(sig.limit_fraction, self.rules.limit, bar)
                .map(|f| close * (1.0 - want * f)),
        }
    }

    /// Whether `symbol`'s position, at its bar `i`, is due its time exit.
    #[inline]
    fn times_out<D: Desk>(&self, desk: &D, symbol: usize, i: usize) -> bool {
        self.deadline(symbol, || desk.opened_at(symbol))
            .is_some_and(|due| i >= due)
    }

    /// The bar at which `symbol`'s position opened at bar `opened`
    /// (`Position::opened_at`) is due its time exit (`None`: no time exit, or nothing
    /// held; `opened` asked only with one): its own number of bars, else the rules'.
    #[inline]
    fn deadline(&self, symbol: usize, opened: impl FnOnce() -> Option<usize>) -> Option<usize> {
        if !self.time_exits {
            return None;
        }
        let n = match self.signals[symbol].exit_after_bars {
            Some(_) => self.hold_for[symbol].get(),
            None => self.rules.exit_after_bars,
        }?;
        opened().map(|bar| bar.saturating_add(n))
    }

    /// Whether the entries can be orders that expire after a number of bars (limit
    /// entries with `limit_bars`; no other order the rules place has a last bar).
    pub(super) fn expiring(&self) -> bool {
        self.limits && self.rules.limit_bars.is_some()
    }

    /// Whether the rules must read every bar the run visits (a time exit may fall on any).
    #[inline]
    fn times_exits(&self) -> bool {
        self.time_exits
    }

    /// Keep the time exit of `symbol`'s entry decided on `bar` while flat or reversing
    /// (the one that opens its next position): its own number on that bar, if it has
    /// its own.
    fn hold_from(&self, symbol: usize, bar: usize) {
        if let Some(counts) = self.signals[symbol].exit_after_bars {
            // (Whole and >= 1, checked by `new`; a count past any run is never due.)
            let n = Some(on_bar(counts, bar))
                .filter(|n| !n.is_nan())
                .map(|n| n as usize);
            self.hold_for[symbol].set(n);
        }
    }

    /// The size of `symbol`'s entry decided on `bar`: its own per bar, or the rules' one.
    #[inline]
    fn size(&self, symbol: usize, bar: usize) -> f64 {
        match self.signals[symbol].size {
            Some(sizes) => on_bar(sizes, bar),
            // (`new` refuses a symbol with entries and neither.)
            None => self.rules.size.unwrap_or(f64::NAN),
        }
    }

    /// `Conflicts::decide` out of the rules' hot path, for rules with other readings than
    /// the defaults or with exits that may close a portion of the position (the hot path
    /// has the defaults folded into it, and closes all of it). When an exit signal closes
    /// its portion of the position, that is done here (working limit entries of its side
    /// cancelled first, as the rules would), and nothing else acts on the
    /// bar (the entry, if any, was read as not acting): the decision returned is then to
    /// do nothing. Else the decision, for the rules to act on.
    #[cold]
    #[inline(never)]
    fn decide_in_parts<D: Desk>(
        &self,
        desk: &mut D,
        symbol: usize,
        i: usize,
        kinds: u64,
        held: f64,
        timed_out: bool,
    ) -> Result<(bool, bool, f64)> {
        let decided = self.rules.conflicts.decide(kinds, held, timed_out);
        let (exit_long, exit_short, want) = decided;
        let exits = (held > 0.0 && exit_long) || (held < 0.0 && exit_short);
        if !(self.portions && exits && want == 0.0) {
            return Ok(decided);
        }
        let portion = self.closing_portion(symbol, i, kinds, held, timed_out);
        if portion == 1.0 {
            return Ok(decided);
        }
        if self.limits {
            desk.cancel_limit_entries(symbol, exit_long, exit_short);
        }
        desk.close_portion(symbol, portion)?;
        // Done: no exit, no entry left for the rules to act on.
        Ok((false, false, 0.0))
    }

    /// The portion of `symbol`'s position (holding `held`) that closes on its bar `i`,
    /// whose signals `kinds` ask to close it: an exit signal's portion (its own on the bar,
    /// NaN: all; else the rules'), unless a time exit is due (`timed_out`) or an entry
    /// against the position acts (reverses or closes it): they close all of it.
    fn closing_portion(
        &self,
        symbol: usize,
        i: usize,
        kinds: u64,
        held: f64,
        timed_out: bool,
    ) -> f64 {
        // Where the entry stands before it is read against the position.
        let reversing = Conflicts {
            opposite_entry: OppositeEntry::Reverse,
            ..self.rules.conflicts
        };
        let (_, _, want) = reversing.decide(kinds, held, timed_out);
        let against =
            held * want < 0.0 && self.rules.conflicts.opposite_entry != OppositeEntry::Ignore;
        if timed_out || against {
            return 1.0;
        }
        match self.signals[symbol].exit_portion {
            Some(portions) => Some(on_bar(portions, i))
                .filter(|x| !x.is_nan())
                .unwrap_or(1.0),
            None => self.rules.exit_portion.unwrap_or(1.0),
        }
    }

    /// The first bar of `symbol` at or after `from` with a signal (`usize::MAX`: none).
    #[inline]
    fn next_signal(&self, symbol: usize) -> usize {
        self.due[symbol].bar
    }

    /// Signals before bar `from` are never acted on (the warm-up before `trade_start`).
    fn skip_to(&mut self, symbol: usize, from: usize) {
        self.due[symbol].advance(from);
    }

    /// `symbol`'s bar `i` (its latest, at the current tick), as the rules read it: nothing
    /// unless a signal is set on it (see the module documentation for the rules).
    #[inline]
    fn on_symbol_bar<D: Desk>(&mut self, desk: &mut D, symbol: usize, i: usize) -> Result<()> {
        let due = &mut self.due[symbol];
        if i > due.bar {
            // A signal bar passed without being seen (neither run skips one).
            due.advance(i);
        }
        let signal = (i == due.bar).then(|| {
            let kinds = due.kinds;
            due.at(due.next + 1);
            kinds
        });
        // The time exit acts on any bar, with a signal or not.
        let timed_out = self.times_out(desk, symbol, i);
        let kinds = match signal {
            Some(kinds) => kinds,
            None if timed_out => 0,
            None => return Ok(()),
        };
        if desk.now() < self.rules.trade_start {
            return Ok(());
        }
        let held = desk.held(symbol);
        // (An entry whose size on this bar is not above 0 was never set: `SignalBars`.)
        let (exit_long, exit_short, want) = match self.out_of_line {
            false => Conflicts::default().decide(kinds, held, timed_out),
            true => self.decide_in_parts(desk, symbol, i, kinds, held, timed_out)?,
        };
        let exits = (held > 0.0 && exit_long) || (held < 0.0 && exit_short);
        if self.limits && (want != 0.0 || exit_long || exit_short) {
            // The latest signal decides: a limit entry still working is cancelled by an
            // entry (a new one replaces it) or an exit of its side, before anything else.
            desk.cancel_limit_entries(symbol, want != 0.0 || exit_long, want != 0.0 || exit_short);
        }
        let price = desk.price(symbol);
        // What one unit is worth at that price: a value or a share of equity buys units of
        // it (a contract's price times its multiplier).
        let unit = worth(1.0, price, desk.multiplier(symbol));
        if self.rules.size_type == SizeType::TargetPercent {
            let limit = self.limit_on(symbol, i, price, want);
            // With a limit, a reversal closes at the market first (as with the other
            // size types) and the limit order goes from flat to the target.
            let closes = exits || (limit.is_some() && held * want < 0.0);
            if closes {
                desk.close_position(symbol)?;
            }
            if want == 0.0 {
                return Ok(());
            }
            let after = if closes { 0.0 } else { held };
            let (price, unit) = match limit {
                Some(at) => (at, worth(1.0, at, desk.multiplier(symbol))),
                None => (price, unit),
            };
            let mut target = want * self.size(symbol, i) * desk.equity() / unit;
            if let (Some(lot), true) = (self.signals[symbol].lot_size, target.is_finite()) {
                // Towards zero: a target in lots is never overshot.
                target = round_to_lot(target.abs(), lot).copysign(target);
            }
            // (A re-size that reduces the position is no entry: a market order.)
            let limit = limit.filter(|_| (target - after) * want > 0.0);
            return self
                .place(desk, symbol, i, price, target - after, want, held, limit)
                .map(|_| ());
        }
        if exits || held * want < 0.0 {
            desk.close_position(symbol)?;
        }
        if want == 0.0 || (held * want > 0.0 && !self.rules.accumulate) {
            return Ok(()); // no pyramiding, unless the rules accumulate
        }
        let size = self.size(symbol, i);
        let lot = self.signals[symbol].lot_size;
        // A limit entry is sized at its limit, the price it is placed to fill at.
        let limit = self.limit_on(symbol, i, price, want);
        let (price, unit) = match limit {
            Some(at) => (at, worth(1.0, at, desk.multiplier(symbol))),
            None => (price, unit),
        };
        let mut units = match self.rules.size_type {
            SizeType::Amount => size,
            SizeType::Value => size / unit,
            _ => size * desk.equity() / unit,
        };
        // Sized at the fill, the units are an estimate until then, in any units (the fill
        // takes the lots, and decides).
        let at_fill = (self.rules.size_type == SizeType::PercentAtFill).then_some(ShareAtFill {
            fraction: size,
            lot,
        });
        if let (Some(lot), true, None) = (lot, units.is_finite(), at_fill) {
            units = round_to_lot(units, lot);
        }
        if !(units.is_finite() && units > 0.0) {
            return Ok(());
        }
        let placed = self.place(desk, symbol, i, price, want * units, want, held, limit)?;
        // With `at_fill` the units are its estimate: the fill sizes it.
        if let (Some(id), Some(share)) = (placed, at_fill) {
            desk.size_at_fill(id, share);
        }
        Ok(())
    }
}

/// What the signal rules read and do at a symbol's bar: the engine's tick context (the
/// event-driven run) or the sparse driver's desk over the same book and portfolio.
trait Desk {
    /// The current tick's time.
    fn now(&self) -> i64;
    /// `symbol`'s position (signed units).
    fn held(&self, symbol: usize) -> f64;
    /// `symbol`'s multiplier (`Config::multipliers`).
    fn multiplier(&self, symbol: usize) -> f64;
    /// The bar at which `symbol`'s position was opened (`Position::opened_at`).
    fn opened_at(&self, symbol: usize) -> Option<usize>;
    /// `symbol`'s latest close.
    fn price(&self, symbol: usize) -> f64;
    /// The account's equity now (a read: the sparse driver sums its parked positions).
    fn equity(&mut self) -> f64;
    fn submit(&mut self, req: OrderRequest) -> Result<u64>;
    /// Entry `id`, just placed, is sized when it fills (`Book::size_at_fill`).
    fn size_at_fill(&mut self, id: u64, share: ShareAtFill);
    /// Close `portion` (0 < portion <= 1) of `symbol`'s position, the oldest trades first.
    fn close_portion(&mut self, symbol: usize, portion: f64) -> Result<Option<u64>>;
    /// Close all of `symbol`'s position.
    #[inline]
    fn close_position(&mut self, symbol: usize) -> Result<Option<u64>> {
        self.close_portion(symbol, 1.0)
    }
    /// Cancel `symbol`'s working limit entries: the longs' when `long`, the shorts' when
    /// `short` (`limit_entries`).
    fn cancel_limit_entries(&mut self, symbol: usize, long: bool, short: bool);
}

impl Desk for TickContext<'_> {
    #[inline]
    fn now(&self) -> i64 {
        TickContext::now(self)
    }
    #[inline]
    fn held(&self, symbol: usize) -> f64 {
        self.position(symbol).size
    }
    #[inline]
    fn multiplier(&self, symbol: usize) -> f64 {
        self.position(symbol).multiplier
    }
    #[inline]
    fn opened_at(&self, symbol: usize) -> Option<usize> {
        self.position(symbol).opened_at()
    }
    #[inline]
    fn price(&self, symbol: usize) -> f64 {
        TickContext::price(self, symbol)
    }
    #[inline]
    fn equity(&mut self) -> f64 {
        TickContext::equity(self)
    }
    fn submit(&mut self, req: OrderRequest) -> Result<u64> {
        TickContext::submit(self, req)
    }
    fn size_at_fill(&mut self, id: u64, share: ShareAtFill) {
        TickContext::size_at_fill(self, id, share);
    }
    fn close_portion(&mut self, symbol: usize, portion: f64) -> Result<Option<u64>> {
        TickContext::close_portion(self, symbol, portion)
    }
    fn cancel_limit_entries(&mut self, symbol: usize, long: bool, short: bool) {
        for id in limit_entries(self.working_orders(symbol), long, short) {
            self.cancel(id);
        }
    }
}

impl Strategy for SignalStrategy<'_> {
    #[inline]
    fn on_bar(&mut self, ctx: &mut TickContext<'_>, symbol: usize) -> Result<()> {
        match ctx.bar_index(symbol) {
            Some(i) => self.on_symbol_bar(ctx, symbol, i),
            None => Ok(()),
        }
    }
}

/// Run one engine with its signal strategy: by the sparse driver (`sparse`), which visits
/// only the ticks where something can happen and gives the same results as the
/// event-driven run (`Engine::run` with the strategy), or by that run where the driver
/// does not apply (an engine with studies declared).
pub fn run(engine: &mut Engine, strategy: &mut SignalStrategy<'_>) -> Result<()> {
    if engine.config().order_delay > 0 {
        // The rules decide from the position held at each signal bar, which an order
        // still waiting has not changed yet: they would enter twice.
        return Err(EngineError::InvalidConfig(format!(
            "order_delay = {} is for orders a strategy places; signals mode does not take it \
             (shift the signals by the bars instead)",
            engine.config().order_delay
        )));
    }
    let (orders, trades) = strategy.log_sizes();
    engine.reserve(orders, trades);
    sparse::run(engine, strategy)
}

#[cfg(test)]
#[path = "signals_tests.rs"]
mod tests;
