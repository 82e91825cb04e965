"""Embeddings larger than memory: a matrix stored as .npy shards listed in a manifest.

A folder holds `manifest.json` and the shards:

    {"format": "spec-explorer-shards/1", "dim": 512, "dtype": "float32", "rows": 3000000,
     "shards": [{"file": "part-00000.npy", "rows": 1000000}, ...]}

`open_shards(folder)` gives a ShardedMatrix: read-only, (n, d), each shard memory-mapped, rows
read on demand by slices or index arrays. The engine reads every input by row blocks (see
engine.rows), so `compare(open_shards(a), open_shards(b))` and `python -m spec_core compare
A_FOLDER B_FOLDER` work on shards as on one array, in memory bounded by one block. A backend can
hand each shard (a file and a row range) to another process or machine.
"""

from __future__ import annotations

import json
import re
import reprlib
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from spec_core.data.cache import atomic_write

FORMAT = "spec-explorer-shards/1"
MANIFEST = "manifest.json"
#: The name of a shard file that ShardWriter writes (part-00000.npy, ...).
PART_NAME = re.compile(r"part-\d{5,}\.npy")
DTYPES = ("float32", "float64")
DEFAULT_SHARD_ROWS = 1_000_000
#: A manifest may list at most this many shards and be at most this many bytes.
MAX_SHARDS = 100_000
MAX_MANIFEST_BYTES = 64 * 2**20


class ShardedMatrix:
    """A read-only (n, d) float matrix made of memory-mapped .npy shards (see the module)."""

    ndim = 2

    def __init__(self, folder: Path, files: list[Path], rows: list[int], dim: int, dtype):
        self.folder = folder
        self.files = files
        self.rows = rows
        self.dim = dim
        self.dtype = np.dtype(dtype)
        self.offsets = np.concatenate([[0], np.cumsum(rows)]).astype(np.int64)
        self._maps: list[np.ndarray | None] = [None] * len(files)

    @property
    def shape(self) -> tuple[int, int]:
        return int(self.offsets[-1]), self.dim

    def __len__(self) -> int:
        return self.shape[0]

    def shard(self, i: int) -> np.ndarray:
        """Shard i as a read-only memory map (opened once, on first use)."""
        if self._maps[i] is None:
            data = np.load(self.files[i], mmap_mode="r", allow_pickle=False)
            if data.shape != (self.rows[i], self.dim) or data.dtype != self.dtype:
                raise ValueError(
                    f"{self.files[i]}: shape {data.shape} {data.dtype}, but the manifest says "
                    f"({self.rows[i]}, {self.dim}) {self.dtype}"
                )
            self._maps[i] = data
        return self._maps[i]

    def ranges(self) -> list[tuple[int, int, int]]:
        """(shard, first row, end row) of every shard, in global row numbers."""
        return [(i, int(self.offsets[i]), int(self.offsets[i + 1])) for i in range(len(self.rows))]

    def __getitem__(self, key):
        n = self.shape[0]
        if isinstance(key, tuple):
            rows, cols = key[0], key[1:]
            return self[rows][(slice(None), *cols)] if cols else self[rows]
        if isinstance(key, int | np.integer):
            index = int(key) + (n if key < 0 else 0)
            if not 0 <= index < n:
                raise IndexError(f"row {key} is out of range for {n} rows")
            return self[index : index + 1][0]
        if isinstance(key, slice):
            start, stop, step = key.indices(n)
            if step != 1:
                return self[np.arange(start, stop, step)]
            parts = []
            for i, first, end in self.ranges():
                lo, hi = max(start, first), min(stop, end)
                if lo < hi:
                    parts.append(self.shard(i)[lo - first : hi - first])
            if not parts:
                return np.empty((0, self.dim), dtype=self.dtype)
            return parts[0] if len(parts) == 1 else np.concatenate(parts)
        index = np.asarray(key)
        if index.dtype == bool:
            index = np.flatnonzero(index)
        index = index.astype(np.int64)
        index = np.where(index < 0, index + n, index)
        if index.size and (index.min() < 0 or index.max() >= n):
            raise IndexError(f"row indices out of range for {n} rows")
        out = np.empty((index.size, self.dim), dtype=self.dtype)
        shard_of = np.searchsorted(self.offsets, index, side="right") - 1
        for i in np.unique(shard_of):
            at = shard_of == i
            out[at] = self.shard(int(i))[index[at] - self.offsets[i]]
        return out

    def __getstate__(self) -> dict:  # pickled as its file names: each process maps its own
        return {**self.__dict__, "_maps": [None] * len(self.files)}

    def __array__(self, dtype=None, copy=None):
        raise TypeError(
            "a ShardedMatrix is not turned into one array (it may not fit in memory); read it by "
            "row blocks (matrix[start:stop])"
        )

    def __repr__(self) -> str:
        return f"ShardedMatrix({self.folder}, shape={self.shape}, dtype={self.dtype})"


def is_shard_folder(path: str | Path) -> bool:
    path = Path(path)
    return (path.is_dir() and (path / MANIFEST).is_file()) or path.name == MANIFEST


def open_shards(path: str | Path) -> ShardedMatrix:
    """The ShardedMatrix of a shard folder (or its manifest.json). Every shard must lie in the
    folder itself; shapes and dtypes are checked against the manifest (headers only)."""

    path = Path(path)
    folder = path.parent if path.name == MANIFEST else path
    manifest = folder / MANIFEST
    try:
        if manifest.stat().st_size > MAX_MANIFEST_BYTES:
            raise ValueError(f"larger than {MAX_MANIFEST_BYTES // 2**20} MB")
        spec = json.loads(manifest.read_text())
    except (OSError, ValueError) as err:
        raise ValueError(f"{manifest}: not a readable shard manifest ({err})") from None
    except RecursionError:  # e.g. 100,000 nested brackets: a manifest is 3 levels deep
        raise ValueError(
            f"{manifest}: not a readable shard manifest (its JSON is nested too deeply)"
        ) from None
    if not isinstance(spec, dict) or spec.get("format") != FORMAT:
        raise ValueError(f"{manifest}: not a shard manifest (format {FORMAT!r} expected)")
    dim, dtype, shards = spec.get("dim"), spec.get("dtype"), spec.get("shards")
    if not isinstance(dim, int) or dim < 1 or dtype not in DTYPES or not isinstance(shards, list):
        raise ValueError(f"{manifest}: needs an integer dim, a dtype in {DTYPES} and shards")
    if not shards:
        raise ValueError(f"{manifest}: lists no shards")
    if len(shards) > MAX_SHARDS:
        raise ValueError(f"{manifest}: lists {len(shards):,} shards, more than {MAX_SHARDS:,}")
    files, rows = [], []
    root = folder.resolve()
    for k, entry in enumerate(shards):
        name = entry.get("file") if isinstance(entry, dict) else None
        count = entry.get("rows") if isinstance(entry, dict) else None
        if not isinstance(name, str) or type(count) is not int or count < 1:
            raise ValueError(f"{manifest}: shard {k} needs a file name and a positive row count")
        file = (folder / name).resolve()
        if file.parent != root or file.suffix != ".npy":
            raise ValueError(f"{manifest}: shard {k} ({name!r}) is not a .npy file in {folder}")
        if not file.is_file():
            raise ValueError(f"{manifest}: shard {k} ({name}) is missing")
        if file in files:
            raise ValueError(f"{manifest}: shard {k} ({name}) is listed twice")
        with file.open("rb") as handle:
            shape, found = npy_header(handle, f"shard {name} ")
            data_bytes = file.stat().st_size - handle.tell()
        if shape != (count, dim) or np.dtype(found) != np.dtype(dtype):
            raise ValueError(
                f"{manifest}: shard {name} holds {shape} {found}, the manifest says "
                f"({count}, {dim}) {dtype}"
            )
        if data_bytes < count * dim * np.dtype(dtype).itemsize:
            raise ValueError(f"{manifest}: shard {name} is truncated (fewer bytes than its rows)")
        files.append(file)
        rows.append(count)
    total = spec.get("rows")
    if total is not None and (type(total) is not int or total != sum(rows)):
        shown = reprlib.repr(spec["rows"])  # short, whatever the manifest holds there
        raise ValueError(f"{manifest}: rows {shown} but the shards hold {sum(rows)}")
    return ShardedMatrix(folder, files, rows, dim, dtype)


class ShardWriter:
    """Writes rows as they come (`add(block)`) into shards of at most `shard_rows` rows in
    `folder` (created; it must not hold a manifest yet), each to a temporary name then renamed;
    `close()` writes the manifest last, so a reader never sees a half-written set, and returns
    the ShardedMatrix. Memory: at most one shard's rows."""

    def __init__(self, folder, *, shard_rows: int = DEFAULT_SHARD_ROWS, dtype: str = "float32"):
        if dtype not in DTYPES:
            raise ValueError(f"dtype must be one of {DTYPES}, got {dtype!r}")
        if isinstance(shard_rows, bool) or not isinstance(shard_rows, int) or shard_rows < 1:
            raise ValueError(f"shard_rows must be a positive integer, got {shard_rows!r}")
        self.folder, self.shard_rows, self.dtype = Path(folder), shard_rows, dtype
        if (self.folder / MANIFEST).exists():
            raise ValueError(f"{self.folder} already holds shards ({MANIFEST}); choose another")
        self.folder.mkdir(parents=True, exist_ok=True)
        self.entries: list[dict] = []
        self.pending: list[np.ndarray] = []
        self.held = 0
        self.width: int | None = None

    def add(self, block) -> None:
        block = np.asarray(block)
        if block.ndim != 2 or (self.width is not None and block.shape[1] != self.width):
            raise ValueError(f"every block must be 2-D with the same width, got {block.shape}")
        self.width = block.shape[1]
        while block.shape[0]:
            take = min(self.shard_rows - self.held, block.shape[0])
            self.pending.append(np.array(block[:take], dtype=self.dtype))
            self.held += take
            block = block[take:]
            if self.held == self.shard_rows:
                self._flush()

    def _flush(self) -> None:
        name = f"part-{len(self.entries):05d}.npy"
        parts = self.pending
        data = np.concatenate(parts) if len(parts) > 1 else parts[0]
        block = np.ascontiguousarray(data)
        atomic_write(
            self.folder / name, lambda h: np.save(h, block, allow_pickle=False), mode=0o644
        )
        self.entries.append({"file": name, "rows": int(data.shape[0])})
        self.pending, self.held = [], 0

    def close(self) -> ShardedMatrix:
        if self.pending:
            self._flush()
        if self.width is None:
            raise ValueError("no rows to write")
        manifest = {
            "format": FORMAT,
            "dim": int(self.width),
            "dtype": self.dtype,
            "rows": sum(e["rows"] for e in self.entries),
            "shards": self.entries,
        }
        atomic_write(self.folder / MANIFEST, json.dumps(manifest, indent=1).encode(), mode=0o644)
        return open_shards(self.folder)


def remove_other_parts(folder: str | Path, written: Iterable[str]) -> list[str]:
    """Remove the shard files of `folder` (named part-NNNNN.npy, as ShardWriter names them)
    that are not in `written`: an earlier, longer set's, which a reader globbing part-*.npy
    would mix in. Other files, and folders of any name, stay. Returns the names removed."""
    keep = set(written)
    removed = []
    for path in sorted(Path(folder).iterdir()):
        if PART_NAME.fullmatch(path.name) and path.name not in keep and not _a_folder(path):
            path.unlink(missing_ok=True)
            removed.append(path.name)
    return removed


def _a_folder(path: Path) -> bool:
    return path.is_dir() and not path.is_symlink()


def write_shards(
    blocks: np.ndarray | Iterable[np.ndarray],
    folder: str | Path,
    *,
    shard_rows: int = DEFAULT_SHARD_ROWS,
    dtype: str = "float32",
) -> ShardedMatrix:
    """Write a matrix (an array, or an iterable of row blocks of one width) as shards (see
    ShardWriter)."""
    writer = ShardWriter(folder, shard_rows=shard_rows, dtype=dtype)
    if isinstance(blocks, np.ndarray):
        matrix = blocks
        blocks = (matrix[s : s + shard_rows] for s in range(0, matrix.shape[0], shard_rows))
    for block in blocks:
        writer.add(block)
    return writer.close()


def npy_header(handle, label: str = "") -> tuple[tuple[int, ...], np.dtype]:
    """Read and check an .npy header (magic, shape, dtype) without reading the data: a shape
    of non-negative integers, no Python objects. Any malformed header is a ValueError."""
    fmt = np.lib.format
    try:
        version = fmt.read_magic(handle)
        if version == (1, 0):
            shape, _, dtype = fmt.read_array_header_1_0(handle, max_header_size=10_000)
        elif version == (2, 0):
            shape, _, dtype = fmt.read_array_header_2_0(handle, max_header_size=10_000)
        else:
            shape, _, dtype = fmt._read_array_header(handle, version, max_header_size=10_000)
    except Exception as err:  # numpy raises many kinds for a bad header; all mean the same
        raise ValueError(f"not a valid .npy {label}({' '.join(str(err).split())})") from None
    if dtype.hasobject:
        raise ValueError(
            "holds Python objects (a pickle), which are never loaded; save a numeric array"
        )
    if not isinstance(shape, tuple) or not all(
        isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape
    ):
        raise ValueError(f"not a valid .npy {label}(its header declares shape {shape!r})")
    return shape, dtype
