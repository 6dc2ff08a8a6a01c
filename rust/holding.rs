//! Which ticks each symbol's position was held at the end of: worked out after a run
//! from its lots' lives (the closed trades and the lots still open), for the exposure
//! of each symbol and sector in the report, so that no loop pays for it at every tick.

use crate::clock::gallop;
use crate::portfolio::ClosedTrade;
use crate::results::OrderLog;

/// A lot's life in a run: its symbol, the time of the fill that opened it, and that of the
/// fill that closed the last of it (`None`: still open at the end).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LotLife {
    pub symbol: u32,
    pub opened: i64,
    pub ended: Option<i64>,
}

/// What a run's holding spans are read from besides its closed trades: its lots still
/// open at the end, its timeline, the time the account opened and its number of symbols
/// (`Engine::holding_spans`).
#[derive(Clone, Debug, Default)]
pub struct HoldingSpans {
    pub open: Vec<LotLife>,
    pub ticks: Vec<i64>,
    pub opens: i64,
    pub symbols: usize,
}

impl HoldingSpans {
    /// The spans (`holding_spans`) of the run whose closed trades are `closed` (the order
    /// log `orders` names their symbols): each lot ended with its last trade (a lot
    /// closed in parts has one per part). (A lot still open that was closed in part
    /// also has a life to its last trade, within its life to the end: no tick more.)
    pub fn of(&self, closed: &[ClosedTrade], orders: &OrderLog) -> Vec<(u32, u64, u64)> {
        // Lot ids count up from 1: per id, whether a later part of it was seen.
        let last_id = closed.iter().map(|t| t.trade_id).max().unwrap_or(0);
        let mut seen = vec![false; last_id as usize + 1];
        let records = orders.records();
        let mut lives = Vec::with_capacity(closed.len() + self.open.len());
        for t in closed.iter().rev() {
            if !std::mem::replace(&mut seen[t.trade_id as usize], true) {
                lives.push(LotLife {
                    symbol: records[(t.exit_order - 1) as usize].symbol,
                    opened: t.entry_ts,
                    ended: Some(t.exit_ts),
                });
            }
        }
        lives.reverse(); // in the order they ended
        lives.extend_from_slice(&self.open);
        holding_spans(&lives, &self.ticks, self.opens, self.symbols)
    }
}

/// Each symbol's spans of the run's ticks at whose ends it held a position, `(symbol,
/// from, to)` for ticks `from..to`, numbered from the account's opening (`opens`: the
/// ticks `EquityCurve::exposure_ticks` counts), by symbol and then time, each span as long
/// as it runs. `ticks` is the run's timeline, and `lives` its lots' of `symbols` symbols:
/// those that ended in the order they ended, then those still open. A position is held
/// while any of its lots is open (every lot of a position is on its side, and a position
/// without lots is flat), so a tick ends held when a lot opened at or before it ends
/// after it: the union of `lives`, each from the tick of its opening fill to that of its
/// last closing one. Read from the logs after the run: no loop pays for it.
pub fn holding_spans(
    lives: &[LotLife],
    ticks: &[i64],
    opens: i64,
    symbols: usize,
) -> Vec<(u32, u64, u64)> {
    let first = ticks.partition_point(|&x| x < opens);
    let mut held: Vec<Vec<(usize, usize)>> = vec![Vec::new(); symbols];
    // A fill's time is its tick's: the tick is where that time stands in the timeline.
    // The ends come in time order, each found from the one before.
    let mut cursor = 0;
    for life in lives {
        let to = match life.ended {
            Some(ts) if cursor == 0 || ticks[cursor - 1] < ts => {
                cursor = gallop(ticks, cursor, |x| x < ts);
                cursor
            }
            Some(ts) => ticks.partition_point(|&x| x < ts),
            None => ticks.len(),
        };
        // Its opening, found back from its end (most lots are held a short while).
        let (mut lo, mut step) = (to, 1);
        while lo > 0 && ticks[lo - 1] >= life.opened {
            lo = lo.saturating_sub(step);
            step *= 2;
        }
        let from = lo + ticks[lo..to].partition_point(|&x| x < life.opened);
        // (Ticks before the account opened are not counted: a lot held into its
        // opening counts from there.)
        let (from, to) = (from.max(first) - first, to.max(first) - first);
        if from < to {
            held[life.symbol as usize].push((from, to));
        }
    }
    let mut spans = Vec::new();
    for (symbol, mut lots) in held.into_iter().enumerate() {
        // (In the order they ended, they are about in the order they began.)
        lots.sort_unstable();
        let mut reach: Option<(usize, usize)> = None;
        for (from, to) in lots {
            // Lots held at once, or one opened at the tick the one before closed (that
            // tick ends held), make one span.
            match &mut reach {
                Some(span) if from <= span.1 => span.1 = span.1.max(to),
                _ => {
                    if let Some((a, b)) = reach.replace((from, to)) {
                        spans.push((symbol as u32, a as u64, b as u64));
                    }
                }
            }
        }
        if let Some((a, b)) = reach {
            spans.push((symbol as u32, a as u64, b as u64));
        }
    }
    spans
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_symbols_spans_are_the_union_of_its_lots_lives_in_ticks() {
        let life = |symbol, opened, ended| LotLife {
            symbol,
            opened,
            ended,
        };
        // Ticks at times 10, 20, ..., 90; the account opens at tick 1 (time 20), ticks
        // numbered from there.
        let ticks = [10, 20, 30, 40, 50, 60, 70, 80, 90];
        let lives = [
            // Symbol 0: a lot 20..50 and one added at 30 held to 70 (one span, ticks 1..6
            // of the timeline: 0..5 from the opening), then one opened at 70 as the last
            // closed (the tick ends held: the span goes on) to 80.
            life(0, 20, Some(50)),
            life(0, 30, Some(70)),
            life(0, 70, Some(80)),
            // Symbol 1: bought before the account opened and still held at its opening
            // (counted from there), then one opened and closed at the same tick (never
            // held at a tick's end), then one still open at the end.
            life(1, 10, Some(30)),
            life(1, 60, Some(60)),
            life(1, 80, None),
            // Symbol 2: wholly before the opening.
            life(2, 10, Some(20)),
        ];
        let spans = holding_spans(&lives, &ticks, 15, 3);
        assert_eq!(spans, vec![(0, 0, 6), (1, 0, 1), (1, 6, 8)]);
        // In the order they ended (as the engine gives them), or reversed: the same.
        let mut ordered = lives;
        ordered.sort_by_key(|l| l.ended.unwrap_or(i64::MAX));
        assert_eq!(holding_spans(&ordered, &ticks, 15, 3), spans);
        ordered.reverse();
        assert_eq!(holding_spans(&ordered, &ticks, 15, 3), spans);
    }
}
