"""The dlib reader's primitives on hand-made bytes (no ../shared needed)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from models.identity.dlib_format import DlibFormatError, Reader, read_resnet


def test_integers_floats_and_tensors_decode_as_dlib_writes_them() -> None:
    # 300 = 0x012c in two bytes; -5 has the sign bit; 0.6 = 0x99999a * 2**-24; a (1, 2, 1, 1) tensor
    data = (
        b"\x02\x2c\x01" + b"\x81\x05" + b"\x03\x9a\x99\x99\x81\x18" + b"\x01\x02" + b"\x01\x01\x01\x02\x01\x01\x01\x01"
    )
    data += np.array([1.5, -2.0], "<f4").tobytes() + b"1"
    reader = Reader(data)
    assert reader.integer() == 300 and reader.integer() == -5
    assert reader.real() == pytest.approx(0.6, abs=1e-7)
    assert reader.tensor().tolist() == [1.5, -2.0]
    assert reader.boolean() is True
    reader.done()


def test_bad_bytes_name_the_problem_and_the_offset(tmp_path: Path) -> None:
    with pytest.raises(DlibFormatError, match="truncated: needs 2 more bytes at byte 1"):
        Reader(b"\x02\x2c").integer()
    with pytest.raises(DlibFormatError, match="invalid integer control byte"):
        Reader(b"\x3f").integer()
    empty = tmp_path / "empty.dat"
    empty.write_bytes(b"")
    with pytest.raises(DlibFormatError, match=r"empty\.dat: truncated"):
        read_resnet(empty)
    other = tmp_path / "other.dat"
    other.write_bytes(b"\x01\x01\x01\x05hello")
    with pytest.raises(DlibFormatError, match="expected the 'loss_metric_2' loss"):
        read_resnet(other)
