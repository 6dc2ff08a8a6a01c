//! The working orders of every symbol, the set of symbols that have any, and what each
//! symbol's orders can reach.
//!
//! Kept together so the set changes exactly when a symbol's list becomes empty or not, and
//! a summary is made again whenever its list may have changed: orders are added and
//! removed here only, and a symbol's orders are otherwise lent as a slice (which can
//! change an order, never how many there are; lending it mutably forgets the summary).

use std::ops::{Index, IndexMut};

use super::matching::{self, Reach};
use crate::broker::Bar;
use crate::orders::{Order, UNADMITTED};
use crate::symbol_set::SymbolSet;

pub(super) struct Working {
    /// Per symbol, its working orders and their summary.
    lists: Vec<List>,
    /// The symbols whose list is not empty.
    symbols: SymbolSet,
}

/// One symbol's working orders in id order (dead ones until the next `retain_live`), and
/// the summary of the first `folded` of them (`matching::Reach`): orders placed since are
/// folded in when it is next read, and a list lent for a change starts again from nothing
/// (`folded` set to 0: one word written beside the list, the one cost on the usual path).
struct List {
    orders: Vec<Order>,
    folded: usize,
    reach: Reach,
}

/// Lists this long or shorter are walked at each bar rather than summed up: the walk
/// costs no more than reading a summary.
const WALKED: usize = 4;

impl Working {
    pub fn new(symbols: usize) -> Self {
        Working {
            lists: (0..symbols)
                .map(|_| List {
                    orders: Vec::new(),
                    folded: 0,
                    reach: Reach::NOTHING,
                })
                .collect(),
            symbols: SymbolSet::new(symbols),
        }
    }

    /// Whether some order of `symbol` may act in its bar `bar`: it has orders, and they
    /// are not all quiet (`matching::is_quiet`). In a long list, a bar that reaches none
    /// of the list's prices is answered by its summary; any other is walked order by order.
    #[inline(always)]
    pub fn may_act(&mut self, symbol: usize, bar: usize, prices: &Bar) -> bool {
        let list = &mut self.lists[symbol];
        match list.orders.len() {
            0 => false,
            n if n <= WALKED => !matching::is_quiet(&list.orders, bar, prices),
            _ => !list.is_quiet_by_summary(bar, prices),
        }
    }

    /// The symbols with at least one order in their list.
    #[inline]
    pub fn symbols(&self) -> &SymbolSet {
        &self.symbols
    }

    /// Add `order` at the end of its symbol's list.
    #[inline]
    pub fn push(&mut self, order: Order) {
        let s = order.symbol;
        self.lists[s].orders.push(order);
        self.symbols.set(s, true);
    }

    /// `symbol`'s orders placed since the last barrier join the book, eligible from its bar
    /// `from_bar` on: they are the end of its list (nothing else adds orders between a
    /// tick's strategy phase and its barrier).
    #[inline]
    pub fn admit(&mut self, symbol: usize, from_bar: usize) {
        for o in self.lists[symbol].orders.iter_mut().rev() {
            if o.eligible_from != UNADMITTED {
                break;
            }
            o.eligible_from = from_bar;
        }
    }

    /// Drop `symbol`'s orders that are no longer live (filled, cancelled, expired),
    /// keeping the rest in order. One order, the usual case, is cleared or kept as it is
    /// without the general shuffle.
    #[inline(always)]
    pub fn retain_live(&mut self, symbol: usize) {
        let list = &mut self.lists[symbol];
        list.folded = 0;
        let orders = &mut list.orders;
        match orders.as_slice() {
            [] => {}
            [only] => {
                if !only.live {
                    orders.clear();
                }
            }
            _ => orders.retain(|o| o.live),
        }
        self.symbols.set(symbol, !orders.is_empty());
    }

    /// `retain_live` for every symbol.
    pub fn retain_live_everywhere(&mut self) {
        for s in 0..self.lists.len() {
            self.retain_live(s);
        }
    }

    /// Every symbol's orders, by symbol.
    pub fn iter(&self) -> impl Iterator<Item = &[Order]> {
        self.lists.iter().map(|list| list.orders.as_slice())
    }
}

impl List {
    #[inline(never)]
    fn is_quiet_by_summary(&mut self, bar: usize, prices: &Bar) -> bool {
        if self.folded == 0 {
            self.reach = Reach::NOTHING;
        }
        self.reach = self.reach.fold(&self.orders[self.folded..]);
        self.folded = self.orders.len();
        !self.reach.may_reach(prices, bar) || matching::is_quiet(&self.orders, bar, prices)
    }
}

impl Index<usize> for Working {
    type Output = [Order];

    #[inline]
    fn index(&self, symbol: usize) -> &[Order] {
        &self.lists[symbol].orders
    }
}

impl IndexMut<usize> for Working {
    #[inline]
    fn index_mut(&mut self, symbol: usize) -> &mut [Order] {
        let list = &mut self.lists[symbol];
        list.folded = 0;
        &mut list.orders
    }
}

#[cfg(test)]
#[path = "working_tests.rs"]
mod tests;
