"""A 01 only for a row in the file the configuration names (issue 15, items 8
and 9c).

A database file replaced under a running server (cp k2.db.bak k2.db.new &&
mv k2.db.new k2.db), or its WAL removed (rm k2.db-wal): the open
connections would go on committing into the deleted inodes.  The module
notices (SQLite's SQLITE_FCNTL_HAS_MOVED for the database file, the WAL's
inode against the one its connection opened), answers 500, says so, and
opens the connection again on the configured file: the next notification
is 01 and its row is in that file.  And a connection left inside its
transaction (COMMIT and the ROLLBACK after it both failed) is dropped
instead of failing every later BEGIN.

One child, one pooled connection (ONE_CONNECTION): each notification meets
the connection the fault concerns.
"""
import os
import signal
import sqlite3
import time

import pytest

from conftest import CONTRACT_LOCATION, ONE_CONNECTION, fault_library, notification
from test_faults import children, parent_pid
from test_group_commit import (ACCEPTED, CHECKED, DEFERRED_SQL, INTERNAL_ERROR,
                               post)
from test_locks import ids, restart


REPLACED = (r"\[k2notify:error\] .* outcome=error: the database file \S+/k2\.db is "
            r"not the one this connection opened: it was replaced \(a mv or cp "
            r"onto it\) or removed while the server ran; nothing was written$")
WAL_REMOVED = (r"\[k2notify:error\] .* outcome=error: the WAL file \S+/k2\.db-wal "
               r"was removed while the server ran \(this connection's commits "
               r"went to the removed file\); nothing was written$")
REOPENED = (r"\[k2notify:warn\] .*: the database connection is closed and open "
            r"again on \S+/k2\.db \(restore a database with sqlite3's \.restore")


def deleted_files(pid):
    """The files the process holds open that were removed (or replaced)."""
    out = []
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if target.endswith(" (deleted)"):
            out.append(target)
    return out


def one_child(s):
    kids = children(parent_pid(s))
    assert len(kids) == 1, kids
    return kids[0]


def test_database_file_replaced_under_a_running_server_is_500_then_01_in_the_new_file(make_httpd):
    s = make_httpd("replaced", ONE_CONNECTION + CONTRACT_LOCATION)
    s.expect_error(REPLACED)
    s.start()
    before = notification()
    assert post(s, before) == (200, ACCEPTED)
    # the sysadmin's restore by replacement: a copy, renamed over the file
    copy = s.db + ".new"
    src, dst = sqlite3.connect(s.db), sqlite3.connect(copy)
    src.backup(dst)
    src.close(), dst.close()
    st = os.stat(s.db)
    os.chown(copy, st.st_uid, st.st_gid)
    os.rename(copy, s.db)
    off = s.log_offset()

    lost = notification()
    assert post(s, lost) == (500, INTERNAL_ERROR)
    assert s.wait_log(REPLACED, off)
    assert s.wait_log(REOPENED, off)
    after = notification()
    assert post(s, after) == (200, ACCEPTED)
    assert ids(s.db) == {before["k2_transaction_id"], after["k2_transaction_id"]}
    # K2 resends the one refused: recorded in the configured file
    assert post(s, lost) == (200, ACCEPTED)
    assert lost["k2_transaction_id"] in ids(s.db)
    # the connection on the old inode was closed, not kept in the pool
    assert not [f for f in deleted_files(one_child(s)) if "k2.db" in f]


@pytest.mark.parametrize("graceful", [False, True], ids=["started", "after-graceful"])
def test_wal_removed_under_a_running_server_loses_no_01_even_after_a_crash(make_httpd, graceful):
    s = make_httpd("wal-removed", ONE_CONNECTION + CONTRACT_LOCATION)
    s.expect_error(WAL_REMOVED)
    s.start()
    acknowledged = [notification() for _ in range(3)]
    for n in acknowledged:
        assert post(s, n) == (200, ACCEPTED)
    if graceful:                        # the module's hooks of a new generation
        restart(s, "graceful")
        n = notification()
        assert post(s, n) == (200, ACCEPTED)
        acknowledged.append(n)
    os.unlink(s.db + "-wal")
    off = s.log_offset()

    refused = notification()
    assert post(s, refused) == (500, INTERNAL_ERROR)
    assert s.wait_log(WAL_REMOVED, off)
    assert s.wait_log(REOPENED, off)
    later = [notification() for _ in range(3)]
    for n in later:
        assert post(s, n) == (200, ACCEPTED)
    child = one_child(s)
    assert not [f for f in deleted_files(child) if "k2.db" in f]
    # a crash before any checkpoint: every 01 is in the file
    os.kill(child, signal.SIGKILL)
    deadline = time.time() + 10
    while time.time() < deadline and child in children(parent_pid(s)):
        time.sleep(0.05)
    assert ids(s.db) == {n["k2_transaction_id"] for n in acknowledged + later}


def test_notifications_answer_01_with_the_wal_and_database_left_alone(make_httpd):
    """The check itself refuses nothing: a graceful restart and many
    transactions later, no 500 (WAL files deleted by SQLite itself when the
    last connection closes are not a removal)."""
    s = make_httpd("not-moved", ONE_CONNECTION + CONTRACT_LOCATION).start()
    notes = [notification() for _ in range(20)]
    for i, n in enumerate(notes):
        assert post(s, n) == (200, ACCEPTED)
        if i == 9:
            restart(s, "graceful")
    assert ids(s.db) == {n["k2_transaction_id"] for n in notes}
    assert "is not the one this connection" not in s.errors_text()
    assert "was removed while the server ran" not in s.errors_text()


# -- 9c: a connection left inside its transaction --------------------------------

@pytest.fixture
def fail_rollback(tmp_path):
    return fault_library(tmp_path, "fail_rollback")


def test_connection_whose_commit_and_rollback_both_failed_is_dropped(make_httpd, fail_rollback):
    """A deferred foreign key fails the COMMIT; the ROLLBACK after it fails
    too (fault library): the pooled connection is still inside that
    transaction, and every later BEGIN IMMEDIATE on it would fail.  It is
    closed and opened again: the next notification is 01."""
    s = make_httpd("rollback-fails", ONE_CONNECTION + CHECKED, extra_sql=DEFERRED_SQL,
                   dbd_extra='DBDInitSQL "PRAGMA foreign_keys = ON"\n',
                   env={"LD_PRELOAD": fail_rollback})
    flag = os.path.join(s.dir, "fail-rollback")
    s.extra_env["K2N_TEST_FAIL_ROLLBACK"] = flag
    s.expect_error(r"\[k2notify:error\] .*outcome=error: COMMIT failed \(\d+\): "
                   r"FOREIGN KEY constraint failed$")
    s.start()
    assert post(s, notification(), "/k2/checked") == (200, ACCEPTED)
    open(flag, "w").close()
    off = s.log_offset()
    assert post(s, notification(currency="USD"), "/k2/checked") == (500, INTERNAL_ERROR)
    os.unlink(flag)
    good = [notification() for _ in range(3)]
    assert [post(s, n, "/k2/checked") for n in good] == [(200, ACCEPTED)] * 3
    assert s.query("SELECT count(*) FROM k2_checked") == [(4,)]
    assert s.wait_log(r"\[k2notify:warn\] .* COMMIT failed \(\d+\): FOREIGN KEY "
                      r"constraint failed; the connection is still inside its "
                      r"transaction \(ROLLBACK failed \(10\): .*\): closed and open "
                      r"again$", off)
