//! Matching: which working order of one symbol fills next in its bar, and at what price.
//!
//! A `Play` walks one symbol's bar in the documented order — orders that fill at the open
//! first (in placement order), then, after the open, stop-type orders before limits; a
//! limit fill that adds bracket legs sends the walk back to the stops, so the new
//! stop-loss is matched before later limits. It only decides; the book executes each
//! match before asking for the next one (an execution may add legs or cancel siblings),
//! and may pause a play while an increase waits for its turn (see `book`).

use crate::broker::{match_order, Bar, Moment};
use crate::orders::Order;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stage {
    Open,
    Stops,
    Limits,
    Done,
}

/// One symbol's bar being matched.
#[derive(Clone, Debug)]
pub(super) struct Play {
    pub symbol: usize,
    pub bar: usize,
    pub ts: i64,
    pub prices: Bar,
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
    pub fn new(symbol: usize, bar: usize, ts: i64, prices: Bar) -> Self {
        Play {
            symbol,
            bar,
            ts,
            prices,
            stage: Stage::Open,
            k: 0,
            limit_len: usize::MAX,
        }
    }

    /// The next order of `working` that fills in this bar, or `None` when the bar is done.
    pub fn next_match(&mut self, working: &mut [Order]) -> Option<Match> {
        let i = self.bar;
        loop {
            match self.stage {
                Stage::Done => return None,
                Stage::Open => {
                    let Some(o) = working.get_mut(self.k) else {
                        self.stage = Stage::Stops;
                        self.k = 0;
                        continue;
                    };
                    let k = self.k;
                    self.k += 1;
                    if !o.live || o.eligible_from > i {
                        continue;
                    }
                    if let Some(m) = self.try_match(o, k, Moment::Open) {
                        return Some(m);
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
                            self.k = 0;
                            self.limit_len = len;
                        } else {
                            self.stage = Stage::Done;
                        }
                        continue;
                    };
                    let k = self.k;
                    self.k += 1;
                    if !o.live
                        || o.eligible_from > i
                        || o.is_market()
                        || o.checked_bar == i
                        || o.is_stop_type() != stops
                    {
                        continue;
                    }
                    o.checked_bar = i;
                    if let Some(m) = self.try_match(o, k, Moment::Intrabar) {
                        if !stops {
                            self.limit_len = len;
                        }
                        return Some(m);
                    }
                }
            }
        }
    }

    fn try_match(&self, o: &mut Order, k: usize, moment: Moment) -> Option<Match> {
        let was_triggered = o.triggered;
        match match_order(o, &self.prices, moment) {
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
