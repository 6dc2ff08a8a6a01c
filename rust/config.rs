//! Engine options: one struct, its defaults and its validation, in one place.
//!
//! The Python bindings build a `Config` from the keyword options of `_core.Engine` (the
//! names below in backticks are those options); nothing else in the core reads options.

use crate::error::{EngineError, Result};
use crate::portfolio::CarryRates;

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

/// Engine options. Commission = `commission_rate` × notional + `commission_fixed` per fill.
#[derive(Clone, Debug)]
pub struct Config {
    /// `cash`: starting cash of the one account.
    pub cash: f64,
    /// `commission`: fraction of each fill's notional.
    pub commission_rate: f64,
    /// `commission_fixed`: amount charged per fill.
    pub commission_fixed: f64,
    /// `slippage_bps`: basis points against the trader on market and stop fills.
    pub slippage_bps: f64,
    /// `fill_at`: when market orders fill.
    pub fill_at: FillAt,
    /// `leverage`: gross exposure may reach `leverage` × equity; increases beyond it are
    /// rejected.
    pub leverage: f64,
    /// `record_every_bar`: record equity at every tick, not only at each trading day's end.
    pub record_every_bar: bool,
    /// `exclusive_orders`: an order a strategy places cancels its symbol's entry orders
    /// still working and closes its position first (backtesting.py's option of that
    /// name): at most one trade per symbol, on the side of the latest order.
    pub exclusive_orders: bool,
    /// `borrow_rate`, `margin_rate`, `cash_rate`: annual carrying costs, accrued at each
    /// trading day's end.
    pub carry: CarryRates,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            cash: 10_000.0,
            commission_rate: 0.0,
            commission_fixed: 0.0,
            slippage_bps: 0.0,
            fill_at: FillAt::NextOpen,
            leverage: 1.0,
            record_every_bar: false,
            exclusive_orders: false,
            carry: CarryRates::default(),
        }
    }
}

impl Config {
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
        if !(self.commission_rate.is_finite() && (0.0..1.0).contains(&self.commission_rate)) {
            return bad(
                "commission",
                self.commission_rate,
                "a fraction of notional in [0, 1)",
            );
        }
        if !(self.commission_fixed.is_finite() && self.commission_fixed >= 0.0) {
            return bad(
                "commission_fixed",
                self.commission_fixed,
                "a finite amount >= 0",
            );
        }
        if !(self.slippage_bps.is_finite() && (0.0..10_000.0).contains(&self.slippage_bps)) {
            return bad(
                "slippage_bps",
                self.slippage_bps,
                "basis points in [0, 10000)",
            );
        }
        if !(self.leverage.is_finite() && self.leverage > 0.0) {
            return bad("leverage", self.leverage, "finite and > 0");
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

    /// Commission of a fill of `size` units at `price`.
    #[inline]
    pub fn commission(&self, size: f64, price: f64) -> f64 {
        size * price * self.commission_rate + self.commission_fixed
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
                    commission_rate: 1.5,
                    ..Config::default()
                },
                "commission = 1.5",
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
        assert!(Config::default().validate().is_ok());
        let fill_at = FillAt::parse("open").unwrap_err().to_string();
        assert!(fill_at.contains("fill_at = \"open\""), "{fill_at}");
    }
}
