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
    /// Its time in force ran out (day, good-till-date, immediate-or-cancel).
    Expired = 4,
}

/// How long an order works.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum TimeInForce {
    /// Until filled or cancelled (the default).
    GoodTillCancelled,
    /// Until the end of the trading day of the first tick after it is placed (trading
    /// days as the backtest's timezone says; UTC days without one).
    Day,
    /// A limit that may fill only on the symbol's next bar; what does not fill expires.
    ImmediateOrCancel,
    /// Fill or kill (`tif="fok"`): a market or limit order that fills whole on the
    /// symbol's next bar or not at all (under `volume_limit`, not when the bar's volume
    /// left takes only part of it); then it expires.
    FillOrKill,
    /// For this many of the symbol's own bars, counted from the next one.
    Bars(usize),
    /// Through this time (ns UTC): bars stamped later do not fill it.
    Until(i64),
    /// At the opening (`tif="opg"`): a market order fills at the open of the symbol's next
    /// bar, a limit there if the open is at or better than its price; what does not fill
    /// then expires (a market-on-open or limit-on-open order).
    AtTheOpen,
    /// At the close (`tif="close"`): a market order fills at the close of the symbol's
    /// next bar, a limit there if the close is at or better than its price; what does not
    /// fill then expires (a market-on-close or limit-on-close order).
    AtTheClose,
}

/// How far a trailing stop follows the best price since it was placed.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Trail {
    /// A fixed price distance.
    Distance(f64),
    /// A fraction of the best price (0.02 = 2%).
    Fraction(f64),
    /// A multiple of a declared ATR (over base bars), as of the previous bar.
    Atr { study: usize, multiple: f64 },
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
    pub time_in_force: TimeInForce,
    /// A trailing stop order: its stop follows the best price by this much.
    pub trail: Option<Trail>,
    /// A trailing stop-loss leg for the trade the order opens (beside or instead of `sl`).
    pub stop_loss_trail: Option<Trail>,
    /// One-cancels-other: the id of an open order of the same symbol whose group this
    /// order joins; when one of the group fills, the others are cancelled.
    pub oco: Option<u64>,
}

/// The size of an entry taken when it fills: `fraction` of the account's buying power at
/// that moment (the equity the open positions' margin leaves free, times the symbol's
/// leverage), over the fill's price with its slippage and commission per unit, rounded
/// down to whole `lot`s when given — backtesting.py's `buy(size=0.5)`, a fraction of the
/// available liquidity spent at the fill. Nothing affordable: rejected for margin.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ShareAtFill {
    pub fraction: f64,
    pub lot: Option<f64>,
}

/// Whether `x` is a portion a close may take of a position or a trade: in (0, 1] (1: all
/// of it). The one rule of it (`close()` in `next`, signals mode's `exit_portion`).
#[inline]
pub fn is_portion(x: f64) -> bool {
    x > 0.0 && x <= 1.0
}

/// `units` (>= 0) rounded down to a whole number of lots of `lot` (> 0): what a sizer or
/// the signals' rules may buy in whole shares, contracts or board lots. The 1e-9 lot
/// forgives a quotient a hair below a whole number (3 × 0.1 / 0.1 is 2.9999999999999996).
/// The one rule of it (Python's `tickstep.sizing.round_to_lot` calls it).
pub fn round_to_lot(units: f64, lot: f64) -> f64 {
    ((units / lot + 1e-9).floor() * lot).max(0.0)
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
            time_in_force: TimeInForce::GoodTillCancelled,
            trail: None,
            stop_loss_trail: None,
            oco: None,
        }
    }
}

/// A working order inside the broker: plain data, copied as a block (the book copies the
/// orders placed during a tick into the working ones at the barrier). Kept within 256
/// bytes: a copy of that size or less is one block move of a smaller size class (a
/// good-till-date order's time lives in its `time_in_force`, not in a field of its own).
#[derive(Clone, Copy, Debug)]
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
    /// First bar index (of its symbol) at which it may fill; `UNADMITTED` from when it is
    /// placed until it joins the book at the barrier.
    pub eligible_from: usize,
    /// Bar index at which it was last checked, to check each order once per bar phase.
    pub checked_bar: usize,
    pub live: bool,
    /// The strategy's own label, carried to legs, fills and records.
    pub tag: i64,
    pub time_in_force: TimeInForce,
    /// Last bar index (of its symbol) on which it may fill (bars / immediate-or-cancel).
    pub last_bar: Option<usize>,
    /// Trailing stop: how far `stop` follows `best`, the best price seen so far.
    pub trail: Option<Trail>,
    pub best: f64,
    /// Passed on to the trailing stop-loss leg of the trade this order opens.
    pub stop_loss_trail: Option<Trail>,
    /// OCO group: the id of the group's first order.
    pub oco: Option<u64>,
    /// For `close()`: the fraction of the position to close when it fills (1 = all).
    pub portion: f64,
}

const _: () = assert!(std::mem::size_of::<Order>() <= 256);

/// The `eligible_from` of an order placed during a tick, until the barrier: it already
/// sits in its symbol's working orders (written there once, where it will work), but no
/// bar can fill it, nor end it, before it joins the book.
pub const UNADMITTED: usize = usize::MAX;

impl Order {
    /// A new working order with nothing set beyond what it is.
    pub fn new(id: u64, symbol: usize, side: Side, size: f64, role: Role) -> Self {
        Order {
            id,
            symbol,
            side,
            size,
            limit: None,
            stop: None,
            stop_loss: None,
            take_profit: None,
            role,
            trade: None,
            triggered: false,
            eligible_from: 0,
            checked_bar: usize::MAX,
            live: true,
            tag: 0,
            time_in_force: TimeInForce::GoodTillCancelled,
            last_bar: None,
            trail: None,
            best: f64::NAN,
            stop_loss_trail: None,
            oco: None,
            portion: 1.0,
        }
    }

    pub fn is_market(&self) -> bool {
        self.limit.is_none() && self.stop.is_none()
    }

    /// Whether it fills only at its bar's open (`TimeInForce::AtTheOpen`).
    #[inline]
    pub fn at_open(&self) -> bool {
        self.time_in_force == TimeInForce::AtTheOpen
    }

    /// Whether it fills only at its bar's close (`TimeInForce::AtTheClose`): the walk of
    /// the bar passes it by until the close.
    #[inline]
    pub fn at_close(&self) -> bool {
        self.time_in_force == TimeInForce::AtTheClose
    }

    /// Stop-type orders (stops, untriggered stop-limits) are matched before limits
    /// within a bar: the conservative reading of an unknown intrabar path.
    pub fn is_stop_type(&self) -> bool {
        self.stop.is_some() && !self.triggered
    }
}

/// Why an order ended other than filled: one of a fixed set of phrases (so reasons can
/// be counted), kept in the order's record as its code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Reason {
    /// Filled, or still open.
    None = 0,
    CancelledByStrategy,
    DayEnded,
    NotFilledOnItsBar,
    BarsPassed,
    TimePassed,
    PositionAlreadyFlat,
    TradeAlreadyClosed,
    InsufficientMargin,
    ItsTradeWasClosed,
    ItsGroupFilled,
    /// `exclusive_orders`: the strategy placed another order for the symbol.
    ReplacedByALaterOrder,
    /// The account's equity fell to its maintenance margin: its positions were closed
    /// (this order's fill) and its working orders cancelled (this order).
    MarginCall,
    /// `volume_limit`: the bar's volume allowed part of it; the rest works on as a new
    /// order from the next bar.
    PartFilledRestWorksOn,
    /// `volume_limit`: the bar's volume allowed part of it, on its last bar; the rest
    /// ended with it.
    PartFilledRestEnded,
    /// `close_delisted`: its symbol stopped trading (its bars ended before the run's last
    /// day): its position was closed at its last bar's close (this order's fill) and its
    /// working orders cancelled (this order).
    Delisted,
    /// `shortable`: the fill would have opened or added to a short position in a symbol
    /// that may not be shorted.
    NotShortable,
    /// `tif="opg"`: a limit the open of its bar did not reach.
    NotFilledAtTheOpen,
    /// `tif="close"`: a limit the close of its bar did not reach.
    NotFilledAtTheClose,
    /// `tif="fok"`: not filled whole on its bar.
    NotFilledWhole,
}

impl Reason {
    /// Every reason, by code.
    pub const ALL: [Reason; 20] = [
        Reason::None,
        Reason::CancelledByStrategy,
        Reason::DayEnded,
        Reason::NotFilledOnItsBar,
        Reason::BarsPassed,
        Reason::TimePassed,
        Reason::PositionAlreadyFlat,
        Reason::TradeAlreadyClosed,
        Reason::InsufficientMargin,
        Reason::ItsTradeWasClosed,
        Reason::ItsGroupFilled,
        Reason::ReplacedByALaterOrder,
        Reason::MarginCall,
        Reason::PartFilledRestWorksOn,
        Reason::PartFilledRestEnded,
        Reason::Delisted,
        Reason::NotShortable,
        Reason::NotFilledAtTheOpen,
        Reason::NotFilledAtTheClose,
        Reason::NotFilledWhole,
    ];

    /// The phrase the results show ("" for none).
    pub fn phrase(self) -> &'static str {
        match self {
            Reason::None => "",
            Reason::CancelledByStrategy => "cancelled by the strategy",
            Reason::DayEnded => "day order: its trading day ended",
            Reason::NotFilledOnItsBar => "immediate-or-cancel: not filled on its bar",
            Reason::BarsPassed => "good for a number of bars: they passed",
            Reason::TimePassed => "good till date: its time passed",
            Reason::PositionAlreadyFlat => "position already flat",
            Reason::TradeAlreadyClosed => "trade already closed",
            Reason::InsufficientMargin => "insufficient margin",
            Reason::ItsTradeWasClosed => "its trade was closed",
            Reason::ItsGroupFilled => "its one-cancels-other group filled",
            Reason::ReplacedByALaterOrder => "exclusive_orders: a later order replaced it",
            Reason::MarginCall => "margin call: equity fell to the maintenance margin",
            Reason::PartFilledRestWorksOn => {
                "filled in part, as far as the bar's volume allowed (volume_limit): the rest \
                 works on as a new order"
            }
            Reason::PartFilledRestEnded => {
                "filled in part, as far as the bar's volume allowed (volume_limit), on its \
                 last bar: the rest ended with it"
            }
            Reason::Delisted => {
                "its symbol stopped trading (close_delisted): its orders cancelled, its \
                 position closed at its last bar's close"
            }
            Reason::NotShortable => "not shortable (shortable): it would sell short",
            Reason::NotFilledAtTheOpen => "at the open: not filled at its bar's open",
            Reason::NotFilledAtTheClose => "at the close: not filled at its bar's close",
            Reason::NotFilledWhole => "fill or kill: not filled whole on its bar",
        }
    }
}

/// One order's life as the log keeps it: what every order has, in 56 bytes. Its id is
/// its place in the log (index + 1); what only some orders carry (prices, a tag) is in
/// the log's table of terms; the fill row of an order is its id and commission, the rest
/// of the fill being here (see `results::OrderLog`, which gives every field back).
#[derive(Clone, Copy, Debug)]
pub struct OrderRecord {
    pub size: f64,
    pub placed_ts: i64,
    /// When it was filled, cancelled or rejected (`i64::MIN` while open).
    pub closed_ts: i64,
    /// What was executed: units, price (after slippage) and side (+1 buy, -1 sell, 0 for
    /// nothing). The side can differ from `side` for a `close()`, which is sized and
    /// sided when it fills; units can be below `size` when only the reducing part of an
    /// order that flips a position was executed and the rest was rejected.
    pub filled_size: f64,
    pub fill_price: f64,
    pub symbol: u32,
    /// Its row in the log's terms, or `NO_TERMS` for an order that carries none.
    pub(crate) terms: u32,
    pub side: Side,
    pub role: Role,
    pub status: Status,
    /// Why it ended other than filled.
    pub reason: Reason,
    pub filled_side: i8,
}

const _: () = assert!(std::mem::size_of::<OrderRecord>() == 56);

/// The `terms` of an order that carries no prices and no tag (a plain market order).
pub(crate) const NO_TERMS: u32 = u32::MAX;

/// What only some orders carry: their prices (NaN for none), the strategy's tag and the
/// order they come from (`parent`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct OrderTerms {
    pub limit: f64,
    pub stop: f64,
    pub stop_loss: f64,
    pub take_profit: f64,
    pub tag: i64,
    /// The order whose fill made this one (a bracket leg's entry; the order a rest under
    /// `volume_limit` is the rest of), 0 for none (ids start at 1).
    pub parent: u64,
}

impl OrderTerms {
    /// The terms of an order that carries none.
    pub const NONE: OrderTerms = OrderTerms {
        limit: f64::NAN,
        stop: f64::NAN,
        stop_loss: f64::NAN,
        take_profit: f64::NAN,
        tag: 0,
        parent: 0,
    };

    /// `o`'s terms, or `None` when it carries none.
    #[inline]
    pub fn of(o: &Order) -> Option<OrderTerms> {
        // (One test of all five, not five branches: most orders carry none.)
        let plain = o.limit.is_none()
            & o.stop.is_none()
            & o.stop_loss.is_none()
            & o.take_profit.is_none()
            & (o.tag == 0);
        (!plain).then(|| OrderTerms {
            limit: o.limit.unwrap_or(f64::NAN),
            stop: o.stop.unwrap_or(f64::NAN),
            stop_loss: o.stop_loss.unwrap_or(f64::NAN),
            take_profit: o.take_profit.unwrap_or(f64::NAN),
            tag: o.tag,
            parent: 0,
        })
    }
}

/// One order's life with every field, as the results show it (`results::OrderLog::row`).
#[derive(Clone, Copy, Debug)]
pub struct OrderRow {
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
    /// The order whose fill made this one (`OrderTerms::parent`), 0 for none.
    pub parent: u64,
    pub placed_ts: i64,
    pub status: Status,
    pub closed_ts: i64,
    pub reason: Reason,
    pub filled_size: f64,
    pub fill_price: f64,
    pub filled_side: i8,
}
