from __future__ import annotations

import os
from pathlib import Path

import pytest

from ccapi_monitor.storage import LocalStore
from ccapi_monitor.store_factory import open_store


def test_round_trip_and_listing(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "out")
    assert store.read_bytes("a/b.json") is None
    uri = store.write_bytes("a/b.json", b"{}", "application/json")
    assert Path(uri) == tmp_path / "out" / "a" / "b.json"
    store.write_bytes("a/c.txt", b"x")
    assert store.read_bytes("a/b.json") == b"{}"
    assert store.list_keys("a/") == ["a/b.json", "a/c.txt"]
    store.delete("a/c.txt")
    store.delete("a/c.txt")
    assert store.list_keys() == ["a/b.json"]


def test_write_is_atomic_and_leaves_no_partial_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = LocalStore(tmp_path)
    store.write_bytes("k.json", b"old")

    def broken_fsync(fd: int) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "fsync", broken_fsync)
    with pytest.raises(OSError, match="disk full"):
        store.write_bytes("k.json", b"new")
    assert store.read_bytes("k.json") == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["k.json"]


def test_keys_cannot_escape_the_root(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="escapes"):
        LocalStore(tmp_path / "root").write_bytes("../evil", b"x")


def test_open_store_picks_local_for_paths(tmp_path: Path) -> None:
    assert isinstance(open_store(str(tmp_path)), LocalStore)
    assert not (tmp_path / "never").exists()
    open_store(str(tmp_path / "never"))
    assert not (tmp_path / "never").exists()  # opening writes nothing
