"""Market data for tickstep: the door (`resolve`), sources, stores and sample data.

Every source of bars -- DataFrames, CSV, Parquet or Arrow files, the DuckDB store,
PostgreSQL -- goes through `resolve` and becomes a `MarketColumns`: per symbol,
contiguous int64 UTC nanosecond timestamps and float64 open/high/low/close/volume,
checked once here and trusted by the engine.
"""

from tickstep.data._actions import adjust_for_splits, with_dividends
from tickstep.data._columns import DataError, MarketColumns, SymbolBars
from tickstep.data._duckdb import Store
from tickstep.data._files import FILE_FORMATS, BarsFile
from tickstep.data._futures import roll_contracts
from tickstep.data._memory import to_market_columns
from tickstep.data._postgres import PostgresStore
from tickstep.data._records import RecordSet, RecordTable
from tickstep.data._request import LOAD_OPTIONS
from tickstep.data._resolve import MemoryBars, load, open_store, resolve
from tickstep.data._sample import example_daily, sample, sample_daily
from tickstep.data._store_base import BarStore

__all__ = [
    "FILE_FORMATS",
    "LOAD_OPTIONS",
    "BarStore",
    "BarsFile",
    "DataError",
    "MarketColumns",
    "MemoryBars",
    "PostgresStore",
    "RecordSet",
    "RecordTable",
    "Store",
    "SymbolBars",
    "adjust_for_splits",
    "example_daily",
    "load",
    "open_store",
    "resolve",
    "roll_contracts",
    "sample",
    "sample_daily",
    "to_market_columns",
    "with_dividends",
]
