"""Market data for tickstep: the door (validation), sample data and stores.

Every source of bars -- DataFrames, CSV or Parquet files, the DuckDB store, PostgreSQL --
becomes a `MarketColumns`: per symbol, contiguous int64 UTC nanosecond timestamps and
float64 open/high/low/close/volume, checked once here and trusted by the engine.
"""

from tickstep.data._api import BarsFile, load, open_store
from tickstep.data._door import DataError, MarketColumns, SymbolBars, to_market_columns
from tickstep.data._postgres import PostgresStore
from tickstep.data._sample import example_daily, sample, sample_daily
from tickstep.data._store import BarStore, Store

__all__ = [
    "BarStore",
    "BarsFile",
    "DataError",
    "MarketColumns",
    "PostgresStore",
    "Store",
    "SymbolBars",
    "example_daily",
    "load",
    "open_store",
    "sample",
    "sample_daily",
    "to_market_columns",
]
