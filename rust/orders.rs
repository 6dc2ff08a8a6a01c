//! Orders as the broker holds them, and the record each one leaves behind.

/// Direction of an order or fill.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    Buy,
    Sell,
}

impl Side {
    /// +1 for a buy, -1 for a sell: the sign of the position change.
    #[inline]
    pub fn sign(self) -> f64 {
        match self {
            Side::Buy => 1.0,
            Side::Sell => -1.0,
        }
    }

    /// "buy" or "sell", for messages.
    pub fn word(self) -> &'static str {
        match self {
            Side::Buy => "buy",
            Side::Sell => "sell",
        }
    }

    pub fn opposite(self) -> Side {
        match self {
            Side::Buy => Side::Sell,
            Side::Sell => Side::Buy,
        }
    }
}

/// Why an order exists: a trader's own order, a leg of a bracket, or a "flatten" order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// A plain order; may carry stop-loss / take-profit for the trade it opens.
    Entry = 0,
    /// Stop leg of a bracket: closes its trade; cancels the take-profit when it fills.
    StopLoss = 1,
    /// Limit leg of a bracket: closes its trade; cancels the stop-loss when it fills.
    TakeProfit = 2,
    /// Flattens the symbol's position; its size is whatever the position is at fill time.
    ClosePosition = 3,
}

/// Where an order's life ended (or `Open` if it was still working when the data ran out).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    Open = 0,
    Filled = 1,
    Cancelled = 2,
    Rejected = 3,
}

/// What a strategy asks for. `size` is in units of the instrument (> 0; ignored for
/// `close_position`). With neither `limit` nor `stop` it is a market order; with both,
/// a stop-limit order.
#[derive(Clone, Debug, PartialEq)]
pub struct OrderRequest {
    pub symbol: usize,
    pub side: Side,
    pub size: f64,
    pub limit: Option<f64>,
    pub stop: Option<f64>,
    pub stop_loss: Option<f64>,
    pub take_profit: Option<f64>,
    pub tag: i64,
}

impl OrderRequest {
    pub fn market(symbol: usize, side: Side, size: f64) -> Self {
        OrderRequest {
            symbol,
            side,
            size,
            limit: None,
            stop: None,
            stop_loss: None,
            take_profit: None,
            tag: 0,
        }
    }
}

/// A working order inside the broker.
#[derive(Clone, Debug)]
pub struct Order {
    pub id: u64,
    pub symbol: usize,
    pub side: Side,
    pub size: f64,
    pub limit: Option<f64>,
    pub stop: Option<f64>,
    pub stop_loss: Option<f64>,
    pub take_profit: Option<f64>,
    pub role: Role,
    /// For bracket legs: the trade (lot) they protect.
    pub trade: Option<u64>,
    /// A stop-limit whose stop has been touched now rests as a plain limit.
    pub triggered: bool,
    /// First bar index (of its symbol) at which it may fill.
    pub eligible_from: usize,
    /// Bar index at which it was last checked, to check each order once per bar phase.
    pub checked_bar: usize,
    pub live: bool,
    /// The strategy's own label, carried to legs, fills and records.
    pub tag: i64,
}

impl Order {
    pub fn is_market(&self) -> bool {
        self.limit.is_none() && self.stop.is_none()
    }

    /// Stop-type orders (stops, untriggered stop-limits) are matched before limits
    /// within a bar: the conservative reading of an unknown intrabar path.
    pub fn is_stop_type(&self) -> bool {
        self.stop.is_some() && !self.triggered
    }
}

/// One order's life, for the results.
#[derive(Clone, Debug)]
pub struct OrderRecord {
    pub id: u64,
    pub symbol: usize,
    pub side: Side,
    pub size: f64,
    pub limit: f64,
    pub stop: f64,
    pub stop_loss: f64,
    pub take_profit: f64,
    pub role: Role,
    pub tag: i64,
    pub placed_ts: i64,
    pub status: Status,
    /// When it was filled, cancelled or rejected (`i64::MIN` while open).
    pub closed_ts: i64,
    /// Why it ended other than filled (a fixed phrase per cause, so reasons can be counted).
    pub reason: &'static str,
    /// What was executed: units, price (after slippage) and side (+1 buy, -1 sell, 0 for
    /// nothing). The side can differ from `side` for a `close()`, which is sized and
    /// sided when it fills; units can be below `size` when only the reducing part of an
    /// order that flips a position was executed and the rest was rejected.
    pub filled_size: f64,
    pub fill_price: f64,
    pub filled_side: i8,
}
