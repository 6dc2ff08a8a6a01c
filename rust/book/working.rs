//! The working orders of every symbol, the set of symbols that have any, and what each
//! symbol's orders can reach.
//!
//! Kept together so the set changes exactly when a symbol's list becomes empty or not, and
//! a summary is forgotten whenever its list may have changed: orders are added and removed
//! here only, and a symbol's orders are otherwise lent as a slice (which can change an
//! order, never how many there are; lending it mutably forgets the summary).

use std::ops::{Index, IndexMut};

use super::matching::{self, Reach};
use crate::broker::Bar;
use crate::orders::{Order, UNADMITTED};
use crate::symbol_set::SymbolSet;

pub(super) struct Working {
    /// Per symbol, its working orders in id order (dead ones until the next `retain_live`).
    lists: Vec<Vec<Order>>,
    /// The symbols whose list is not empty.
    symbols: SymbolSet,
    /// Per symbol, the summary of its list (`matching::Reach`), or `None` where the list
    /// may have changed since one was made (made again when next asked).
    reach: Vec<Option<Reach>>,
}

impl Working {
    pub fn new(symbols: usize) -> Self {
        Working {
            lists: (0..symbols).map(|_| Vec::new()).collect(),
            symbols: SymbolSet::new(symbols),
            reach: vec![Some(Reach::NOTHING); symbols],
        }
    }

    /// Whether no order of `symbol` can act in its bar `bar` (`matching::is_quiet`). A bar
    /// that reaches none of the list's prices is answered by its summary; one that may
    /// reach some is walked order by order.
    #[inline]
    pub fn is_quiet(&mut self, symbol: usize, bar: usize, prices: &Bar) -> bool {
        let list = &self.lists[symbol];
        let reach = self.reach[symbol].get_or_insert_with(|| Reach::of(list));
        !reach.may_reach(prices) || matching::is_quiet(list, bar, prices)
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
        if let Some(reach) = &mut self.reach[s] {
            *reach = reach.with(&order);
        }
        self.lists[s].push(order);
        self.symbols.set(s, true);
    }

    /// `symbol`'s orders placed since the last barrier join the book, eligible from its bar
    /// `from_bar` on: they are the end of its list (nothing else adds orders between a
    /// tick's strategy phase and its barrier).
    #[inline]
    pub fn admit(&mut self, symbol: usize, from_bar: usize) {
        for o in self.lists[symbol].iter_mut().rev() {
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
        let had = list.len();
        match list.as_slice() {
            [] => {}
            [only] => {
                if !only.live {
                    list.clear();
                }
            }
            _ => list.retain(|o| o.live),
        }
        if list.len() != had {
            self.reach[symbol] = None;
        }
        self.symbols.set(symbol, !list.is_empty());
    }

    /// `retain_live` for every symbol.
    pub fn retain_live_everywhere(&mut self) {
        for s in 0..self.lists.len() {
            self.retain_live(s);
        }
    }

    /// Every symbol's orders, by symbol.
    pub fn iter(&self) -> impl Iterator<Item = &[Order]> {
        self.lists.iter().map(Vec::as_slice)
    }
}

impl Index<usize> for Working {
    type Output = [Order];

    #[inline]
    fn index(&self, symbol: usize) -> &[Order] {
        &self.lists[symbol]
    }
}

impl IndexMut<usize> for Working {
    #[inline]
    fn index_mut(&mut self, symbol: usize) -> &mut [Order] {
        self.reach[symbol] = None;
        &mut self.lists[symbol]
    }
}

#[cfg(test)]
#[path = "working_tests.rs"]
mod tests;
