//! Engine options: one struct, its defaults and its validation, in one place.
//!
//! The Python bindings build a `Config` from the keyword options of `_core.Engine` (the
//! names below in backticks are those options); nothing else in the core reads options.

use crate::broker::LimitFill;
use crate::error::{EngineError, Result};
use crate::portfolio::{AfterFill, CarryRates, Portfolio};

/// When a market order fills.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FillAt {
    /// At the open of the symbol's next bar (default: no look-ahead).
    NextOpen,
    /// At the close of the bar on which the order was placed (`trade_on_close`).
    Close,
}

impl FillAt {
    /// The option's spelling: `fill_at="next_open" | "close"`.
    pub fn parse(value: &str) -> Result<FillAt> {
        match value {
            "next_open" => Ok(FillAt::NextOpen),
            "close" => Ok(FillAt::Close),
            other => Err(EngineError::InvalidConfig(format!(
                "fill_at = {other:?}: must be 'next_open' or 'close'"
            ))),
        }
    }
}

/// What one fill pays the broker: `rate` × notional + `per_unit` × units + `fixed`, at
/// least `minimum` when there is one, and at most `cap` × notional when there is a cap
/// (a broker's schedule such as 0.005 a share, 1.00 at least, 1% of the trade's value at
/// most). An order fills once, so these are per order too. A maker's fill (a limit order
/// filled at its own limit price: it rested and the market came to it) pays the `maker`
/// rate instead of `rate` when there is one, as exchanges charge makers and takers; a
/// negative maker's rate is a rebate (down to -10%): the fill is paid rather than
/// charged, unless a minimum says otherwise. A taker's rate is a charge.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Commission {
    /// `commission`: fraction of the fill's notional.
    pub rate: f64,
    /// `commission_fixed`: amount charged per fill.
    pub fixed: f64,
    /// `commission_per_unit`: amount charged per unit (share, contract, coin) filled.
    pub per_unit: f64,
    /// `commission_min`: the least a fill pays (0: no minimum, so a rebate stays one).
    pub minimum: f64,
    /// `commission_cap`: the most a fill pays, as a fraction of its notional; the cap
    /// wins over the minimum where the two disagree (a small fill pays the cap).
    pub cap: Option<f64>,
    /// `commission_maker`: the fraction of notional a maker's fill pays instead of `rate`
    /// (negative: a rebate).
    pub maker: Option<f64>,
}

impl Commission {
    /// Commission of a fill of `size` units at `price`, a maker's fill or a taker's.
    #[inline]
    pub fn of(&self, size: f64, price: f64, maker: bool) -> f64 {
        let notional = size * price;
        let rate = match self.maker {
            Some(rate) if maker => rate,
            _ => self.rate,
        };
        let mut fee = notional * rate + size * self.per_unit + self.fixed;
        if self.minimum > 0.0 {
            fee = fee.max(self.minimum);
        }
        match self.cap {
            Some(cap) => fee.min(cap * notional),
            None => fee,
        }
    }

    /// The most units `u` whose cost, `per_unit` × `u` plus this schedule's commission on
    /// them at `notional` a unit (`of`), stays within `money`: 0 when none does (or
    /// `money` is not a positive amount), infinite when every number of units does (a
    /// cost that does not grow with them). The commission is the least of the cap's line
    /// and the greatest of the minimum and the schedule's own line; each line's cost grows
    /// with the units (or is refused as not bounding them), so the most units within the
    /// least of them is the greatest of the lines' own most units, and within the greatest
    /// the least: exact with a fixed fee, a minimum and a cap alike.
    pub fn most_units(&self, money: f64, per_unit: f64, notional: f64, maker: bool) -> f64 {
        if money.is_nan() || money <= 0.0 {
            return 0.0;
        }
        let rate = match self.maker {
            Some(rate) if maker => rate,
            _ => self.rate,
        };
        let within = |slope: f64, fixed: f64| {
            if slope > 0.0 {
                (money - fixed) / slope
            } else if money >= fixed {
                f64::INFINITY
            } else {
                // (A cost falling as units grow, only ever by a rebate beyond what a unit
                // costs: none is counted on.)
                0.0
            }
        };
        let mut units = within(per_unit + notional * rate + self.per_unit, self.fixed);
        if self.minimum > 0.0 {
            units = units.min(within(per_unit, self.minimum));
        }
        if let Some(cap) = self.cap {
            units = units.max(within(per_unit + cap * notional, 0.0));
        }
        if units.is_nan() {
            0.0
        } else {
            units.max(0.0)
        }
    }

    /// Refuse a part out of its range, naming it (after `whose`: where the schedule was
    /// given) and the rule.
    pub fn validate(&self, whose: &str) -> Result<()> {
        let bad = |name: &str, v: f64, rule: &str| {
            Err(EngineError::InvalidConfig(format!(
                "{whose}{name} = {v}: must be {rule}"
            )))
        };
        // A taker pays; a maker may be paid (a rebate, down to -10%).
        let rates = [
            (
                "commission",
                Some(self.rate),
                0.0,
                "a fraction of notional in [0, 1)",
            ),
            (
                "commission_maker",
                self.maker,
                -0.1,
                "a fraction of notional in [-0.1, 1) (negative: a rebate)",
            ),
        ];
        for (name, rate, least, rule) in rates {
            match rate {
                Some(rate) if !(rate.is_finite() && (least..1.0).contains(&rate)) => {
                    return bad(name, rate, rule);
                }
                _ => {}
            }
        }
        let amounts = [
            ("commission_fixed", self.fixed),
            ("commission_per_unit", self.per_unit),
            ("commission_min", self.minimum),
        ];
        for (name, amount) in amounts {
            if !(amount.is_finite() && amount >= 0.0) {
                return bad(name, amount, "a finite amount >= 0");
            }
        }
        if let Some(cap) = self.cap {
            if !(cap.is_finite() && cap > 0.0 && cap < 1.0) {
                return bad("commission_cap", cap, "a fraction of notional in (0, 1)");
            }
        }
        Ok(())
    }

    /// The most a sale of a long position can cost beyond what it brings in, whatever its
    /// size and price: its commission less its proceeds is at most the larger of the fixed
    /// part and the minimum (either rate is below 1; a rebate or a cap only lowers it).
    /// None with a fee per unit, which a unit priced below it pays beyond its proceeds.
    pub fn most_beyond_a_sale(&self) -> Option<f64> {
        (self.per_unit == 0.0).then_some(self.fixed.max(self.minimum))
    }
}

/// A symbol's margin terms: what its position requires to be opened (the initial margin)
/// and to be kept (the maintenance margin). An increase may take the initial margin summed
/// over the positions up to the account's equity; below the maintenance margin summed so,
/// the account is margin called.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Margin {
    /// As fractions of what the position is worth (|units| × price × multiplier): worth /
    /// `leverage` to open, `maintenance` × worth to keep. Stocks on a Reg T account:
    /// leverage 2, maintenance 0.25; a contract whose exchange asks 5%: leverage 20.
    OfWorth { leverage: f64, maintenance: f64 },
    /// As money per unit held, whatever the price: |units| × `initial` to open, |units| ×
    /// `maintenance` to keep (an exchange's margin per futures contract, in the account's
    /// money).
    PerUnit { initial: f64, maintenance: f64 },
}

/// Whether `bps` is a slippage in basis points (`slippage_bps`, `slippage_by_symbol`):
/// finite, in [0, 10000).
pub fn basis_points(bps: f64) -> bool {
    bps.is_finite() && (0.0..10_000.0).contains(&bps)
}

/// A symbol's margin terms as given (`margin_by_symbol`), each part optional:
/// `Engine::set_symbol_margin` makes them terms (`Margin`) or refuses them.
#[derive(Clone, Copy, Debug, Default)]
pub struct MarginParts {
    /// `leverage`.
    pub leverage: Option<f64>,
    /// `maintenance_margin` (a fraction of worth).
    pub maintenance: Option<f64>,
    /// `initial_margin_per_unit`.
    pub initial_per_unit: Option<f64>,
    /// `maintenance_margin_per_unit`.
    pub maintenance_per_unit: Option<f64>,
}

impl Margin {
    /// The margin a position of `units` (|size|) worth `worth` requires to be opened.
    #[inline]
    pub fn initial(&self, units: f64, worth: f64) -> f64 {
        match *self {
            Margin::OfWorth { leverage, .. } => worth / leverage,
            Margin::PerUnit { initial, .. } => units * initial,
        }
    }

    /// The margin a position of `units` (|size|) worth `worth` requires to be kept.
    #[inline]
    pub fn maintenance(&self, units: f64, worth: f64) -> f64 {
        match *self {
            Margin::OfWorth { maintenance, .. } => worth * maintenance,
            Margin::PerUnit { maintenance, .. } => units * maintenance,
        }
    }

    /// The worth of `symbol` a free amount of equity can carry: × leverage, or at the
    /// units it pays the initial margin of, each worth `unit_worth` (price × multiplier).
    #[inline]
    pub fn worth_carried(&self, free: f64, unit_worth: f64) -> f64 {
        match *self {
            Margin::OfWorth { leverage, .. } => free * leverage,
            Margin::PerUnit { initial, .. } => free / initial * unit_worth,
        }
    }

    /// Refuse terms out of range, naming the option (`what`) and the rule.
    pub fn validate(&self, what: &str) -> Result<()> {
        let bad = |part: &str, v: f64, rule: &str| {
            Err(EngineError::InvalidConfig(format!(
                "{what}{part} = {v}: must be {rule}"
            )))
        };
        match *self {
            Margin::OfWorth {
                leverage,
                maintenance,
            } => {
                if !(leverage.is_finite() && leverage > 0.0) {
                    return bad("leverage", leverage, "finite and > 0");
                }
                if !(maintenance.is_finite() && (0.0..1.0).contains(&maintenance)) {
                    return bad(
                        "maintenance_margin",
                        maintenance,
                        "a fraction of what the position is worth in [0, 1)",
                    );
                }
            }
            Margin::PerUnit {
                initial,
                maintenance,
            } => {
                if !(initial.is_finite() && initial > 0.0) {
                    return bad(
                        "initial_margin_per_unit",
                        initial,
                        "an amount of money per unit, finite and > 0",
                    );
                }
                if !(maintenance.is_finite() && (0.0..=initial).contains(&maintenance)) {
                    return bad(
                        "maintenance_margin_per_unit",
                        maintenance,
                        &format!(
                            "an amount of money per unit in [0, initial_margin_per_unit = \
                             {initial}] (a broker asks no more to keep a position than to \
                             open it)"
                        ),
                    );
                }
            }
        }
        Ok(())
    }
}

/// Engine options.
#[derive(Clone, Debug)]
pub struct Config {
    /// `cash`: starting cash of the one account.
    pub cash: f64,
    /// `commission`, `commission_fixed`, `commission_per_unit`, `commission_min`,
    /// `commission_cap`, `commission_maker`: what each fill pays.
    pub commission: Commission,
    /// `commission_by_symbol`: the schedules of the symbols whose fills pay their own,
    /// by symbol index (`Engine::set_symbol_commission`); empty when every symbol pays
    /// `commission`'s.
    pub by_symbol: Vec<Option<Commission>>,
    /// `multiplier`: per symbol (by index), the money one unit gains per point its price
    /// rises (a futures contract's multiplier: 50 for the E-mini S&P 500), set by
    /// `Engine::set_multiplier`; empty when every symbol's is 1 (shares, coins). Prices,
    /// sizes and stops stay quoted as the data and the orders give them; every amount of
    /// money is units × price × this (`portfolio::worth`).
    pub multipliers: Vec<f64>,
    /// `margin_by_symbol`: per symbol (by index), its own margin terms
    /// (`Engine::set_symbol_margin`); empty when every symbol's are the account's
    /// (`leverage`, `maintenance_margin`). With any set, the account's margin is the sum
    /// of what each position requires at its own terms (`Config::beyond_buying_power`,
    /// `Config::margin_called`).
    pub margins: Vec<Option<Margin>>,
    /// `shortable`: per symbol (by index), whether it may be sold short, set by
    /// `Engine::set_shortable`; empty when every symbol may. A fill that would open or add
    /// to a short in a symbol that may not is rejected (a sale of a long stops at flat).
    pub shortable: Vec<bool>,
    /// `slippage_bps`: basis points against the trader on market and stop fills.
    pub slippage_bps: f64,
    /// `slippage_by_symbol`: per symbol (by index), its own slippage in basis points
    /// rather than `slippage_bps` (a thin market's), set by `Engine::set_slippage`; empty
    /// when every symbol slips by the account's.
    pub slippages: Vec<Option<f64>>,
    /// `fill_at`: when market orders fill.
    pub fill_at: FillAt,
    /// `limit_fill`: whether a price at a limit fills it, or only one through it
    /// (`broker::LimitFill`).
    pub limit_fill: LimitFill,
    /// `leverage`: gross exposure may reach `leverage` × equity; increases beyond it are
    /// rejected.
    pub leverage: f64,
    /// `maintenance_margin`: the least equity the account keeps, as a fraction of its
    /// gross exposure, before the broker closes every position (a margin call); an
    /// account whose equity falls to zero or below is closed out whatever this is.
    pub maintenance_margin: f64,
    /// `funding_column`: the market's extra column (by index) holding each bar's funding
    /// rate: at a bar with a rate (not NaN, not 0), a position pays size × close × rate
    /// (a long pays a positive rate, a short receives it), as perpetual futures settle
    /// their funding.
    pub funding: Option<usize>,
    /// `dividend_column`: the market's extra column (by index) holding each bar's cash
    /// dividend per unit, at the bar the symbol goes ex (not NaN, not 0): a position held
    /// into that bar's open (before its fills) receives size × dividend, a short pays it.
    pub dividends: Option<usize>,
    /// `volume_limit`: the most of a bar's volume a symbol's fills may take in that bar,
    /// as a fraction in (0, 1] (`None`: no limit). An order the rest of the volume does
    /// not cover fills in part; the rest works on from the next bar as a new order.
    pub volume_limit: Option<f64>,
    /// `volume_impact`: a fill's price moves against the trader by this × the square of
    /// its share of the bar's volume, as a fraction of the price (orders with a limit
    /// aside, as for slippage); 0: none.
    pub volume_impact: f64,
    /// `record_every_bar`: record equity at every tick, not only at each trading day's end.
    pub record_every_bar: bool,
    /// `exclusive_orders`: an order a strategy places cancels its symbol's entry orders
    /// still working and closes its position first (backtesting.py's option of that
    /// name): at most one trade per symbol, on the side of the latest order.
    pub exclusive_orders: bool,
    /// `order_delay`: the bars of its symbol an order placed waits after the one it could
    /// first fill on (0: it can fill on the symbol's next bar): the time it takes to reach
    /// the market. A bracket's legs protect its trade at once; a change of a working
    /// order applies from the next bar.
    pub order_delay: usize,
    /// `borrow_rate`, `margin_rate`, `cash_rate`: annual carrying costs, accrued at each
    /// trading day's end.
    pub carry: CarryRates,
    /// `borrow_rate_by_symbol`: per symbol (by index), the annual fee its shorts pay
    /// rather than `borrow_rate` (a hard-to-borrow stock's), set by
    /// `Engine::set_borrow_rate`; empty when every short pays the account's.
    pub borrow_rates: Vec<Option<f64>>,
    /// `borrow_rate_column`: the market's extra column holding each bar's annual borrow
    /// fee of its symbol (the rate a broker quotes for that day); a short pays the rate of
    /// its symbol's latest bar at each day's end, or, where that is NaN or the symbol has
    /// no such column, `borrow_rates`' or `carry.borrow`.
    pub borrow_column: Option<usize>,
    /// `shortable_column`: the market's extra column saying at each bar whether its
    /// symbol may be sold short then (1: a locate is available, 0: none; NaN: not
    /// quoted): a fill that would open or add to a short in a bar saying 0 is rejected,
    /// as one `shortable` does not allow is.
    pub locate_column: Option<usize>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            cash: 10_000.0,
            commission: Commission::default(),
            by_symbol: Vec::new(),
            multipliers: Vec::new(),
            margins: Vec::new(),
            shortable: Vec::new(),
            slippage_bps: 0.0,
            slippages: Vec::new(),
            fill_at: FillAt::NextOpen,
            limit_fill: LimitFill::Touch,
            leverage: 1.0,
            maintenance_margin: 0.0,
            funding: None,
            dividends: None,
            volume_limit: None,
            volume_impact: 0.0,
            record_every_bar: false,
            exclusive_orders: false,
            order_delay: 0,
            carry: CarryRates::default(),
            borrow_rates: Vec::new(),
            borrow_column: None,
            locate_column: None,
        }
    }
}

impl Config {
    /// The schedule `symbol`'s fills pay: its own, or the account's.
    #[inline]
    pub fn commission_of(&self, symbol: usize) -> &Commission {
        match self.by_symbol.get(symbol) {
            Some(Some(own)) => own,
            _ => &self.commission,
        }
    }

    /// Whether `symbol` may be sold short (`shortable`; yes unless set).
    #[inline]
    pub fn may_short(&self, symbol: usize) -> bool {
        self.shortable.get(symbol).copied().unwrap_or(true)
    }

    /// `symbol`'s multiplier (`multipliers`; 1 unless set).
    #[inline]
    pub fn multiplier(&self, symbol: usize) -> f64 {
        self.multipliers.get(symbol).copied().unwrap_or(1.0)
    }

    /// What a fill of `size` units of `symbol` at `price` pays the broker, a maker's or a
    /// taker's: its schedule (`commission_of`) of the fill's notional in money, the
    /// price times the multiplier (a rate is of what the contracts are worth; a fee per
    /// unit is per contract).
    #[inline]
    pub fn fee(&self, symbol: usize, size: f64, price: f64, maker: bool) -> f64 {
        (self.commission_of(symbol)).of(size, price * self.multiplier(symbol), maker)
    }

    /// The most a sale of a long position can cost beyond its proceeds, on any symbol
    /// (`Commission::most_beyond_a_sale` of every schedule in use).
    pub fn most_beyond_a_sale(&self) -> Option<f64> {
        let mut most = self.commission.most_beyond_a_sale()?;
        for own in self.by_symbol.iter().flatten() {
            most = most.max(own.most_beyond_a_sale()?);
        }
        Some(most)
    }

    /// The basis points `symbol`'s market and stop fills slip: its own
    /// (`slippage_by_symbol`), or the account's.
    #[inline]
    pub fn slippage_of(&self, symbol: usize) -> f64 {
        match self.slippages.get(symbol) {
            Some(Some(own)) => *own,
            _ => self.slippage_bps,
        }
    }

    /// `symbol`'s margin terms: its own (`margin_by_symbol`), or the account's.
    #[inline]
    pub fn margin_of(&self, symbol: usize) -> Margin {
        match self.margins.get(symbol) {
            Some(Some(own)) => *own,
            _ => Margin::OfWorth {
                leverage: self.leverage,
                maintenance: self.maintenance_margin,
            },
        }
    }

    /// Whether a fill that grows a position (`after`: the account as it would leave it)
    /// goes beyond the account's buying power, and is rejected: its equity would be gone,
    /// or the margin its positions require would exceed it. With one set of terms, that
    /// is gross exposure above `leverage` × equity; with symbols' own
    /// (`margin_by_symbol`), Σ worth / leverage over the positions, each at its own
    /// (the margin a broker holds for stocks and futures in one account). A relative
    /// hair (1e-12) is forgiven, so that an order sized to the edge in money fills.
    #[inline]
    pub fn beyond_buying_power(&self, account: &Portfolio, after: &AfterFill) -> bool {
        if after.equity <= 0.0 {
            return true;
        }
        if self.margins.is_empty() {
            return after.gross > after.equity * self.leverage * (1.0 + 1e-12);
        }
        self.margin_required(account, after) > after.equity * (1.0 + 1e-12)
    }

    /// The initial margin the account's positions would require as `after` leaves them,
    /// what `beyond_buying_power` weighs against its equity (which, with one set of terms,
    /// compares gross exposure with leverage × equity instead, not to divide).
    pub fn margin_required(&self, account: &Portfolio, after: &AfterFill) -> f64 {
        if self.margins.is_empty() {
            return after.gross / self.leverage;
        }
        self.initial_margin(account, Some((after.symbol, after.units, after.worth)))
    }

    /// Σ initial margin over the positions, each at its own terms (worth / leverage, or
    /// units × initial per unit), `change` in place of one symbol's units and worth
    /// (`Portfolio::required_margin`).
    fn initial_margin(&self, account: &Portfolio, change: Option<(usize, f64, f64)>) -> f64 {
        account.required_margin(
            |s, units, worth| self.margin_of(s).initial(units, worth),
            change,
        )
    }

    /// The initial margin the account's positions hold at their marks: gross exposure /
    /// `leverage`, or with symbols' own terms Σ worth / leverage (what a fill that grows a
    /// position may take up to equity, `beyond_buying_power`).
    pub fn margin_used(&self, account: &Portfolio) -> f64 {
        if self.margins.is_empty() {
            return account.gross_exposure() / self.leverage;
        }
        self.initial_margin(account, None)
    }

    /// How much more of `symbol` the account may hold, in what it is worth at the marks:
    /// the equity its positions' margin leaves free times `symbol`'s leverage (or, at a
    /// margin per unit, the units it pays for, each worth `unit_worth` at the symbol's
    /// latest price), 0 when none is free or a margin per unit meets a symbol not yet
    /// priced (commissions and a fill's price away from the mark aside).
    pub fn buying_power(&self, account: &Portfolio, symbol: usize, unit_worth: f64) -> f64 {
        self.buying_power_of(self.free_equity(account), symbol, unit_worth)
    }

    /// The account's equity that its positions' margin leaves free (may be below 0).
    pub fn free_equity(&self, account: &Portfolio) -> f64 {
        account.equity() - self.margin_used(account)
    }

    /// `buying_power` of an account with `free` equity (`free_equity`).
    pub fn buying_power_of(&self, free: f64, symbol: usize, unit_worth: f64) -> f64 {
        let carried = (self.margin_of(symbol)).worth_carried(free, unit_worth);
        if carried.is_nan() {
            0.0
        } else {
            carried.max(0.0)
        }
    }

    /// Whether an account holding positions is margin called at the marks of this tick:
    /// its equity is gone (zero or below), or below the maintenance margin its positions
    /// require: `maintenance_margin` × gross exposure, or with symbols' own terms
    /// (`margin_by_symbol`) Σ maintenance × worth (or units × maintenance per unit) over
    /// the positions.
    #[inline]
    pub fn margin_called(&self, account: &Portfolio) -> bool {
        let equity = account.equity();
        if equity <= 0.0 {
            return true;
        }
        if self.margins.is_empty() {
            return equity < self.maintenance_margin * account.gross_exposure();
        }
        let kept = |s, units, worth| self.margin_of(s).maintenance(units, worth);
        equity < account.required_margin(kept, None)
    }

    /// Refuse options out of range, naming the option and the rule.
    pub fn validate(&self) -> Result<()> {
        let bad = |name: &str, v: f64, rule: &str| {
            Err(EngineError::InvalidConfig(format!(
                "{name} = {v}: must be {rule}"
            )))
        };
        if !(self.cash.is_finite() && self.cash > 0.0) {
            return bad("cash", self.cash, "a positive finite amount");
        }
        self.commission.validate("")?;
        for own in self.by_symbol.iter().flatten() {
            own.validate("commission_by_symbol: ")?;
        }
        for own in self.margins.iter().flatten() {
            own.validate("margin_by_symbol: ")?;
        }
        if !basis_points(self.slippage_bps) {
            return bad(
                "slippage_bps",
                self.slippage_bps,
                "basis points in [0, 10000)",
            );
        }
        for &own in self.slippages.iter().flatten() {
            if !basis_points(own) {
                return bad("slippage_by_symbol", own, "basis points in [0, 10000)");
            }
        }
        if !(self.leverage.is_finite() && self.leverage > 0.0) {
            return bad("leverage", self.leverage, "finite and > 0");
        }
        if !(self.maintenance_margin.is_finite() && (0.0..1.0).contains(&self.maintenance_margin)) {
            return bad(
                "maintenance_margin",
                self.maintenance_margin,
                "a fraction of gross exposure in [0, 1)",
            );
        }
        if let Some(f) = self.volume_limit {
            if !(f.is_finite() && f > 0.0 && f <= 1.0) {
                return bad("volume_limit", f, "a fraction of a bar's volume in (0, 1]");
            }
        }
        if self.order_delay > 0 && self.fill_at == FillAt::Close {
            // An order at the close fills at the barrier it joins the book at: it cannot
            // wait bars as well.
            return Err(EngineError::InvalidConfig(format!(
                "order_delay = {} with fills at the close (trade_on_close): an order filled at \
                 the close of the bar it is placed at cannot also wait for later bars; use \
                 one, or tif='close' orders, which wait with the others",
                self.order_delay
            )));
        }
        if !(self.volume_impact.is_finite() && self.volume_impact >= 0.0) {
            return bad(
                "volume_impact",
                self.volume_impact,
                "a finite coefficient >= 0 (0.1: a tenth of a bar's volume moves the price 0.1%)",
            );
        }
        let annual = [
            ("borrow_rate", self.carry.borrow),
            ("margin_rate", self.carry.margin),
            ("cash_rate", self.carry.cash),
        ];
        for (name, rate) in annual {
            if !(rate.is_finite() && rate >= 0.0) {
                return bad(name, rate, "a finite annual rate >= 0 (0.05 = 5%)");
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_name_the_option_and_the_rule() {
        let cases = [
            (
                Config {
                    cash: -1.0,
                    ..Config::default()
                },
                "cash = -1: must be a positive finite amount",
            ),
            (
                Config {
                    slippage_bps: f64::NAN,
                    ..Config::default()
                },
                "slippage_bps = NaN",
            ),
            (
                Config {
                    leverage: 0.0,
                    ..Config::default()
                },
                "leverage = 0: must be finite and > 0",
            ),
        ];
        for (config, expected) in cases {
            let message = config.validate().unwrap_err().to_string();
            assert!(message.contains(expected), "{message}");
        }
        // What a fill pays, each part out of its range.
        let nothing = Commission::default();
        let fees = [
            (
                Commission {
                    rate: 1.5,
                    ..nothing
                },
                "commission = 1.5",
            ),
            (
                Commission {
                    rate: -0.001,
                    ..nothing
                },
                "commission = -0.001: must be a fraction of notional in [0, 1)",
            ),
            (
                Commission {
                    per_unit: -0.005,
                    ..nothing
                },
                "commission_per_unit = -0.005: must be a finite amount >= 0",
            ),
            (
                Commission {
                    minimum: f64::INFINITY,
                    ..nothing
                },
                "commission_min = inf: must be a finite amount >= 0",
            ),
            (
                Commission {
                    cap: Some(1.0),
                    ..nothing
                },
                "commission_cap = 1: must be a fraction of notional in (0, 1)",
            ),
            (
                Commission {
                    maker: Some(-0.2),
                    ..nothing
                },
                "commission_maker = -0.2: must be a fraction of notional in [-0.1, 1)",
            ),
        ];
        for (commission, expected) in fees {
            let config = Config {
                commission,
                ..Config::default()
            };
            let message = config.validate().unwrap_err().to_string();
            assert!(message.contains(expected), "{message}");
        }
        assert!(Config::default().validate().is_ok());
        let fill_at = FillAt::parse("open").unwrap_err().to_string();
        assert!(fill_at.contains("fill_at = \"open\""), "{fill_at}");
    }

    /// A broker's schedule: 0.005 a share, at least 1.00, at most 1% of the trade.
    const SCHEDULE: Commission = Commission {
        rate: 0.0,
        fixed: 0.0,
        per_unit: 0.005,
        minimum: 1.0,
        cap: Some(0.01),
        maker: None,
    };

    #[test]
    fn a_schedule_charges_per_unit_at_least_its_minimum_and_at_most_its_cap() {
        // 1,000 shares at 50: 5.00 by the share (between 1.00 and 500.00).
        assert_eq!(SCHEDULE.of(1_000.0, 50.0, false), 5.0);
        // 100 shares at 50: 0.50 by the share, raised to the minimum.
        assert_eq!(SCHEDULE.of(100.0, 50.0, false), 1.0);
        // 10 shares at 5: the minimum would be 2% of the 50 traded; the cap wins, 0.50.
        assert_eq!(SCHEDULE.of(10.0, 5.0, false), 0.5);
        // 100,000 shares at 0.20: 500.00 by the share, capped at 1% of 20,000.
        assert_eq!(SCHEDULE.of(100_000.0, 0.2, false), 200.0);
        // The rate and the fixed part add to the per-unit part before the bounds.
        let both = Commission {
            rate: 0.001,
            fixed: 2.0,
            per_unit: 0.01,
            minimum: 0.0,
            cap: None,
            maker: None,
        };
        assert_eq!(both.of(200.0, 10.0, false), 2.0 + 2.0 + 2.0);
        assert_eq!(Commission::default().of(123.0, 4.5, true), 0.0);
    }

    #[test]
    fn a_makers_fill_pays_the_maker_rate_with_the_rest_of_the_schedule() {
        let fees = Commission {
            rate: 0.0004,
            maker: Some(0.0002),
            fixed: 0.1,
            minimum: 0.5,
            ..Commission::default()
        };
        // 10 at 1,000: a taker pays 4.00 + 0.10, a maker 2.00 + 0.10.
        assert_eq!(fees.of(10.0, 1_000.0, false), 4.0 + 0.1);
        assert_eq!(fees.of(10.0, 1_000.0, true), 2.0 + 0.1);
        // 1 at 1,000: the maker's 0.30 is raised to the minimum as a taker's would be.
        assert_eq!(fees.of(1.0, 1_000.0, true), 0.5);
        // A maker's rebate: 10 at 1,000 with a rate of -0.0001 is paid 1.00, less the 0.10
        // fixed; with a minimum, the minimum is paid instead.
        let rebate = Commission {
            maker: Some(-0.0001),
            minimum: 0.0,
            ..fees
        };
        assert_eq!(rebate.of(10.0, 1_000.0, true), -1.0 + 0.1);
        let floored = Commission {
            maker: Some(-0.0001),
            ..fees
        };
        assert_eq!(floored.of(10.0, 1_000.0, true), 0.5);
        // Without a maker rate, a maker pays the one rate.
        let one = Commission {
            maker: None,
            ..fees
        };
        assert_eq!(one.of(10.0, 1_000.0, true), one.of(10.0, 1_000.0, false));
    }

    #[test]
    fn a_sale_costs_at_most_the_fixed_part_or_the_minimum_beyond_its_proceeds() {
        let schedule = Commission {
            rate: 0.002,
            fixed: 0.5,
            minimum: 1.0,
            ..Commission::default()
        };
        assert_eq!(schedule.most_beyond_a_sale(), Some(1.0));
        for (size, price) in [(1e-6, 1e-3), (1.0, 0.7), (3.0, 100.0), (1e6, 0.01)] {
            let beyond = schedule.of(size, price, false) - size * price;
            assert!(beyond <= 1.0, "{size} at {price}: {beyond}");
        }
        // A fee per unit has no such bound: 1,000 units at 0.001 pay 5 for 1 of proceeds.
        assert_eq!(SCHEDULE.most_beyond_a_sale(), None);
        assert!(
            Commission {
                per_unit: 0.005,
                ..Commission::default()
            }
            .of(1_000.0, 0.001, false)
                > 1.0
        );
    }

    /// A symbol with a schedule of its own pays it alone; the others pay the account's.
    /// What a sale can cost beyond its proceeds is the most of any schedule in use, and
    /// none when any of them charges per unit.
    #[test]
    fn a_symbols_own_schedule_is_what_its_fills_pay() {
        let account = Commission {
            rate: 0.001,
            ..Commission::default()
        };
        let own = Commission {
            per_unit: 0.005,
            minimum: 1.0,
            ..Commission::default()
        };
        let config = Config {
            commission: account,
            by_symbol: vec![None, Some(own)],
            ..Config::default()
        };
        // 1,000 at 50: the account's 0.1% is 50.00; the own schedule's 0.005 a unit 5.00.
        assert_eq!(config.commission_of(0).of(1_000.0, 50.0, false), 50.0);
        assert_eq!(config.commission_of(1).of(1_000.0, 50.0, false), 5.0);
        // A symbol beyond the list pays the account's.
        assert_eq!(config.commission_of(2).of(1_000.0, 50.0, false), 50.0);
        assert_eq!(config.most_beyond_a_sale(), None);
        let fixed = Commission {
            fixed: 2.0,
            minimum: 3.0,
            ..Commission::default()
        };
        let config = Config {
            by_symbol: vec![Some(fixed), None],
            ..config
        };
        assert_eq!(config.most_beyond_a_sale(), Some(3.0));
        // Its parts are checked by the same rules, the message saying whose they are.
        let bad = Commission {
            rate: 1.5,
            ..Commission::default()
        };
        let message = bad
            .validate("commission_by_symbol['X']: ")
            .unwrap_err()
            .to_string();
        assert!(
            message.contains("commission_by_symbol['X']: commission = 1.5"),
            "{message}"
        );
    }

    /// `most_units` against the schedule it inverts (`of`), on 20,000 random schedules,
    /// prices and amounts: the cost of the units it gives is the money (to rounding), and
    /// a hair more units cost more; none when the money does not cover a fixed fee or a
    /// minimum.
    #[test]
    fn most_units_is_the_edge_of_what_the_money_pays_for() {
        let mut state = 0x9e37_79b9_7f4a_7c15_u64;
        let mut random = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 11) as f64 / (1u64 << 53) as f64
        };
        let mut edges = [0usize; 3];
        for _ in 0..20_000 {
            let pick = |x: f64, values: &[f64]| values[(x * values.len() as f64) as usize];
            let schedule = Commission {
                rate: pick(random(), &[0.0, 0.0005, 0.003, 0.02]),
                fixed: pick(random(), &[0.0, 1.0, 50.0]),
                per_unit: pick(random(), &[0.0, 0.01, 0.5]),
                minimum: pick(random(), &[0.0, 1.0, 30.0]),
                cap: [None, Some(0.001), Some(0.01)][(random() * 3.0) as usize],
                maker: [None, Some(-0.0002), Some(0.0001)][(random() * 3.0) as usize],
            };
            let maker = random() < 0.5;
            let notional = 1.0 + random() * 500.0;
            // What a unit costs besides its commission: its price, or the margin it takes.
            let per_unit = notional * pick(random(), &[1.0, 0.5, 0.05]);
            let money = 10f64.powf(random() * 6.0 - 0.5);
            let units = schedule.most_units(money, per_unit, notional, maker);
            let cost = |u: f64| per_unit * u + schedule.of(u, notional, maker);
            assert!(
                units.is_finite() && units >= 0.0,
                "{schedule:?} {money} {units}"
            );
            if units == 0.0 {
                assert!(cost(1e-9) > money, "{schedule:?}: none for {money}");
                edges[0] += 1;
                continue;
            }
            assert!(
                (cost(units) - money).abs() <= 1e-12 * money,
                "{schedule:?}: {units} units cost {} of {money}",
                cost(units)
            );
            assert!(
                cost(units * (1.0 + 1e-9)) > money,
                "{schedule:?}: more fits"
            );
            edges[1 + usize::from(schedule.minimum > 0.0 || schedule.cap.is_some())] += 1;
        }
        // Each way out was taken: nothing affordable, the plain line, a minimum or a cap.
        assert!(edges.iter().all(|&n| n > 100), "{edges:?}");
    }

    #[test]
    fn most_units_is_none_for_no_money_and_unbounded_for_a_cost_that_does_not_grow() {
        let fixed = Commission {
            fixed: 5.0,
            ..Commission::default()
        };
        assert_eq!(fixed.most_units(f64::NAN, 10.0, 10.0, false), 0.0);
        assert_eq!(fixed.most_units(-1.0, 10.0, 10.0, false), 0.0);
        assert_eq!(fixed.most_units(4.0, 10.0, 10.0, false), 0.0);
        assert_eq!(fixed.most_units(105.0, 10.0, 10.0, false), 10.0);
        // A unit that costs nothing (a margin check's cost at a price far below its mark)
        // does not bound the units: another limit must.
        assert_eq!(fixed.most_units(105.0, 0.0, 10.0, false), f64::INFINITY);
    }
}
