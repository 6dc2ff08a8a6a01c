"""tickstep: event-driven multi-symbol backtesting with a Rust core."""
