"""PostgreSQL binary COPY for bar rows, encoded and decoded with numpy.

Bars have fixed-width fields only (int4 symbol_id, int8 ts, six float8 values), so
every row of a binary COPY stream has the same size: the stream is one big-endian numpy
record array between a header and a trailer. No Python code runs per row.

Format (PostgreSQL docs, "COPY ... BINARY"): an 11-byte signature, int32 flags, int32
header-extension length (+ extension); per row an int16 field count, then per field an
int32 byte length (-1 for NULL) and the bytes; an int16 -1 trailer.
"""

from __future__ import annotations

import numpy as np

from tickstep.data._door import VALUE_COLUMNS, DataError

SIGNATURE = b"PGCOPY\n\xff\r\n\x00"
HEADER = SIGNATURE + np.array([0, 0], dtype=">i4").tobytes()
TRAILER = np.array([-1], dtype=">i2").tobytes()

_FIELDS = [("symbol_id", ">i4", 4), ("ts", ">i8", 8)] + [(c, ">f8", 8) for c in VALUE_COLUMNS]
ROW_DTYPE = np.dtype(
    [("nfields", ">i2")]
    + [item for name, kind, _ in _FIELDS for item in ((f"len_{name}", ">i4"), (name, kind))]
)
FIELD_SIZES = {name: size for name, _, size in _FIELDS}


def encode_bars(symbol_id: np.ndarray, ts: np.ndarray, values: dict[str, np.ndarray]) -> bytes:
    """Rows (symbol_id, ts, open, high, low, close, volume) as a binary COPY stream."""
    rows = np.empty(len(ts), dtype=ROW_DTYPE)
    rows["nfields"] = len(_FIELDS)
    rows["symbol_id"] = symbol_id
    rows["ts"] = ts
    for name in VALUE_COLUMNS:
        rows[name] = values[name]
    for name, size in FIELD_SIZES.items():
        rows[f"len_{name}"] = size
    return HEADER + rows.tobytes() + TRAILER


def decode_bars(stream: bytes | bytearray | memoryview) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """A binary COPY stream of bar rows -> (symbol_id, {ts, open, ..., volume}) arrays."""
    buf = memoryview(stream)
    if bytes(buf[: len(SIGNATURE)]) != SIGNATURE:
        raise DataError("PostgreSQL sent something other than a binary COPY stream")
    ext = int(np.frombuffer(buf, dtype=">i4", count=1, offset=15)[0])
    start = 19 + ext
    body = len(buf) - start - len(TRAILER)
    if body < 0 or body % ROW_DTYPE.itemsize:
        raise DataError(
            "binary COPY stream has rows of unexpected size (a NULL or a wrong column type "
            "in the bars query)"
        )
    rows = np.frombuffer(buf, dtype=ROW_DTYPE, count=body // ROW_DTYPE.itemsize, offset=start)
    if len(rows):
        ok = rows["nfields"] == len(_FIELDS)
        for name, size in FIELD_SIZES.items():
            ok &= rows[f"len_{name}"] == size
        if not ok.all():
            raise DataError("binary COPY stream has a NULL or a wrong column type in bars")
    columns = {"ts": rows["ts"].astype(np.int64)}
    for name in VALUE_COLUMNS:
        columns[name] = rows[name].astype(np.float64)
    return rows["symbol_id"].astype(np.int64), columns
