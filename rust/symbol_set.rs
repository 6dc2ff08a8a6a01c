//! A set of symbols as a bitmap: one bit per symbol, symbol 0 in the lowest bit of word 0
//! (the layout of the clock's maps, so a tick's symbols and a set meet a word at a time).
//!
//! The book keeps the symbols with working orders in one, the portfolio the symbols with
//! an open position in another, each beside what it describes: the market phase then
//! learns from a few words, not from every symbol's orders and position, which of the
//! tick's symbols need their bar's prices (mostly none, in a run that holds nothing).

use crate::clock::ActiveSymbols;

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SymbolSet {
    words: Vec<u64>,
}

impl SymbolSet {
    /// The empty set of `symbols` symbols.
    pub fn new(symbols: usize) -> Self {
        SymbolSet {
            words: vec![0; symbols.div_ceil(64)],
        }
    }

    /// Put `symbol` in the set (`on`) or take it out.
    #[inline]
    pub fn set(&mut self, symbol: usize, on: bool) {
        let (word, bit) = (&mut self.words[symbol >> 6], 1u64 << (symbol & 63));
        if on {
            *word |= bit;
        } else {
            *word &= !bit;
        }
    }

    #[inline]
    pub fn contains(&self, symbol: usize) -> bool {
        (self.words[symbol >> 6] >> (symbol & 63)) & 1 == 1
    }

    /// The bitmap's words.
    #[inline]
    pub fn words(&self) -> &[u64] {
        &self.words
    }

    /// The symbols in the set, ascending (the clock's walk over a map's bits).
    pub fn iter(&self) -> ActiveSymbols<'_> {
        ActiveSymbols::of(&self.words)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_draws::draws;

    /// Membership over three words (the last one partly used) follows every `set`, and
    /// the bits sit where the clock's maps put them.
    #[test]
    fn a_set_holds_what_was_put_in_and_not_taken_out() {
        let mut set = SymbolSet::new(150);
        assert_eq!(set.words().len(), 3);
        let mut plain = [false; 150];
        let mut next = draws(0x9e37_79b9_7f4a_7c15);
        for _ in 0..2000 {
            let state = next();
            let (s, on) = ((state % 150) as usize, (state >> 32) & 1 == 1);
            set.set(s, on);
            plain[s] = on;
            for (k, &want) in plain.iter().enumerate() {
                assert_eq!(set.contains(k), want, "symbol {k}");
                assert_eq!((set.words()[k / 64] >> (k % 64)) & 1 == 1, want);
            }
            let listed: Vec<usize> = set.iter().collect();
            let want: Vec<usize> = (0..150).filter(|&k| plain[k]).collect();
            assert_eq!(listed, want);
        }
    }
}
