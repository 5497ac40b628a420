"""Read a TensorFlow checkpoint (the V2 "tensor bundle" format) without TensorFlow.

A checkpoint ``PREFIX`` is ``PREFIX.index``, a LevelDB-style sorted table that maps each variable
name to a ``BundleEntryProto`` (dtype, shape, shard, offset, size), and
``PREFIX.data-SSSSS-of-NNNNN``, the raw little-endian tensor bytes. TensorFlow writes the index
uncompressed (``BundleWriter``). This reader decodes both with the standard library and numpy:
enough for the separation model's float and integer variables; other dtypes (strings) are listed
but cannot be read.

Format references: tensorflow/core/util/tensor_bundle/tensor_bundle.{h,cc} and
tensor_bundle.proto; tensorflow/core/lib/io/format.cc, block.cc (table footer, blocks).
"""

from __future__ import annotations

import dataclasses
import re
import struct
from pathlib import Path

import numpy as np

from desed_task.errors import UserError
from desed_task.separation.errors import ModelNotFound

TABLE_MAGIC = 0xDB4775248B80FB57
FOOTER_BYTES = 48
BLOCK_TRAILER_BYTES = 5  # compression type (1 byte) + crc32c (4 bytes)
# DataType enum of tensorflow/core/framework/types.proto -> numpy (little-endian)
DTYPES = {
    1: np.dtype("<f4"), 2: np.dtype("<f8"), 3: np.dtype("<i4"), 4: np.dtype("u1"),
    5: np.dtype("<i2"), 6: np.dtype("i1"), 9: np.dtype("<i8"), 10: np.dtype("?"),
    14: np.dtype("<u2"),  # bfloat16 bits
    19: np.dtype("<f2"), 17: np.dtype("<u2"), 22: np.dtype("<u4"), 23: np.dtype("<u8"),
}
DTYPE_NAMES = {1: "float32", 2: "float64", 3: "int32", 7: "string", 9: "int64", 10: "bool",
               14: "bfloat16", 19: "float16"}


class CheckpointFormatError(UserError):
    """The files are not a readable TensorFlow V2 checkpoint; the message names the file."""


@dataclasses.dataclass(frozen=True)
class TensorEntry:
    """Where one variable's bytes are.

    Attributes:
        dtype: TensorFlow's DataType number (1 = float32, 9 = int64, ...).
        shape: the variable's shape.
        shard: the data file it is in.
        offset, size: its bytes in that file.
    """

    dtype: int
    shape: tuple[int, ...]
    shard: int
    offset: int
    size: int

    @property
    def dtype_name(self) -> str:
        return DTYPE_NAMES.get(self.dtype, f"dtype {self.dtype}")


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    """Decode a base-128 varint at `pos`; returns (value, position after it)."""
    value = shift = 0
    while True:
        if pos >= len(data):
            raise ValueError("truncated varint")
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
        shift += 7


def _proto_fields(data: bytes) -> list[tuple[int, int | bytes]]:
    """(field number, value) of a serialized protocol buffer message, in order: varints and
    fixed-width values as int, length-delimited fields as bytes."""
    fields, pos = [], 0
    while pos < len(data):
        key, pos = _varint(data, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(data, pos)
        elif wire == 1:
            value, pos = struct.unpack_from("<Q", data, pos)[0], pos + 8
        elif wire == 2:
            length, pos = _varint(data, pos)
            value, pos = data[pos:pos + length], pos + length
        elif wire == 5:
            value, pos = struct.unpack_from("<I", data, pos)[0], pos + 4
        else:
            raise ValueError(f"unsupported protobuf wire type {wire}")
        fields.append((number, value))
    if pos != len(data):
        raise ValueError("truncated protobuf message")
    return fields


def _signed64(value: int) -> int:
    return value - (1 << 64) if value >= 1 << 63 else value


def _parse_entry(value: bytes) -> TensorEntry:
    """A ``BundleEntryProto``: dtype 1, shape 2, shard_id 3, offset 4, size 5 (crc32c 6 and
    slices 7 are not used)."""
    dtype, shape, shard, offset, size = 0, [], 0, 0, 0
    for number, field in _proto_fields(value):
        if number == 1:
            dtype = int(field)
        elif number == 2:  # TensorShapeProto: dim 2 {size 1}
            for dim_number, dim in _proto_fields(field):
                if dim_number == 2:
                    sizes = [int(v) for n, v in _proto_fields(dim) if n == 1]
                    shape.append(_signed64(sizes[0]) if sizes else 0)
        elif number == 3:
            shard = int(field)
        elif number == 4:
            offset = int(field)
        elif number == 5:
            size = int(field)
        elif number == 7:
            raise ValueError("partitioned (sliced) variables are not supported")
    return TensorEntry(dtype, tuple(shape), shard, offset, size)


def _block_entries(data: bytes, offset: int, size: int) -> list[tuple[bytes, bytes]]:
    """(key, value) of one uncompressed table block (prefix-compressed keys, restart array)."""
    if data[offset + size] != 0:  # the trailer's compression byte: 0 = none
        raise ValueError("compressed table block (TensorFlow writes them uncompressed)")
    block = data[offset:offset + size]
    n_restarts = struct.unpack_from("<I", block, len(block) - 4)[0]
    end = len(block) - 4 - 4 * n_restarts
    entries, pos, key = [], 0, b""
    while pos < end:
        shared, pos = _varint(block, pos)
        unshared, pos = _varint(block, pos)
        value_length, pos = _varint(block, pos)
        key = key[:shared] + block[pos:pos + unshared]
        pos += unshared
        entries.append((key, block[pos:pos + value_length]))
        pos += value_length
    return entries


def _block_handle(value: bytes) -> tuple[int, int]:
    offset, pos = _varint(value, 0)
    size, _ = _varint(value, pos)
    return offset, size


def read_index(prefix: str | Path) -> tuple[dict[str, TensorEntry], int]:
    """The variables of a checkpoint, from ``PREFIX.index``.

    Args:
        prefix: the checkpoint prefix, e.g. ``.../model.ckpt-3547330``.

    Returns:
        ({variable name: its entry}, number of data shards).

    Raises:
        ModelNotFound: no ``PREFIX.index``.
        CheckpointFormatError: the index is not a TensorFlow V2 checkpoint index.
    """
    path = Path(f"{prefix}.index")
    data = path.read_bytes()
    try:
        if len(data) < FOOTER_BYTES:
            raise ValueError("shorter than a table footer")
        footer = data[-FOOTER_BYTES:]
        if struct.unpack_from("<Q", footer, 40)[0] != TABLE_MAGIC:
            raise ValueError("no table magic number at its end")
        _, pos = _varint(footer, 0)  # metaindex handle: offset, size
        _, pos = _varint(footer, pos)
        index_offset, pos = _varint(footer, pos)
        index_size, _ = _varint(footer, pos)
        entries: dict[str, TensorEntry] = {}
        num_shards = 1
        for _, handle in _block_entries(data, index_offset, index_size):
            for key, value in _block_entries(data, *_block_handle(handle)):
                if key == b"":  # BundleHeaderProto: num_shards 1, endianness 2
                    header = dict(_proto_fields(value))
                    num_shards = int(header.get(1, 1))
                    if int(header.get(2, 0)) != 0:
                        raise ValueError("big-endian checkpoint")
                else:
                    entries[key.decode("utf-8")] = _parse_entry(value)
    except (ValueError, IndexError, struct.error, UnicodeDecodeError) as err:
        raise CheckpointFormatError(
            f"{path}: not a TensorFlow (V2) checkpoint index ({err})"
        ) from err
    return entries, num_shards


def read_tensor(prefix: str | Path, entry: TensorEntry, num_shards: int) -> np.ndarray:
    """One variable's value (a new array, native byte order).

    Raises:
        CheckpointFormatError: a dtype that cannot be read (strings), or a data file shorter
            than the index says.
        ModelNotFound: its data file is missing.
    """
    path = Path(f"{prefix}.data-{entry.shard:05d}-of-{num_shards:05d}")
    if entry.dtype not in DTYPES:
        raise CheckpointFormatError(f"{path}: cannot read a {entry.dtype_name} variable")
    dtype = DTYPES[entry.dtype]
    count = int(np.prod(entry.shape, dtype=np.int64))
    if count * dtype.itemsize != entry.size:
        raise CheckpointFormatError(
            f"{path}: a {entry.dtype_name} {list(entry.shape)} variable stored in {entry.size} bytes"
        )
    with open(path, "rb") as file:
        file.seek(entry.offset)
        raw = file.read(entry.size)
    if len(raw) != entry.size:
        raise CheckpointFormatError(f"{path}: truncated (the index says more bytes)")
    return np.frombuffer(raw, dtype=dtype).reshape(entry.shape).astype(dtype.newbyteorder("="))


def data_files(prefix: str | Path, num_shards: int) -> list[Path]:
    """The data files of a checkpoint with `num_shards` shards."""
    return [Path(f"{prefix}.data-{i:05d}-of-{num_shards:05d}") for i in range(num_shards)]


def checkpoint_prefix_in(folder: str | Path) -> Path:
    """The prefix named by a folder's ``checkpoint`` state file (``model_checkpoint_path``).

    Raises:
        ModelNotFound: no ``checkpoint`` file, or it names no checkpoint.
    """
    folder = Path(folder)
    state = folder / "checkpoint"
    if not state.is_file():
        raise ModelNotFound(
            f"{state}: no checkpoint state file; give the checkpoint with --tf_checkpoint PREFIX "
            "(e.g. DIR/model.ckpt-3547330)"
        )
    match = re.search(r'^model_checkpoint_path:\s*"([^"]+)"', state.read_text(), re.MULTILINE)
    if not match:
        raise ModelNotFound(
            f"{state}: names no model_checkpoint_path; give the checkpoint with --tf_checkpoint PREFIX"
        )
    prefix = Path(match.group(1))
    return prefix if prefix.is_absolute() else folder / prefix
