"""The storage idiom: SQLite in WAL mode with explicit transactions, atomic file writes."""

import os
import stat

import pytest

from intelmq_nsm import storage


def test_connect_opens_wal_with_the_synchronous_level(tmp_path):
    db = storage.connect(tmp_path / "sub" / "x.sqlite", synchronous="full", autocheckpoint=5000)
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert db.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    assert db.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == 5000
    assert db.isolation_level is None


def test_connect_refuses_an_unknown_synchronous_level(tmp_path):
    with pytest.raises(ValueError, match="synchronous must be one of"):
        storage.connect(tmp_path / "x.sqlite", synchronous="sometimes")


def test_transaction_commits_or_rolls_back(tmp_path):
    db = storage.connect(tmp_path / "x.sqlite")
    db.execute("CREATE TABLE t (v INTEGER)")
    with storage.transaction(db):
        db.execute("INSERT INTO t VALUES (1)")
    with pytest.raises(RuntimeError), storage.transaction(db):
        db.execute("INSERT INTO t VALUES (2)")
        raise RuntimeError("interrupted")
    assert [row[0] for row in db.execute("SELECT v FROM t")] == [1]
    storage.checkpoint(db)
    assert not db.in_transaction


def test_a_savepoint_undoes_its_block_alone_and_the_transaction_goes_on(tmp_path):
    db = storage.connect(tmp_path / "x.sqlite")
    db.execute("CREATE TABLE t (v INTEGER)")
    with storage.transaction(db):
        db.execute("INSERT INTO t VALUES (1)")
        with pytest.raises(RuntimeError), storage.savepoint(db):
            db.execute("INSERT INTO t VALUES (2)")
            raise RuntimeError("this one is bad")
        with storage.savepoint(db):
            db.execute("INSERT INTO t VALUES (3)")
        assert db.in_transaction
    assert [row[0] for row in db.execute("SELECT v FROM t ORDER BY v")] == [1, 3]


def test_atomic_write_replaces_whole_and_keeps_the_mode(tmp_path):
    target = tmp_path / "tokens.json"
    storage.atomic_write(target, "first\n", mode=0o600)
    assert target.read_text() == "first\n"
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    storage.atomic_write(target, b"second\n")
    assert target.read_bytes() == b"second\n"
    assert stat.S_IMODE(target.stat().st_mode) == 0o600  # kept from the file it replaced
    assert os.listdir(tmp_path) == ["tokens.json"]  # no temporary file left


def test_atomic_write_leaves_the_old_file_when_writing_fails(tmp_path):
    target = tmp_path / "registry.yaml"
    target.write_text("old")

    class Unwritable:  # not bytes: the write fails after the temporary file exists
        pass

    with pytest.raises(TypeError):
        storage.atomic_write(target, Unwritable())
    assert target.read_text() == "old"
    assert os.listdir(tmp_path) == ["registry.yaml"]
