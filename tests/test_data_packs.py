"""PostgreSQL bar packs decode to the same columns on both paths (no server needed)."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest
from tickstep.data import DataError
from tickstep.data._packs import unpack as _unpack

COLUMNS = ("ts", "open", "high", "low", "close", "volume")


def packs(sizes: list[int], seed: int = 0) -> tuple[pa.Table, np.ndarray, dict]:
    """Packs as PostgreSQL's int8send/float8send build them: big-endian, column-major."""
    rng = np.random.default_rng(seed)
    blobs, ids, expected = [], [], {c: [] for c in COLUMNS}
    ts = 0
    for i, n in enumerate(sizes):
        cols = {"ts": ts + np.arange(n, dtype=np.int64) * 60}
        ts += 86_400
        for c in COLUMNS[1:]:
            cols[c] = rng.random(n) * 100
        blob = cols["ts"].astype(">i8").tobytes()
        blob += b"".join(cols[c].astype(">f8").tobytes() for c in COLUMNS[1:])
        blobs.append(blob)
        ids.append(i % 3 + 1)
        for c in COLUMNS:
            expected[c].append(cols[c])
    table = pa.table(
        {
            "symbol_id": pa.array(ids, pa.int32()),
            "n": pa.array(sizes, pa.int32()),
            "data": pa.array(blobs, pa.binary()),
        }
    )
    sid = np.repeat(np.array(ids), sizes)
    return table, sid, {c: np.concatenate(v) for c, v in expected.items()}


@pytest.mark.parametrize("sizes", [[390, 0, 1440, 7], [1] * 25_000])
def test_both_decoding_paths_give_the_bars(sizes):
    table, sid, expected = packs(sizes)
    got_sid, got = _unpack(table)
    np.testing.assert_array_equal(got_sid, sid)
    for c in COLUMNS:
        assert got[c].dtype == (np.int64 if c == "ts" else np.float64)
        np.testing.assert_array_equal(got[c], expected[c])


def test_damaged_pack_is_refused():
    table, _, _ = packs([10, 10])
    table = table.set_column(1, "n", pa.array([10, 11], pa.int32()))
    with pytest.raises(DataError, match="rebuild_packs"):
        _unpack(table)
