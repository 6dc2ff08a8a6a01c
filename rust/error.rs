//! The one error type of the core. The bindings map it to Python exceptions in one place.

use std::fmt;

/// What went wrong inside the engine, in words a trader can act on.
#[derive(Debug)]
pub enum EngineError {
    /// Market columns that cannot be loaded (lengths differ, no symbols).
    InvalidMarket(String),
    /// An order the broker refuses at the door (bad size, prices on the wrong side, ...).
    InvalidOrder(String),
    /// A symbol index or name the market does not hold.
    UnknownSymbol(String),
    /// An engine option out of range.
    InvalidConfig(String),
    /// The engine was asked to run twice, or queried in the wrong state.
    State(String),
    /// The user's strategy failed; `source` is its own error, carried unchanged.
    Strategy {
        symbol: Option<String>,
        timestamp: i64,
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

impl fmt::Display for EngineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EngineError::InvalidMarket(m) => write!(f, "invalid market data: {m}"),
            EngineError::InvalidOrder(m) => write!(f, "invalid order: {m}"),
            EngineError::UnknownSymbol(m) => write!(f, "unknown symbol: {m}"),
            EngineError::InvalidConfig(m) => write!(f, "invalid engine option: {m}"),
            EngineError::State(m) => write!(f, "{m}"),
            EngineError::Strategy {
                symbol,
                timestamp,
                source,
            } => match symbol {
                Some(s) => write!(f, "strategy failed on {s} at {timestamp}: {source}"),
                None => write!(f, "strategy failed at {timestamp}: {source}"),
            },
        }
    }
}

impl std::error::Error for EngineError {}

pub type Result<T> = std::result::Result<T, EngineError>;
