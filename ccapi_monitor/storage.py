"""Object stores for reports and checkpoints: one interface, a local folder or S3.

Keys are '/'-separated paths relative to the store's root URI. Writes are
all-or-nothing: a reader never sees half an object. :func:`ccapi_monitor.store_factory.open_store`
picks the implementation for a URI, so this module never imports the S3 one (which imports it).
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import threading
from abc import ABC, abstractmethod
from pathlib import Path

_SWAP_LOCK = threading.Lock()


class Store(ABC):
    """A flat key/value view of a folder or an ``s3://bucket/prefix``."""

    uri: str

    @abstractmethod
    def read_bytes(self, key: str) -> bytes | None:
        """The object's bytes, or ``None`` when it does not exist."""

    @abstractmethod
    def write_bytes(self, key: str, data: bytes, content_type: str = "application/octet-stream") -> str:
        """Write atomically and return the object's URI."""

    @abstractmethod
    def delete(self, key: str) -> None:
        """Remove the object if it exists."""

    @abstractmethod
    def list_keys(self, prefix: str = "") -> list[str]:
        """Keys under ``prefix``, sorted."""

    def url_for(self, key: str) -> str:
        return f"{self.uri.rstrip('/')}/{key}"

    def exists(self, key: str) -> bool:
        return self.read_bytes(key) is not None

    def read_versioned(self, key: str) -> tuple[bytes | None, str | None]:
        """The object and a version token for :meth:`write_if` (``None, None`` when absent)."""
        data = self.read_bytes(key)
        return data, (None if data is None else hashlib.sha256(data).hexdigest())

    def write_if(self, key: str, data: bytes, content_type: str, *, expected: str | None) -> bool:
        """Write only if the object is still at version ``expected`` (``None``: still absent).

        False when another writer got there first: re-read and decide again. This default
        compares and swaps under a process lock, enough for a local folder; S3Store uses S3's
        conditional writes (If-Match / If-None-Match), which hold across machines.
        """
        with _SWAP_LOCK:
            if self.read_versioned(key)[1] != expected:
                return False
            self.write_bytes(key, data, content_type)
            return True


class LocalStore(Store):
    """A local folder; writes go to a temporary file in the same folder, then rename."""

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root).expanduser().resolve()
        self.uri = str(self.root)

    def _path(self, key: str) -> Path:
        path = (self.root / key).resolve()
        if self.root not in path.parents and path != self.root:
            raise ValueError(f"key escapes the store root: {key!r}")
        return path

    def read_bytes(self, key: str) -> bytes | None:
        try:
            return self._path(key).read_bytes()
        except FileNotFoundError:
            return None

    def write_bytes(self, key: str, data: bytes, content_type: str = "application/octet-stream") -> str:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return str(path)

    def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)

    def list_keys(self, prefix: str = "") -> list[str]:
        if not self.root.exists():
            return []
        keys = (
            p.relative_to(self.root).as_posix()
            for p in self.root.rglob("*")
            if p.is_file() and not p.name.endswith(".part")
        )
        return sorted(k for k in keys if k.startswith(prefix))

    def url_for(self, key: str) -> str:
        return str(self._path(key))
