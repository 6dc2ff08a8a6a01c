//! What a run leaves behind: fills, equity samples (closed trades live in the portfolio,
//! orders in the broker's log).

use crate::orders::Role;

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Fill {
    pub order_id: u64,
    pub symbol: usize,
    pub ts: i64,
    /// +1 buy, -1 sell.
    pub direction: f64,
    pub size: f64,
    pub price: f64,
    pub commission: f64,
    pub role: Role,
}

/// Equity as recorded at the end of each trading day (and at every bar when asked).
#[derive(Clone, Debug, Default)]
pub struct EquityCurve {
    pub ts: Vec<i64>,
    pub equity: Vec<f64>,
    pub cash: Vec<f64>,
    pub gross_exposure: Vec<f64>,
}

impl EquityCurve {
    pub fn push(&mut self, ts: i64, equity: f64, cash: f64, gross: f64) {
        self.ts.push(ts);
        self.equity.push(equity);
        self.cash.push(cash);
        self.gross_exposure.push(gross);
    }
}
