"""Reads TensorFlow V2 checkpoints (`<prefix>.index` + `.data-NNNNN-of-MMMMM`) without TensorFlow.

Format (TensorFlow's `tensor_bundle`):
  * `.index` is an SSTable (the LevelDB table format): data blocks of prefix-compressed
    key/value entries, an index block pointing at them, and a 48-byte footer ending in a magic
    number. Keys are tensor names; the empty key holds a `BundleHeaderProto` (shard count,
    endianness); every other value is a `BundleEntryProto` (dtype, shape, shard, offset, size,
    masked crc32c of the tensor bytes). TensorFlow writes the blocks uncompressed.
  * `.data-<shard>-of-<num_shards>` holds the raw tensor bytes, row-major, little-endian.

The few protobuf fields needed are decoded by hand (varints), so no TensorFlow and no generated
protobuf code is needed. Partitioned (sliced) variables and string tensors are not supported:
none of Magenta's MusicVAE checkpoints has them, and reading one is a clear error.

Every tensor's crc32c is checked (a vectorised numpy crc32c, about 10 s per GB); `verify=False`
skips it. The blocks of the `.index` file are not checksummed (their parse fails loudly instead).

Paths (`resolve`): a checkpoint prefix (`.../model.ckpt-4242`), a directory with a `checkpoint`
state file (`model_checkpoint_path: "model.ckpt-4242"`) or with exactly one `.index` file, or a
`.tar` / `.tar.gz` archive holding one of those (Magenta distributes `cat-mel_2bar_big.tar`).
"""
from __future__ import annotations

import contextlib
import os
import re
import struct
import tarfile
import tempfile
import zlib
from typing import Iterator

import numpy as np


class CheckpointError(ValueError):
  """A missing, unreadable or corrupt TensorFlow checkpoint; the message names the file."""


_MAGIC = 0xdb4775248b80fb57
_FOOTER_SIZE = 48
_BLOCK_TRAILER_SIZE = 5  # compression type byte + crc32c

# TensorFlow DataType enum -> numpy dtype (little-endian).
_DTYPES = {
    1: np.float32, 2: np.float64, 3: np.int32, 4: np.uint8, 5: np.int16, 6: np.int8,
    9: np.int64, 10: np.bool_, 17: np.uint16, 19: np.float16, 22: np.uint32, 23: np.uint64,
}

OPTIMIZER_SUFFIXES = ('/Adam', '/Adam_1')
OPTIMIZER_NAMES = ('beta1_power', 'beta2_power')


def is_optimizer_variable(name: str) -> bool:
  """Adam slots and accumulators that `music_vae_train` saves next to the model variables."""
  return name in OPTIMIZER_NAMES or name.endswith(OPTIMIZER_SUFFIXES)


# ----------------------------------------------------------------------------- crc32c

def _crc_table() -> np.ndarray:
  poly = 0x82F63B78  # Castagnoli, reflected
  table = np.zeros(256, np.uint32)
  for i in range(256):
    c = i
    for _ in range(8):
      c = (c >> 1) ^ poly if c & 1 else c >> 1
    table[i] = c
  return table


_TABLE = _crc_table()


def _raw_update(registers: np.ndarray, data: np.ndarray) -> np.ndarray:
  """Runs independent CRC registers uint32 [lanes] over data uint8 [steps, lanes]."""
  r = registers.astype(np.uint32)
  for row in data:
    r = _TABLE[(r ^ row) & 0xFF] ^ (r >> np.uint32(8))
  return r


def _shift_matrix(length: int) -> np.ndarray:
  """Columns uint32 [32]: the register after `length` zero bytes, starting from bit i alone.
  Processing bytes is affine in the register, so this linear part lets lanes be chained."""
  basis = (np.uint32(1) << np.arange(32, dtype=np.uint32)).astype(np.uint32)
  return _raw_update(basis, np.zeros((length, 32), np.uint8))


def _apply(columns: np.ndarray, r: np.ndarray) -> np.ndarray:
  """The GF(2) matrix with these columns times every register of r (uint32 [...])."""
  out = np.zeros_like(r)
  for i in range(32):
    out ^= np.where((r >> np.uint32(i)) & np.uint32(1), columns[i], np.uint32(0)).astype(np.uint32)
  return out


def crc32c(data: bytes | np.ndarray) -> int:
  """CRC-32C (Castagnoli) of a byte string, as TensorFlow's `crc32c::Value`.

  The bytes are cut into 2^k equal lanes that run side by side (numpy), then neighbouring lanes
  are merged pairwise with the zero-extension operator of their length (squared at each level);
  the remainder runs on its own. About 10 s per GB on one core.
  """
  buf = np.frombuffer(data, np.uint8) if isinstance(data, (bytes, bytearray, memoryview)) \
      else np.ascontiguousarray(data).view(np.uint8).reshape(-1)
  n = buf.size
  lanes = 1
  while lanes * 2 <= min(16384, n // 64):
    lanes *= 2
  length = n // lanes
  r = np.array([0xFFFFFFFF], np.uint32)
  tail = buf
  if lanes > 1:
    body = np.ascontiguousarray(buf[:lanes * length].reshape(lanes, length).T)  # [steps, lanes]
    raw = _raw_update(np.zeros(lanes, np.uint32), body)  # each lane from a zero register
    columns = _shift_matrix(length)
    while raw.size > 1:
      raw = _apply(columns, raw[0::2]) ^ raw[1::2]
      columns = _apply(columns, columns)  # shift by twice the length
    r = _apply(columns, r) ^ raw
    tail = buf[lanes * length:]
  if tail.size:
    r = _raw_update(r, tail[:, None])
  return int(r[0]) ^ 0xFFFFFFFF


def unmask_crc(masked: int) -> int:
  """LevelDB / TensorFlow store crc32c values masked; this undoes it."""
  rot = (masked - 0xa282ead8) & 0xFFFFFFFF
  return ((rot >> 17) | (rot << 15)) & 0xFFFFFFFF


# ----------------------------------------------------------------------------- protobuf bits

def _varint(buf: bytes, pos: int) -> tuple[int, int]:
  result, shift = 0, 0
  while True:
    if pos >= len(buf):
      raise ValueError('truncated varint')
    b = buf[pos]
    pos += 1
    result |= (b & 0x7F) << shift
    if not b & 0x80:
      return result, pos
    shift += 7


def _fields(buf: bytes) -> Iterator[tuple[int, int, int | bytes]]:
  """(field number, wire type, value) of a serialized protobuf message."""
  pos = 0
  while pos < len(buf):
    key, pos = _varint(buf, pos)
    field, wire = key >> 3, key & 7
    if wire == 0:
      value, pos = _varint(buf, pos)
    elif wire == 1:
      value, pos = struct.unpack_from('<Q', buf, pos)[0], pos + 8
    elif wire == 2:
      size, pos = _varint(buf, pos)
      value, pos = buf[pos:pos + size], pos + size
    elif wire == 5:
      value, pos = struct.unpack_from('<I', buf, pos)[0], pos + 4
    else:
      raise ValueError(f'unsupported protobuf wire type {wire}')
    yield field, wire, value


def _signed64(v: int) -> int:
  return v - (1 << 64) if v >= 1 << 63 else v


class _Entry:
  """The fields of a BundleEntryProto that a reader needs."""

  def __init__(self, raw: bytes):
    self.dtype, self.shape, self.shard = 0, (), 0
    self.offset, self.size, self.crc, self.sliced = 0, 0, None, False
    for field, _, value in _fields(raw):
      if field == 1:
        self.dtype = value
      elif field == 2:
        dims = []
        for f2, _, v2 in _fields(value):
          if f2 == 2:
            dims.append(next((_signed64(v) for f3, _, v in _fields(v2) if f3 == 1), 0))
        self.shape = tuple(dims)
      elif field == 3:
        self.shard = value
      elif field == 4:
        self.offset = value
      elif field == 5:
        self.size = value
      elif field == 6:
        self.crc = value
      elif field == 7:
        self.sliced = True


# ----------------------------------------------------------------------------- the SSTable

def _block_entries(block: bytes) -> Iterator[tuple[bytes, bytes]]:
  """Key/value pairs of one table block (prefix-compressed keys, restart array at the end)."""
  num_restarts = struct.unpack_from('<I', block, len(block) - 4)[0]
  end = len(block) - 4 - 4 * num_restarts
  pos, key = 0, b''
  while pos < end:
    shared, pos = _varint(block, pos)
    non_shared, pos = _varint(block, pos)
    value_len, pos = _varint(block, pos)
    key = key[:shared] + block[pos:pos + non_shared]
    pos += non_shared
    yield key, block[pos:pos + value_len]
    pos += value_len


def _read_block(data: bytes, handle: bytes, path: str) -> bytes:
  offset, pos = _varint(handle, 0)
  size, _ = _varint(handle, pos)
  if offset + size + _BLOCK_TRAILER_SIZE > len(data):
    raise CheckpointError(f'{path}: a block points past the end of the file (truncated?)')
  if data[offset + size] != 0:
    raise CheckpointError(f'{path}: compressed index blocks are not supported (type '
                          f'{data[offset + size]}); TensorFlow writes them uncompressed')
  return data[offset:offset + size]


def _read_index(path: str) -> dict[bytes, bytes]:
  """{key: value} of every entry of an SSTable file."""
  with open(path, 'rb') as f:
    data = f.read()
  if len(data) < _FOOTER_SIZE or struct.unpack_from('<Q', data, len(data) - 8)[0] != _MAGIC:
    raise CheckpointError(f'{path}: not a TensorFlow checkpoint index (bad footer or truncated)')
  footer = data[-_FOOTER_SIZE:]
  _, pos = _varint(footer, 0)  # metaindex handle: offset
  _, pos = _varint(footer, pos)  # metaindex handle: size
  index_handle = footer[pos:]
  out = {}
  for _, handle in _block_entries(_read_block(data, index_handle, path)):
    for key, value in _block_entries(_read_block(data, handle, path)):
      out[key] = value
  return out


# ----------------------------------------------------------------------------- files

class _Files:
  """Where the checkpoint's files are: (path, byte offset) per file name, plain or in a tar."""

  def __init__(self, prefix: str, tar: str | None = None, members: dict | None = None):
    self.prefix, self.tar, self.members = prefix, tar, members or {}

  def locate(self, suffix: str) -> tuple[str, int, int]:
    """(file to open, offset of the content in it, content size) of `<prefix><suffix>`."""
    name = self.prefix + suffix
    if self.tar is not None:
      if name not in self.members:
        raise CheckpointError(f'{self.tar}: no member {name}')
      m = self.members[name]
      return self.tar, m.offset_data, m.size
    if not os.path.exists(name):
      raise CheckpointError(f'{name}: no such file')
    return name, 0, os.path.getsize(name)

  def read(self, suffix: str, offset: int = 0, size: int | None = None) -> bytes:
    path, base, total = self.locate(suffix)
    size = total - offset if size is None else size
    if offset + size > total:
      raise CheckpointError(f'{self.prefix}{suffix}: a tensor at bytes {offset}..{offset + size} '
                            f'lies past the end of the file ({total} bytes; truncated?)')
    with open(path, 'rb') as f:
      f.seek(base + offset)
      out = f.read(size)
    if len(out) != size:
      raise CheckpointError(f'{self.prefix}{suffix}: truncated')
    return out


def _state_file_prefix(directory: str) -> str | None:
  """The prefix named by a directory's `checkpoint` state file, or None without one."""
  state = os.path.join(directory, 'checkpoint')
  if not os.path.isfile(state):
    return None
  with open(state) as f:
    text = f.read()
  m = re.search(r'^model_checkpoint_path:\s*"((?:[^"\\]|\\.)*)"', text, re.M)
  if not m:
    raise CheckpointError(f'{state}: no model_checkpoint_path line')
  path = m.group(1)
  if os.path.isabs(path) and not os.path.exists(path + '.index'):
    path = os.path.basename(path)  # written on another machine: look next to the state file
  return os.path.join(directory, path) if not os.path.isabs(path) else path


def _prefix_in(directory: str, names: list[str], where: str) -> str:
  """The one `<prefix>.index` among `names` (relative to `directory`)."""
  found = sorted(n[:-len('.index')] for n in names if n.endswith('.index'))
  if len(found) != 1:
    raise CheckpointError(f'{where}: expected one checkpoint (a .index file) or a checkpoint '
                          f'state file, found {len(found)}'
                          + (f': {", ".join(found)}' if found else ''))
  return os.path.join(directory, found[0]) if directory else found[0]


def _tar_files(path: str, extract_dir: str | None) -> _Files:
  try:
    return _tar_files_unchecked(path, extract_dir)
  except CheckpointError:
    raise
  except (tarfile.TarError, EOFError, OSError, zlib.error) as e:
    # A download cut short: the archive's members or its compressed stream end early.
    raise CheckpointError(f'{path}: the archive is truncated or damaged ({type(e).__name__}: '
                          f'{e}); download it again') from e


def _tar_files_unchecked(path: str, extract_dir: str | None) -> _Files:
  tf = tarfile.open(path)
  with tf:
    members = {m.name.lstrip('./'): m for m in tf.getmembers() if m.isfile()}
    prefix = None
    for name, m in members.items():
      if os.path.basename(name) == 'checkpoint':
        text = tf.extractfile(m).read().decode('utf-8', 'replace')
        hit = re.search(r'^model_checkpoint_path:\s*"([^"]*)"', text, re.M)
        if hit:
          prefix = os.path.join(os.path.dirname(name), os.path.basename(hit.group(1)))
    if prefix is None or prefix + '.index' not in members:
      prefix = _prefix_in('', list(members), path)
    if _is_plain_tar(path):  # read the tensors in place
      return _Files(prefix, path, members)
    if extract_dir is None:
      raise CheckpointError(f'{path}: a compressed archive needs a folder to extract into')
    wanted = [m for n, m in members.items() if n.startswith(prefix)]
    tf.extractall(extract_dir, members=wanted, filter='data')
    return _Files(os.path.join(extract_dir, prefix))


def _looks_like_tar(path: str) -> bool:
  """A tar archive, or one cut short (a gzip stream or tar header that ends early): the latter
  is then reported as a damaged archive, not as 'not a checkpoint'."""
  try:
    return tarfile.is_tarfile(path)
  except (tarfile.TarError, EOFError, OSError, zlib.error):
    return True


def _is_plain_tar(path: str) -> bool:
  try:
    with tarfile.open(path, 'r:'):
      return True
  except tarfile.TarError:
    return False


@contextlib.contextmanager
def _open_files(path: str) -> Iterator[_Files]:
  path = os.fspath(path)
  if os.path.isdir(path):
    prefix = _state_file_prefix(path) or _prefix_in(path, os.listdir(path), path)
    yield _Files(prefix)
  elif os.path.isfile(path) and _looks_like_tar(path):
    with tempfile.TemporaryDirectory(prefix='mvae_ckpt_') as tmp:
      yield _tar_files(path, tmp)
  elif os.path.exists(path + '.index'):
    yield _Files(path)
  elif path.endswith('.index') and os.path.exists(path):
    yield _Files(path[:-len('.index')])
  elif os.path.exists(path):
    raise CheckpointError(f'{path}: not a TensorFlow checkpoint (expected a prefix with a .index '
                          'file, a directory with a checkpoint state file, or a .tar / .tar.gz '
                          'archive)')
  else:
    raise CheckpointError(f'{path}: no such checkpoint (expected a prefix with a .index file, '
                          'a directory with a checkpoint state file, or a .tar archive)')


def resolve(path: str) -> str:
  """The checkpoint prefix a path names (for a .tar: `<archive>:<prefix in it>`)."""
  with _open_files(path) as files:
    return f'{files.tar}:{files.prefix}' if files.tar else files.prefix


def read_checkpoint(path: str, *, verify: bool = True,
                    skip_optimizer: bool = False) -> dict[str, np.ndarray]:
  """Every tensor of a TensorFlow V2 checkpoint, by variable name.

  Args:
    path: a prefix, a directory or a .tar archive (see the module docstring).
    verify: check each tensor's crc32c against the index.
    skip_optimizer: leave out Adam slots and `beta{1,2}_power` (`is_optimizer_variable`).
  Returns:
    {name: numpy array} with the stored dtype and shape.
  Raises:
    CheckpointError: missing, truncated or corrupt files, or unsupported contents.
  """
  with _open_files(path) as files:
    index_path = files.prefix + '.index'
    try:
      entries = _read_index_files(files)
    except (ValueError, struct.error, IndexError) as e:
      if isinstance(e, CheckpointError):
        raise
      raise CheckpointError(f'{index_path}: corrupt checkpoint index ({e})') from e
    header = entries.pop(b'', b'')
    num_shards, big_endian = 1, False
    for field, _, value in _fields(header):
      if field == 1:
        num_shards = value
      elif field == 2:
        big_endian = value == 1
    if big_endian:
      raise CheckpointError(f'{index_path}: big-endian checkpoints are not supported')
    out = {}
    for key, raw in sorted(entries.items()):
      name = key.decode('utf-8')
      if skip_optimizer and is_optimizer_variable(name):
        continue
      try:
        e = _Entry(raw)
      except (ValueError, struct.error, IndexError) as err:
        raise CheckpointError(f'{index_path}: corrupt entry for {name} ({err})') from err
      if e.sliced:
        raise CheckpointError(f'{index_path}: {name} is a partitioned variable (not supported)')
      if e.dtype not in _DTYPES:
        raise CheckpointError(f'{index_path}: {name} has TensorFlow dtype {e.dtype}, which this '
                              'reader does not support')
      dtype = np.dtype(_DTYPES[e.dtype]).newbyteorder('<')
      if e.size != dtype.itemsize * int(np.prod(e.shape, dtype=np.int64)):
        raise CheckpointError(f'{index_path}: {name} has {e.size} bytes for shape {e.shape} '
                              f'{dtype.name}')
      suffix = f'.data-{e.shard:05d}-of-{num_shards:05d}'
      raw_bytes = files.read(suffix, e.offset, e.size)
      if verify and e.crc is not None and crc32c(raw_bytes) != unmask_crc(e.crc):
        raise CheckpointError(f'{files.prefix}{suffix}: checksum mismatch for {name} (the file '
                              'is corrupt)')
      out[name] = np.frombuffer(raw_bytes, dtype).reshape(e.shape).astype(dtype.newbyteorder('='))
    return out


def _read_index_files(files: _Files) -> dict[bytes, bytes]:
  path, base, size = files.locate('.index')
  if base == 0 and files.tar is None:
    return _read_index(path)
  with tempfile.NamedTemporaryFile(suffix='.index') as tmp:
    tmp.write(files.read('.index'))
    tmp.flush()
    try:
      return _read_index(tmp.name)
    except CheckpointError as e:
      raise CheckpointError(str(e).replace(tmp.name, f'{files.tar}:{files.prefix}.index')) from e
