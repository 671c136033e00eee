"""Group commit on SQLite (issue 10): notifications that reach the record
step while a transaction runs share the next one, and each keeps its own
outcome.

To make a batch on purpose, a test holds SQLite's write lock from outside
Apache (BEGIN IMMEDIATE in Python's sqlite3) while it posts: the first
notification's leader waits in BEGIN IMMEDIATE, every other one queues behind
it; once the test releases the lock, the leader runs them all in one
transaction.  The module's debug line says how many each transaction held.
"""
import collections
import fcntl
import os
import re
import signal
import sqlite3
import struct
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from conftest import (ACCOUNT, AUTH, CONTRACT_LOCATION, PASSWORD, STOCK_LAYOUTS,
                      USER, form, notification, run_user, wait_access)
from test_faults import children, parent_pid

ACCEPTED = '{"status":"01","description":"Accepted"}'
INVALID_PAYMENT = '{"status":"03","description":"Invalid Payment"}'
INTERNAL_ERROR = '{"description":"Internal Server Error"}'

# One event child: every notification meets the same queue.  A thread holds
# its pooled connection while it waits in the queue: DBDMax bounds a batch.
ONE_CHILD = """
StartServers 1
ServerLimit 1
ThreadsPerChild 48
MaxRequestWorkers 48
MinSpareThreads 1
MaxSpareThreads 48
DBDKeep 48
DBDMax 48
"""
DEBUG = "warn k2notify:debug"
TRANSACTION = re.compile(r"\[k2notify:debug\] .* transaction of (\d+) "
                         r"notifications? (committed|failed)")
DUPLICATE_SQL = ('    K2NotifyDuplicateQuery "SELECT ac_no, amount FROM '
                 'k2_transactions WHERE k2_transaction_id = %s"\n')


LEADS = re.compile(r"\[k2notify:debug\] .* a transaction begins: this "
                   r"notification leads it")
QUEUED = re.compile(r"\[k2notify:debug\] .* queued for the next transaction "
                    r"\(\d+ waiting\)")


def wait_queued(server, offset, n, timeout=10):
    """Wait until n notifications are queued behind the transaction that
    runs (the module's debug line, logged once each is in the queue)."""
    deadline = time.time() + timeout
    while len(QUEUED.findall(server.errors_text()[offset:])) < n:
        assert time.time() < deadline, (
            f"{len(QUEUED.findall(server.errors_text()[offset:]))} of {n} "
            "notifications queued")
        time.sleep(0.01)


def transactions(server, offset=0):
    """(size, committed|failed) of every transaction since offset."""
    return [(int(m.group(1)), m.group(2))
            for m in TRANSACTION.finditer(server.errors_text()[offset:])]


def post(server, fields, path="/k2/notify"):
    try:
        r = requests.post(server.base + path, data=form(fields),
                          auth=(USER, PASSWORD), timeout=30,
                          headers={"Content-Type": "application/x-www-form-urlencoded",
                                   "Connection": "close"})
        return r.status_code, r.text
    except requests.ConnectionError as e:
        return "no reply", type(e).__name__


def sqlite_shell(db):
    """The sqlite3 shell on db, run as the httpd user as the biller's own
    program would be (as root it could create the -wal and -shm files
    root's, which httpd's children could then only open read-only)."""
    user = run_user()
    cmd = ["sqlite3", db]
    if user:
        cmd = ["runuser", "-u", user.pw_name, "--"] + cmd
    return subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            text=True)


class WriteLock:
    """SQLite's write lock, held from outside Apache by the sqlite3 shell."""

    def __init__(self, db):
        self.p = sqlite_shell(db)
        self.p.stdin.write("BEGIN IMMEDIATE;\n.print locked\n")
        self.p.stdin.flush()
        assert self.p.stdout.readline().strip() == "locked"

    def release(self):
        self.p.communicate("ROLLBACK;\n.quit\n", timeout=10)
        assert self.p.returncode == 0


def batch(server, notes, path="/k2/notify", before_release=None, dbs=None,
          grouped=True, lead=False):
    """Post notes at once while the database's write lock is held outside,
    then release it once every one but the leader (one per database) is
    queued behind it: they share one transaction.  grouped=False: no queue
    (K2NotifyGroupCommit Off), each waits for the lock in turn.  Returns the
    replies, in order, and the transactions logged meanwhile.  lead=True:
    notes[0] is posted first, and the others once it leads the transaction
    (one database): the leader is known, the others' order is not."""
    off = server.log_offset()
    locks = [WriteLock(db) for db in (dbs or [server.db])]
    pool = ThreadPoolExecutor(max_workers=len(notes))
    try:
        futures = []
        if lead:
            futures.append(pool.submit(post, server, notes[0], path))
            deadline = time.time() + 10
            while not LEADS.search(server.errors_text()[off:]):
                assert time.time() < deadline, "the first notification leads nothing"
                time.sleep(0.01)
        futures += [pool.submit(post, server, n, path)
                    for n in notes[len(futures):]]
        if grouped:
            wait_queued(server, off, len(notes) - len(locks))
        else:
            time.sleep(0.6)             # what is asserted needs no order
        if before_release:
            before_release()
    finally:
        for lock in locks:
            lock.release()
    replies = [f.result() for f in futures]
    pool.shutdown()
    deadline = time.time() + 5
    while not transactions(server, off) and time.time() < deadline:
        time.sleep(0.05)
    return replies, transactions(server, off)


def one_child(make_httpd, name, body, **kw):
    return make_httpd(name, ONE_CHILD + body, loglevel=DEBUG, **kw).start()


def test_notifications_queued_meanwhile_share_one_transaction(make_httpd):
    s = one_child(make_httpd, "gc-share", CONTRACT_LOCATION)
    notes = [notification(amount=f"{i + 1}.50") for i in range(20)]
    replies, txns = batch(s, notes)
    assert replies == [(200, ACCEPTED)] * 20
    assert txns == [(20, "committed")]
    for n in notes:
        assert [(r["ac_no"], r["amount"]) for r in s.rows(n["k2_transaction_id"])] \
            == [(ACCOUNT, n["amount"])]
        assert [e[6] for e in wait_access(s, n["k2_transaction_id"])] == ["accepted"]


def test_lone_notification_commits_at_once_alone(make_httpd):
    s = one_child(make_httpd, "gc-lone", CONTRACT_LOCATION)
    for _ in range(3):
        off = s.log_offset()
        assert post(s, notification()) == (200, ACCEPTED)
        assert transactions(s, off) == [(1, "committed")]


def test_same_id_twice_in_one_transaction_is_accepted_once_then_duplicate(make_httpd):
    s = one_child(make_httpd, "gc-same", CONTRACT_LOCATION)
    twice = notification()
    notes = [notification() for _ in range(5)] + [twice, twice]
    replies, txns = batch(s, notes)
    assert replies == [(200, ACCEPTED)] * 7
    assert txns == [(7, "committed")]
    assert len(s.rows(twice["k2_transaction_id"])) == 1
    assert sorted(e[6] for e in wait_access(s, twice["k2_transaction_id"], n=2)) \
        == ["accepted", "duplicate"]


def test_same_id_with_another_amount_in_one_transaction_is_a_conflict(make_httpd):
    s = one_child(make_httpd, "gc-conflict", CONTRACT_LOCATION.replace(
        "    K2NotifyCurrencies KES\n", DUPLICATE_SQL + "    K2NotifyCurrencies KES\n"))
    s.expect_error(r"\[k2notify:error\] .*outcome=conflict: this transaction id is "
                   r"already recorded")
    first = notification(amount="100")
    other = dict(first, amount="999")
    replies, txns = batch(s, [notification(), first, other])
    assert txns == [(3, "committed")]
    assert sorted(replies) == sorted([(200, ACCEPTED), (200, ACCEPTED),
                                      (200, INVALID_PAYMENT)])
    rows = s.rows(first["k2_transaction_id"])
    assert len(rows) == 1
    outcomes = {e[3]: e[6] for e in wait_access(s, first["k2_transaction_id"], n=2)}
    assert outcomes == {rows[0]["amount"]: "accepted",
                        ({"100", "999"} - {rows[0]["amount"]}).pop(): "conflict"}


# A table whose trigger refuses some rows: RAISE(ABORT) backs out the
# statement, RAISE(FAIL) keeps what it did before the failure (a multi-row
# statement), RAISE(ROLLBACK) ends the whole transaction.
REFUSING_SQL = """
CREATE TABLE k2_guarded (k2_transaction_id TEXT PRIMARY KEY, ac_no TEXT, amount TEXT);
CREATE TABLE k2_guarded_log (k2_transaction_id TEXT);
CREATE TRIGGER k2_guard BEFORE INSERT ON k2_guarded
BEGIN
    SELECT RAISE(ABORT, 'abort: refused') WHERE NEW.amount = '13.13';
    SELECT RAISE(ROLLBACK, 'rollback: refused') WHERE NEW.amount = '66.66';
END;
CREATE TRIGGER k2_guard_log AFTER INSERT ON k2_guarded
BEGIN
    INSERT INTO k2_guarded_log VALUES (NEW.k2_transaction_id);
    SELECT RAISE(FAIL, 'fail: refused after logging') WHERE NEW.amount = '77.77';
END;
"""
GUARDED = f"""
<Location /k2/guarded>
    SetHandler k2notify
{AUTH}
    K2NotifyAccountQuery "SELECT ac_no FROM accounts WHERE ac_no = %s"
    K2NotifyRecordQuery "INSERT INTO k2_guarded (k2_transaction_id, ac_no, amount) VALUES (%s, %s, %s) ON CONFLICT (k2_transaction_id) DO NOTHING" k2_transaction_id ac_no amount
</Location>
"""


def guarded(s, table="k2_guarded"):
    return {r[0] for r in s.query(f"SELECT k2_transaction_id FROM {table}")}


@pytest.mark.parametrize("amount", ["13.13", "77.77"], ids=["abort", "fail"])
def test_failing_statement_fails_its_notification_alone(make_httpd, amount):
    s = one_child(make_httpd, "gc-alone", GUARDED, extra_sql=REFUSING_SQL)
    s.expect_error(r"\[k2notify:error\] .*outcome=error: K2NotifyRecordQuery "
                   r"failed \(\d+\): (abort: refused|fail: refused after logging)$")
    good = [notification(amount=f"{i + 1}.00") for i in range(6)]
    bad = notification(amount=amount)
    notes = good[:3] + [bad] + good[3:]
    replies, txns = batch(s, notes, path="/k2/guarded")
    assert txns == [(7, "committed")]
    assert replies == [(200, ACCEPTED)] * 3 + [(500, INTERNAL_ERROR)] + \
        [(200, ACCEPTED)] * 3
    ids = {n["k2_transaction_id"] for n in good}
    assert guarded(s) == ids
    # what the failing statement did before it failed is undone too
    assert guarded(s, "k2_guarded_log") == ids


def test_statement_that_ends_the_transaction_fails_every_notification_of_it(make_httpd):
    """RAISE(ROLLBACK) rolls back the batch-mates that ran before it too:
    none of them may get 01, nothing of them is recorded, and K2's resends
    are accepted."""
    s = one_child(make_httpd, "gc-rollback", GUARDED, extra_sql=REFUSING_SQL)
    s.expect_error(r"\[k2notify:error\] .*outcome=error: (K2NotifyRecordQuery "
                   r"failed \(\d+\): rollback: refused; then the transaction was "
                   r"gone|the transaction was rolled back by a statement of another "
                   r"notification of its batch)")
    good = [notification(amount=f"{i + 1}.00") for i in range(7)]
    poison = notification(amount="66.66")
    notes = good[:4] + [poison] + good[4:]
    # good[0] leads the transaction (the poison alone first in it would be
    # rolled back alone: k2n_sqlite_undo), the others queue behind it.
    replies, txns = batch(s, notes, path="/k2/guarded", lead=True)
    # The queue's order is the order of arrival: the transaction that failed
    # held the leader, the poison and whatever ran between them; the others
    # queued after it went to the next transaction.
    failed = [n for n, r in zip(notes, replies) if r == (500, INTERNAL_ERROR)]
    accepted = [n for n, r in zip(notes, replies) if r == (200, ACCEPTED)]
    assert len(failed) + len(accepted) == 8 and poison in failed, replies
    assert good[0] in failed, replies
    assert txns[0] == (len(failed), "failed"), txns
    assert all(t == (1, "committed") or t[1] == "committed" for t in txns[1:])
    assert guarded(s) == {n["k2_transaction_id"] for n in accepted}
    # K2 resends what was not answered 01
    for n, r in zip(notes, replies):
        if r != (200, ACCEPTED) and n["amount"] != "66.66":
            assert post(s, n, "/k2/guarded") == (200, ACCEPTED)
    assert guarded(s) == {n["k2_transaction_id"] for n in good}


DEFERRED_SQL = """
CREATE TABLE k2_currencies (code TEXT PRIMARY KEY);
INSERT INTO k2_currencies VALUES ('KES');
CREATE TABLE k2_checked (
    k2_transaction_id TEXT PRIMARY KEY,
    currency TEXT REFERENCES k2_currencies (code) DEFERRABLE INITIALLY DEFERRED);
"""
CHECKED = f"""
<Location /k2/checked>
    SetHandler k2notify
{AUTH}
    K2NotifyAccountQuery "SELECT ac_no FROM accounts WHERE ac_no = %s"
    K2NotifyRecordQuery "INSERT INTO k2_checked (k2_transaction_id, currency) VALUES (%s, %s) ON CONFLICT (k2_transaction_id) DO NOTHING" k2_transaction_id currency
    K2NotifyCurrencies KES USD
</Location>
"""


def test_failed_commit_fails_every_notification_of_its_transaction(make_httpd):
    """A deferred foreign key is checked at COMMIT: one USD payment makes
    the whole transaction fail, and none of its notifications gets 01."""
    s = one_child(make_httpd, "gc-commit", CHECKED, extra_sql=DEFERRED_SQL,
                  dbd_extra='DBDInitSQL "PRAGMA foreign_keys = ON"\n')
    s.expect_error(r"\[k2notify:error\] .*outcome=error: COMMIT failed \(\d+\): "
                   r"FOREIGN KEY constraint failed$")
    kes = [notification() for _ in range(5)]
    usd = notification(currency="USD")
    replies, txns = batch(s, kes[:2] + [usd] + kes[2:], path="/k2/checked")
    assert replies == [(500, INTERNAL_ERROR)] * 6
    assert txns == [(6, "failed")]
    assert s.query("SELECT count(*) FROM k2_checked") == [(0,)]
    for n in kes:                       # K2 resends
        assert post(s, n, "/k2/checked") == (200, ACCEPTED)
    assert s.query("SELECT count(*) FROM k2_checked") == [(5,)]


def test_child_killed_while_its_batch_waits_sends_no_01_and_resends_are_accepted(make_httpd):
    s = one_child(make_httpd, "gc-kill", CONTRACT_LOCATION)
    kids = children(parent_pid(s))
    assert len(kids) == 1
    notes = [notification() for _ in range(10)]
    replies, _ = batch(s, notes, before_release=lambda: os.kill(kids[0], signal.SIGKILL))
    assert all(r[0] == "no reply" for r in replies), replies
    assert s.count() == 0
    deadline = time.time() + 10
    while time.time() < deadline:       # the parent starts a new child
        try:
            requests.get(s.base + "/", timeout=1)
            break
        except requests.ConnectionError:
            time.sleep(0.1)
    for n in notes:
        assert post(s, n) == (200, ACCEPTED)
        assert [e[6] for e in wait_access(s, n["k2_transaction_id"])] == ["accepted"]
    assert s.count() == 10


def test_batches_never_mix_the_databases_of_two_virtual_hosts(make_httpd):
    s = make_httpd("gc-vhosts", ONE_CHILD + """
<VirtualHost *:{{port}}>
    ServerName one.example
""" + CONTRACT_LOCATION + """
</VirtualHost>
<VirtualHost *:{{port}}>
    ServerName two.example
    DBDriver sqlite3
    DBDParams "{dir}/db/two.db"
    DBDInitSQL "PRAGMA synchronous = FULL"
""" + CONTRACT_LOCATION + """
</VirtualHost>
""", loglevel=DEBUG)
    two = os.path.join(s.dir, "db", "two.db")
    with open(os.path.join(os.path.dirname(__file__), "..", "..", "conf-samples",
                           "schema-sqlite.sql")) as f:
        con = sqlite3.connect(two)
        con.executescript(f.read())
        con.execute("INSERT INTO accounts (ac_no) VALUES (?)", (ACCOUNT,))
        con.commit()
        con.close()
    os.chown(two, *(lambda st: (st.st_uid, st.st_gid))(os.stat(s.db)))
    with open(s.conf) as f:
        conf = f.read().replace("{port}", str(s.port))
    with open(s.conf, "w") as f:
        f.write(conf)
    s.start()

    notes = [(host, notification()) for _ in range(8)
             for host in ("one.example", "two.example")]

    def post_host(job):
        host, n = job
        r = requests.post(s.base + "/k2/notify", data=form(n), auth=(USER, PASSWORD),
                          headers={"Host": host, "Connection": "close",
                                   "Content-Type": "application/x-www-form-urlencoded"},
                          timeout=30)
        return r.status_code, r.text

    off = s.log_offset()
    locks = [WriteLock(s.db), WriteLock(two)]
    with ThreadPoolExecutor(max_workers=len(notes)) as pool:
        futures = [pool.submit(post_host, job) for job in notes]
        wait_queued(s, off, len(notes) - 2)     # a leader per database
        for lock in locks:
            lock.release()
        replies = [f.result() for f in futures]
    assert replies == [(200, ACCEPTED)] * 16

    def ids(db):
        con = sqlite3.connect(db)
        try:
            return {r[0] for r in con.execute("SELECT k2_transaction_id FROM k2_transactions")}
        finally:
            con.close()

    assert ids(s.db) == {n["k2_transaction_id"] for h, n in notes if h == "one.example"}
    assert ids(two) == {n["k2_transaction_id"] for h, n in notes if h == "two.example"}
    assert sorted(transactions(s)) == [(8, "committed"), (8, "committed")]


def test_prefork_commits_each_notification_alone(make_httpd):
    mpm, lines = STOCK_LAYOUTS["stock-prefork"]
    s = make_httpd("gc-prefork", lines + CONTRACT_LOCATION, mpm=mpm,
                   loglevel=DEBUG).start()
    notes = [notification() for _ in range(30)]
    with ThreadPoolExecutor(max_workers=10) as pool:
        replies = list(pool.map(lambda n: post(s, n), notes))
    assert replies == [(200, ACCEPTED)] * 30
    assert collections.Counter(transactions(s)) == {(1, "committed"): 30}


def test_group_commit_off_commits_each_notification_alone(make_httpd):
    s = one_child(make_httpd, "gc-off", "K2NotifyGroupCommit Off\n" + CONTRACT_LOCATION)
    notes = [notification() for _ in range(8)]
    replies, _ = batch(s, notes, grouped=False)
    assert replies == [(200, ACCEPTED)] * 8
    time.sleep(0.5)
    assert collections.Counter(transactions(s)) == {(1, "committed"): 8}


def test_group_commit_is_a_server_directive(make_httpd):
    s = make_httpd("gc-context", CONTRACT_LOCATION.replace(
        "    SetHandler k2notify\n", "    SetHandler k2notify\n    K2NotifyGroupCommit On\n"))
    rc, out = s.configtest()
    assert rc != 0 and "K2NotifyGroupCommit not allowed in <Location> context" in out, out


def test_mutex_directive_configures_the_lock(make_httpd):
    """The lock is httpd's own: `Mutex` chooses its mechanism and place."""
    s = make_httpd("gc-mutex", "Mutex flock:{dir}/locks k2notify-db\n"
                   + CONTRACT_LOCATION)
    os.mkdir(os.path.join(s.dir, "locks"))
    s.start()
    assert post(s, notification()) == (200, ACCEPTED)
    files = os.listdir(os.path.join(s.dir, "locks"))
    assert any(f.startswith("k2notify-db") for f in files), files

    d = make_httpd("gc-mutex-default", "Mutex default k2notify-db\n"
                   + CONTRACT_LOCATION).start()
    assert post(d, notification()) == (200, ACCEPTED)

    bad = make_httpd("gc-mutex-bad", "Mutex nosuchmech k2notify-db\n" + CONTRACT_LOCATION)
    rc, out = bad.configtest()
    assert rc != 0 and "nosuchmech" in out, out


# -- the k2notify-db lock ------------------------------------------------------

# SQLite's lock bytes in a rollback-journal database (os_unix.c): a writer
# waiting at COMMIT for readers to go holds a write lock on the PENDING byte.
SQLITE_PENDING_BYTE = 0x40000000


def sqlite_pending_holder(db):
    """The pid of the process that holds SQLite's PENDING lock on db (a
    writer at COMMIT, waiting for readers), or None.  F_GETLK only asks: it
    takes nothing (a lock taken and released here could drop nothing of
    SQLite's, which runs in other processes, but would get in their way)."""
    fd = os.open(db, os.O_RDONLY)
    try:
        # struct flock on Linux x86_64/aarch64: short, short, off_t, off_t, pid_t
        req = struct.pack("hhqqi4x", fcntl.F_WRLCK, os.SEEK_SET,
                          SQLITE_PENDING_BYTE, 1, 0)
        l_type, _, _, _, pid = struct.unpack("hhqqi4x", fcntl.fcntl(fd, fcntl.F_GETLK, req))
        return None if l_type == fcntl.F_UNLCK else pid
    finally:
        os.close(fd)


def locks_held(lock_dir):
    """The files of lock_dir (`Mutex flock:DIR k2notify-db`) that a process
    holds locked now, probed with a non-blocking flock (released at once
    when it was free)."""
    held = []
    for name in sorted(os.listdir(lock_dir)):
        with open(os.path.join(lock_dir, name)) as f:
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                held.append(name)
                continue
            fcntl.flock(f, fcntl.LOCK_UN)
    return held


def with_lock_dir(make_httpd, name, body, **kw):
    """A server (not started) whose k2notify-db lock is a file of its own
    locks/ directory, which the test can probe: (server, directory)."""
    s = make_httpd(name, "Mutex flock:{dir}/locks k2notify-db\n" + body,
                   loglevel=DEBUG, **kw)
    lock_dir = os.path.join(s.dir, "locks")
    os.mkdir(lock_dir)
    return s, lock_dir


class ReadTransaction:
    """A read transaction held open by the sqlite3 shell (as the httpd
    user): in rollback-journal mode its SHARED lock holds a writer's COMMIT
    back (the driver retries for about 1.6 s) until it ends."""

    def __init__(self, db):
        self.p = sqlite_shell(db)
        self.p.stdin.write("BEGIN;\nSELECT count(*) FROM accounts;\n.print reading\n")
        self.p.stdin.flush()
        assert self.p.stdout.readline().strip() == "1"
        assert self.p.stdout.readline().strip() == "reading"

    def end(self):
        self.p.communicate("COMMIT;\n.quit\n", timeout=10)
        assert self.p.returncode == 0


def rollback_journal(server):
    """Switch the server's database from the schema's WAL to a rollback
    journal (before it starts: it needs the only connection)."""
    con = sqlite3.connect(server.db)
    assert con.execute("PRAGMA journal_mode = DELETE").fetchone() == ("delete",)
    con.close()


@pytest.mark.parametrize("mpm", ["event", "prefork"])
def test_db_lock_is_held_until_the_commit_has_ended(make_httpd, mpm):
    """The k2notify-db lock covers the whole transaction, COMMIT included:
    released before COMMIT, the next writer would meet SQLite's lock (and
    the driver's 100 ms sleeps) instead of waiting its turn.  A reader
    holds the COMMIT back; meanwhile the lock's file is found locked."""
    layout = ONE_CHILD if mpm == "event" else STOCK_LAYOUTS["stock-prefork"][1]
    s, lock_dir = with_lock_dir(make_httpd, f"gc-lock-{mpm}", layout + CONTRACT_LOCATION,
                                mpm=mpm)
    rollback_journal(s)
    s.start()
    assert post(s, notification()) == (200, ACCEPTED)     # the lock exists
    assert os.listdir(lock_dir) and locks_held(lock_dir) == []

    reader = ReadTransaction(s.db)
    n = notification()
    with ThreadPoolExecutor(max_workers=1) as pool:
        try:
            reply = pool.submit(post, s, n)
            deadline = time.time() + 5
            while sqlite_pending_holder(s.db) is None and time.time() < deadline:
                time.sleep(0.01)
            writer = sqlite_pending_holder(s.db)
            assert writer is not None, "the notification never reached COMMIT"
            held_at_commit = locks_held(lock_dir)
        finally:
            reader.end()
        assert reply.result() == (200, ACCEPTED)
    assert held_at_commit, "the k2notify-db lock was free while COMMIT waited"
    assert len(s.rows(n["k2_transaction_id"])) == 1
    assert locks_held(lock_dir) == []


def test_first_statement_of_a_batch_failing_leaves_a_transaction_for_the_rest(make_httpd):
    """The first statement of a transaction has no savepoint: when it fails,
    the transaction is rolled back and opened again for the notifications
    queued behind it.  Made on purpose: the failing one leads (it holds the
    k2notify-db lock while SQLite's write lock is held outside), five good
    ones queue behind it; the transaction holds the six, commits the five."""
    s, lock_dir = with_lock_dir(make_httpd, "gc-first-fails", ONE_CHILD + GUARDED,
                                extra_sql=REFUSING_SQL)
    s.start()
    s.expect_error(r"\[k2notify:error\] .*outcome=error: K2NotifyRecordQuery "
                   r"failed \(\d+\): abort: refused$")
    bad = notification(amount="13.13")
    good = [notification(amount=f"{i + 1}.00") for i in range(5)]
    off = s.log_offset()
    lock = WriteLock(s.db)
    with ThreadPoolExecutor(max_workers=6) as pool:
        try:
            first = pool.submit(post, s, bad, "/k2/guarded")
            # it leads: it holds the k2notify-db lock, waiting in BEGIN
            deadline = time.time() + 5
            while not locks_held(lock_dir) and time.time() < deadline:
                time.sleep(0.01)
            assert locks_held(lock_dir), "the failing notification never led"
            rest = [pool.submit(post, s, n, "/k2/guarded") for n in good]
            wait_queued(s, off, len(good))
        finally:
            lock.release()
        replies = [first.result()] + [f.result() for f in rest]
    assert replies == [(500, INTERNAL_ERROR)] + [(200, ACCEPTED)] * 5
    assert transactions(s, off) == [(6, "committed")]
    ids = {n["k2_transaction_id"] for n in good}
    assert guarded(s) == ids and guarded(s, "k2_guarded_log") == ids
    assert [e[6] for e in wait_access(s, bad["k2_transaction_id"])] == ["error"]


def lock_waiters(lock_dir):
    """The pids waiting (blocked) for a flock on a file of lock_dir, from
    /proc/locks (a blocked request is listed with '->' after the lock that
    holds it back)."""
    inodes = {os.stat(os.path.join(lock_dir, f)).st_ino for f in os.listdir(lock_dir)}
    pids = []
    with open("/proc/locks") as f:
        for line in f:
            words = line.split()
            if len(words) > 5 and words[1] == "->" and words[2] == "FLOCK" \
                    and int(words[6].split(":")[2]) in inodes:
                pids.append(int(words[5]))
    return pids


def wait_until(what, timeout=5):
    deadline = time.time() + timeout
    while not what() and time.time() < deadline:
        time.sleep(0.01)
    return what()


def test_busy_wait_in_vain_fails_those_who_waited_through_it_not_those_who_came_after(make_httpd):
    """While a program outside Apache holds SQLite's write lock, the holder
    of the k2notify-db lock waits in BEGIN for it (about 1.6 s), in vain.  A
    writer of another child that waited for the k2notify-db lock meanwhile
    fails with it at once (rather than wait 1.6 s more in turn); one that
    arrives after the failure tries BEGIN itself.  The lock outside is gone
    as soon as the first fails: the second, had it tried BEGIN, would have
    been accepted; the third is."""
    mpm, lines = STOCK_LAYOUTS["stock-prefork"]
    s, lock_dir = with_lock_dir(make_httpd, "gc-busy-since", lines + CONTRACT_LOCATION,
                                mpm=mpm)
    s.start()
    assert post(s, notification()) == (200, ACCEPTED)     # the lock exists
    first, second, third = notification(), notification(), notification()
    for n in (first, second):
        s.expect_error(rf"\[k2notify:error\] .* notification k2_transaction_id="
                       rf"{n['k2_transaction_id']} .*outcome=error: ")
    lock = WriteLock(s.db)
    released = False
    with ThreadPoolExecutor(max_workers=2) as pool:
        try:
            a = pool.submit(post, s, first)
            assert wait_until(lambda: locks_held(lock_dir)), "the first never took the lock"
            b = pool.submit(post, s, second)
            assert wait_until(lambda: lock_waiters(lock_dir)), \
                "the second never waited for the k2notify-db lock"
            assert a.result() == (500, INTERNAL_ERROR)
            lock.release()
            released = True
            assert b.result() == (500, INTERNAL_ERROR)
        finally:
            if not released:
                lock.release()
    assert post(s, third) == (200, ACCEPTED)
    assert [len(s.rows(n["k2_transaction_id"])) for n in (first, second, third)] == [0, 0, 1]
