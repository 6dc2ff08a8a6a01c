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


@pytest.mark.parametrize("sizes", [[390, 0, 1440, 7], [1] * 25_000])
def test_extra_sections_decode_with_their_nulls(sizes):
    from tickstep.data._packs import NULL_WORD

    table, sid, expected = packs(sizes)
    rng = np.random.default_rng(1)
    blobs, extra = [], {"e0": [], "e1": []}
    for blob, n in zip(table.column("data").to_pylist(), sizes):
        signal = rng.random(n)
        gaps = rng.random(n) * 100
        gaps[::3] = np.nan  # a NaN stays a NaN
        raw = gaps.astype(">f8").view(">i8").copy()
        raw[1::3] = NULL_WORD  # a NULL, as the packs' SQL stores it
        blobs.append(blob + signal.astype(">f8").tobytes() + raw.tobytes())
        extra["e0"].append(signal)
        extra["e1"].append(raw.view(">f8").astype(np.float64))
    table = table.set_column(2, "data", pa.array(blobs, pa.binary()))
    got_sid, got = _unpack(table, 2)
    np.testing.assert_array_equal(got_sid, sid)
    for c in COLUMNS:
        np.testing.assert_array_equal(got[c], expected[c])
    np.testing.assert_array_equal(got["e0"], np.concatenate(extra["e0"]))
    e1 = np.concatenate(extra["e1"])
    np.testing.assert_array_equal(got["e1"], e1)  # NaN where NaN or NULL
    position = np.concatenate([np.arange(n) for n in sizes])
    nulls = position % 3 == 1
    if nulls.any():
        np.testing.assert_array_equal(got["e1:null"], nulls)
    else:  # one bar per pack: no NULL written
        assert "e1:null" not in got
    assert "e0:null" not in got
