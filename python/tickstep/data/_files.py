"""Files of bars: one table of suffixes, one reader per format, and `BarsFile`.

CSV (also ``.csv.gz``, ``.txt``), Parquet (``.parquet``, ``.pq``) and Arrow IPC /
Feather (``.arrow``, ``.feather``, ``.ipc``) are read into Arrow and go through the same
door as in-memory frames; errors name the file and the line (CSV) or row.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from os import PathLike
from pathlib import Path
from typing import Any, Self

import pyarrow as pa

from tickstep.data._columns import DataError, MarketColumns
from tickstep.data._memory import to_market_columns
from tickstep.data._request import check_options, select

__all__ = ["FILE_FORMATS", "BarsFile", "file_format", "read_bars_file"]

#: The one suffix table: every part of tickstep that takes a file of bars reads it here.
FILE_FORMATS = {
    ".csv": "csv",
    ".txt": "csv",
    ".parquet": "parquet",
    ".pq": "parquet",
    ".arrow": "arrow",
    ".feather": "arrow",
    ".ipc": "arrow",
}
# Compression pyarrow's CSV reader undoes itself (by suffix).
_COMPRESSED = (".gz", ".bz2", ".zst", ".lz4")


def file_format(path: str | PathLike[str]) -> str | None:
    """``"csv"``, ``"parquet"`` or ``"arrow"`` by the file's suffix, or None if not a bars file.

    A compressed CSV keeps its inner suffix: ``bars.csv.gz`` is CSV.
    """
    suffixes = [s.lower() for s in Path(path).suffixes]
    if suffixes and suffixes[-1] in _COMPRESSED:
        inner = FILE_FORMATS.get(suffixes[-2]) if len(suffixes) > 1 else None
        return "csv" if inner == "csv" else None
    return FILE_FORMATS.get(suffixes[-1]) if suffixes else None


def _file_error(path: Path, err: DataError, *, csv: bool) -> DataError:
    where = f"file '{path}'"
    if err.row is not None:
        where += f", line {err.row + 2}" if csv else f", row {err.row}"
    out = DataError(
        f"{where}: {err}",
        symbol=err.symbol,
        row=err.row,
        timestamp=err.timestamp,
        rule=err.rule,
        source=str(path),
    )
    return out


def _read_csv(path: Path) -> pa.Table:
    import pyarrow.csv as pcsv

    try:
        return pcsv.read_csv(path)
    except pa.ArrowInvalid:
        # Read again single-threaded: only then does Arrow report the line number.
        try:
            pcsv.read_csv(path, read_options=pcsv.ReadOptions(use_threads=False))
        except pa.ArrowInvalid as exc2:
            exc = exc2
        text = str(exc)
        match = re.search(r"Row #(\d+)", text)
        line = int(match.group(1)) if match else None
        detail = re.sub(r"^CSV parse error: (Row #\d+: )?", "", text)
        where = f"file '{path}'" + (f", line {line}" if line else "")
        raise DataError(
            f"{where}: malformed CSV row: {detail}",
            row=None if line is None else line - 2,
            rule="well-formed CSV",
            source=str(path),
        ) from None
    except (OSError, pa.ArrowException) as exc:
        raise DataError(f"file '{path}': cannot read it: {exc}", source=str(path)) from None


def _read_table(path: Path, kind: str) -> pa.Table:
    if kind == "csv":
        return _read_csv(path)
    try:
        if kind == "parquet":
            import pyarrow.parquet as pq

            return pq.read_table(path)
        from pyarrow import feather

        return feather.read_table(path, memory_map=True)
    except (OSError, pa.ArrowException) as exc:
        label = "Parquet" if kind == "parquet" else "Arrow IPC/Feather"
        raise DataError(f"file '{path}': cannot read {label}: {exc}", source=str(path)) from None


def read_bars_file(
    path: str | PathLike[str],
    *,
    symbol: str | None = None,
    symbol_column: str | None = None,
    columns: Any = None,
    allow_nan: Any = None,
) -> MarketColumns:
    """Read a file of bars (see `FILE_FORMATS`) through the door.

    A file with a symbol column may hold many symbols; otherwise its bars belong to
    ``symbol``, or to the file's name without suffixes (``AAPL.csv`` -> ``AAPL``).
    Errors name the file and the line (CSV) or row (Parquet, Arrow). Extra columns
    (``columns``, ``allow_nan``) as in `to_market_columns`; an empty CSV cell is a
    missing value.
    """
    path = Path(path)
    kind = file_format(path)
    if kind is None:
        known = ", ".join(FILE_FORMATS)
        raise DataError(
            f"file '{path}': unknown format; files of bars end in {known} (CSV also .gz)",
            source=str(path),
            rule="known file format",
        )
    if not path.exists():
        raise DataError(f"file '{path}' does not exist", source=str(path), rule="file exists")
    table = _read_table(path, kind)
    has_symbols = any(
        str(c).strip().lower() == (symbol_column or "symbol").lower() for c in table.column_names
    )
    try:
        return to_market_columns(
            table,
            symbol_column=symbol_column,
            symbol=None if has_symbols else symbol or path.name.split(".")[0],
            columns=columns,
            allow_nan=allow_nan,
        )
    except DataError as err:
        raise _file_error(path, err, csv=kind == "csv") from None


class BarsFile:
    """A file of bars (CSV, Parquet, Arrow IPC/Feather) behind the stores' ``load``.

    The file is read (through the door) at each `load`; symbols and the time range are
    selected by the same rule as every other source. SQL-only filters (``regular_hours``,
    ``timeframe``) are refused: ingest the file into a `Store` for those.

    Parameters
    ----------
    path : str or path-like
        See `FILE_FORMATS` for the suffixes and `Store.ingest` for the columns.
    symbol : str, optional
        Symbol of a file without a symbol column (default: the file's name).
    """

    options = ("symbol_column", "columns", "allow_nan")

    def __init__(self, path: str | PathLike[str], *, symbol: str | None = None) -> None:
        self.path = Path(path)
        self.symbol = symbol

    def __repr__(self) -> str:
        return f"BarsFile({str(self.path)!r})"

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Nothing to release; for symmetry with the stores."""

    def load(
        self,
        symbols: str | Sequence[str] | None = None,
        *,
        start: Any = None,
        end: Any = None,
        **options: Any,
    ) -> MarketColumns:
        """Read the file; keep ``symbols`` and the inclusive ``[start, end]`` range."""
        check_options(options, self.options, f"file '{self.path}'")
        market = read_bars_file(self.path, symbol=self.symbol, **options)
        return select(market, symbols, start, end, where=f"file '{self.path}'")
