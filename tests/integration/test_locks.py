"""The k2notify-db lock (issue 15): one per database, on a clock that never
steps, following its Mutex line across restarts, and never waited for
without bound.

Each writer of a SQLite database takes that database's k2notify-db lock
around its transaction.  The cases are made on purpose: SQLite's write lock
held by the sqlite3 shell (WriteLock), a child stopped with SIGSTOP while it
holds the module's lock, the wall clock stepped back for the httpd processes
only (libfaketime, CLOCK_MONOTONIC left alone, as a real clock step leaves
it).
"""
import os
import re
import signal
import sqlite3
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from conftest import (ACCOUNT, CONTRACT_LOCATION, HTTPD, PASSWORD, SCHEMA,
                      STOCK_LAYOUTS, USER, form, notification)
from test_faults import children, parent_pid
from test_group_commit import ACCEPTED, INTERNAL_ERROR, WriteLock, post

# The writer that waited in BEGIN IMMEDIATE for the driver's 15 retries.
BEGIN_LOCKED = (r"\[k2notify:error\] .* outcome=error: BEGIN IMMEDIATE failed "
                r"\(5\): database is locked$")
IN_VAIN = "waited .* ms for it in vain"


def make_db(server, name):
    """A second database beside the server's, from the same schema, owned
    as the server's is."""
    path = os.path.join(server.db_dir, name)
    with open(SCHEMA) as f:
        con = sqlite3.connect(path)
        con.executescript(f.read())
        con.execute("INSERT INTO accounts (ac_no) VALUES (?)", (ACCOUNT,))
        con.commit()
        con.close()
    st = os.stat(server.db)
    os.chown(path, st.st_uid, st.st_gid)
    return path


def ids(db):
    con = sqlite3.connect(db, timeout=10)
    try:
        return {r[0] for r in con.execute("SELECT k2_transaction_id FROM k2_transactions")}
    finally:
        con.close()


def post_host(server, host, fields):
    r = requests.post(server.base + "/k2/notify", data=form(fields),
                      auth=(USER, PASSWORD), timeout=30,
                      headers={"Host": host, "Connection": "close",
                               "Content-Type": "application/x-www-form-urlencoded"})
    return r.status_code, r.text


def two_hosts(make_httpd, name, layout_lines, mpm, two_params='"{dir}/db/two.db"',
              extra=""):
    """Two virtual hosts: one.example writes the main server's database,
    two.example its own."""
    s = make_httpd(name, layout_lines + extra + """
<VirtualHost *:{{port}}>
    ServerName one.example
""" + CONTRACT_LOCATION + """
</VirtualHost>
<VirtualHost *:{{port}}>
    ServerName two.example
    DBDriver sqlite3
    DBDParams """ + two_params + """
    DBDInitSQL "PRAGMA synchronous = FULL"
""" + CONTRACT_LOCATION + """
</VirtualHost>
""", mpm=mpm)
    two = make_db(s, "two.db")
    with open(s.conf) as f:
        conf = f.read().replace("{port}", str(s.port))
    with open(s.conf, "w") as f:
        f.write(conf)
    return s, two


@pytest.mark.parametrize("layout", ["stock-event", "stock-prefork"])
def test_database_locked_outside_apache_delays_no_other_virtual_host(make_httpd, layout):
    """While one.example's database is locked by the sqlite3 shell, its
    writer waits in BEGIN IMMEDIATE for the driver's retries (then 500);
    two.example's database is free, and its notifications are answered 01
    meanwhile, never with one.example's failure."""
    mpm, lines = STOCK_LAYOUTS[layout]
    s, two = two_hosts(make_httpd, "lock-per-db-" + mpm, lines, mpm)
    s.expect_error(BEGIN_LOCKED)
    s.start()
    lock = WriteLock(s.db)
    pool = ThreadPoolExecutor(max_workers=4)
    try:
        blocked = pool.submit(post_host, s, "one.example", notification())
        time.sleep(0.3)                 # one.example's writer is in BEGIN
        others = [notification() for _ in range(3)]
        replies = [pool.submit(post_host, s, "two.example", n) for n in others]
        replies = [f.result() for f in replies]
        one_reply = blocked.result()
    finally:
        lock.release()
        pool.shutdown()
    assert one_reply == (500, INTERNAL_ERROR)
    assert replies == [(200, ACCEPTED)] * 3
    assert ids(two) == {n["k2_transaction_id"] for n in others}
    assert ids(s.db) == set()
    assert not re.search(IN_VAIN, s.errors_text())
    # and once released, one.example writes again
    n = notification()
    assert post_host(s, "one.example", n) == (200, ACCEPTED)
    assert n["k2_transaction_id"] in ids(s.db)


def test_servers_that_write_one_database_file_share_one_lock(make_httpd):
    """The lock belongs to the database file: two virtual hosts naming the
    same file (spelt differently) share one lock, a third database has its
    own.  With Mutex flock, each lock is a file."""
    s, two = two_hosts(make_httpd, "lock-shared", "", "event",
                       two_params='"{dir}/db/./k2.db"',
                       extra="Mutex flock:{dir}/locks k2notify-db\n"
                             "<VirtualHost *:{{port}}>\n"
                             "    ServerName three.example\n"
                             "    DBDriver sqlite3\n"
                             "    DBDParams \"{dir}/db/three.db\"\n"
                             + CONTRACT_LOCATION + "</VirtualHost>\n")
    os.mkdir(os.path.join(s.dir, "locks"))
    three = make_db(s, "three.db")
    s.start()
    notes = {h: notification() for h in ("one.example", "two.example", "three.example")}
    for host, n in notes.items():
        assert post_host(s, host, n) == (200, ACCEPTED)
    assert ids(s.db) == {notes["one.example"]["k2_transaction_id"],
                         notes["two.example"]["k2_transaction_id"]}
    assert ids(three) == {notes["three.example"]["k2_transaction_id"]}
    locks = [f for f in os.listdir(os.path.join(s.dir, "locks"))
             if f.startswith("k2notify-db")]
    assert len(locks) == 2, locks


# -- the clock ---------------------------------------------------------------

FAKETIME = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1"


@pytest.mark.skipif(not os.path.exists(FAKETIME), reason="libfaketime (tools/deps.sh test)")
@pytest.mark.skipif("libasan" in os.environ.get("K2NOTIFY_HTTPD_ENV", ""),
                    reason="libfaketime under ASan's runtime hangs httpd at startup")
def test_wall_clock_stepped_back_after_a_busy_failure_refuses_nothing(make_httpd):
    """A notification that met a database locked outside Apache leaves its
    time in the shared record, so that those already waiting fail with it.
    That time is on CLOCK_MONOTONIC: the wall clock stepped back 600 s
    afterwards (NTP, a resumed VM) must not make every later notification
    look as if it had been waiting since before that failure."""
    offset = os.path.join("/tmp", f"k2notify-faketime-{os.getpid()}")
    with open(offset, "w") as f:
        f.write("+0\n")
    os.chmod(offset, 0o644)
    mpm, lines = STOCK_LAYOUTS["stock-prefork"]
    s = make_httpd("clock-back", lines + CONTRACT_LOCATION, mpm=mpm, env={
        "LD_PRELOAD": FAKETIME, "FAKETIME_TIMESTAMP_FILE": offset,
        "FAKETIME_NO_CACHE": "1", "FAKETIME_DONT_FAKE_MONOTONIC": "1"})
    s.expect_error(BEGIN_LOCKED)
    s.expect_error(IN_VAIN)
    try:
        s.start()
        assert post(s, notification()) == (200, ACCEPTED)
        lock = WriteLock(s.db)
        try:
            assert post(s, notification()) == (500, INTERNAL_ERROR)
        finally:
            lock.release()
        with open(offset, "w") as f:
            f.write("-600\n")           # the wall clock, 600 s back
        notes = [notification() for _ in range(5)]
        assert [post(s, n) for n in notes] == [(200, ACCEPTED)] * 5
        assert ids(s.db) >= {n["k2_transaction_id"] for n in notes}
        assert not re.search(IN_VAIN, s.errors_text())
    finally:
        os.unlink(offset)


# -- the Mutex line across restarts --------------------------------------------

def restart(s, how):
    """apache2 -k restart|graceful, then wait until the new generation answers."""
    before = s.errors_text().count("resuming normal operations")
    subprocess.run([HTTPD, "-f", s.conf, "-k", how], check=True,
                   env=s.httpd_env(), capture_output=True)
    deadline = time.time() + 15
    while s.errors_text().count("resuming normal operations") <= before:
        assert time.time() < deadline, s.errors_text()
        time.sleep(0.1)


def lock_files(s, d):
    return sorted(f for f in os.listdir(os.path.join(s.dir, d))
                  if f.startswith("k2notify-db"))


@pytest.mark.parametrize("how", ["restart", "graceful"])
def test_changed_mutex_line_takes_effect_at_the_next_restart(make_httpd, how):
    s = make_httpd("mutex-change-" + how, "Mutex flock:{dir}/locks1 k2notify-db\n"
                   + CONTRACT_LOCATION)
    for d in ("locks1", "locks2"):
        os.mkdir(os.path.join(s.dir, d))
    s.start()
    assert post(s, notification()) == (200, ACCEPTED)
    first = lock_files(s, "locks1")
    assert len(first) == 1, first
    # unchanged: the same lock is kept (the generations share it)
    restart(s, how)
    assert post(s, notification()) == (200, ACCEPTED)
    assert lock_files(s, "locks1") == first
    assert lock_files(s, "locks2") == []
    # changed: the new generation's lock is where the new line says
    with open(s.conf) as f:
        conf = f.read().replace("locks1 k2notify-db", "locks2 k2notify-db")
    with open(s.conf, "w") as f:
        f.write(conf)
    restart(s, how)
    n = notification()
    assert post(s, n) == (200, ACCEPTED)
    assert len(lock_files(s, "locks2")) == 1, lock_files(s, "locks2")
    assert n["k2_transaction_id"] in ids(s.db)


# -- a holder that never lets go -------------------------------------------------

def sockets(pid):
    n = 0
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            n += os.readlink(f"/proc/{pid}/fd/{fd}").startswith("socket:")
        except OSError:
            pass
    return n


TWO_PREFORK = """
StartServers 2
MinSpareServers 2
MaxSpareServers 2
ServerLimit 2
MaxRequestWorkers 2
K2NotifyLockTimeout 1
"""


@pytest.mark.parametrize("mutex", ["default", "flock"])
def test_writer_waits_for_a_stopped_lock_holder_only_as_long_as_the_lock_timeout(make_httpd, mutex):
    """A child stopped (SIGSTOP) while it holds the k2notify-db lock must not
    stall the writers of every other child: after K2NotifyLockTimeout they
    write without the lock, and are answered.  (A file lock is waited for
    in the kernel: a writer that finds it held for longer than the timeout
    does not wait.)"""
    lines = "" if mutex == "default" else "Mutex flock:{dir}/locks k2notify-db\n"
    s = make_httpd("lock-stopped-" + mutex, TWO_PREFORK + lines + CONTRACT_LOCATION,
                   mpm="prefork")
    if mutex == "flock":
        os.mkdir(os.path.join(s.dir, "locks"))
    s.expect_error(r"\[mpm_prefork:error\] .* AH00161: server reached MaxRequestWorkers")
    s.start()
    assert post(s, notification()) == (200, ACCEPTED)
    kids = children(parent_pid(s))
    assert len(kids) == 2, kids
    lock = WriteLock(s.db)
    pool = ThreadPoolExecutor(max_workers=2)
    held = notification()
    stopped = None
    try:
        first = pool.submit(post, s, held)      # takes the lock, waits in BEGIN
        deadline = time.time() + 5
        while stopped is None and time.time() < deadline:
            time.sleep(0.05)
            busy = [k for k in kids if sockets(k) > min(sockets(x) for x in kids)]
            stopped = busy[0] if len(busy) == 1 else None
        assert stopped, "no child took the notification"
        os.kill(stopped, signal.SIGSTOP)
        lock.release()                  # SQLite is free; the module's lock is not
        lock = None
        if mutex == "flock":
            time.sleep(1.2)             # held longer than the timeout
        n = notification()
        t0 = time.monotonic()
        reply = pool.submit(post, s, n).result(timeout=15)
        waited = time.monotonic() - t0
    finally:
        if stopped:
            os.kill(stopped, signal.SIGCONT)
        if lock:
            lock.release()
    assert reply == (200, ACCEPTED)
    assert (0.9 if mutex == "default" else 0) < waited < 10, waited
    assert n["k2_transaction_id"] in ids(s.db)
    assert s.wait_log(r"\[k2notify:warn\] .* the k2notify-db lock of \S+ was not "
                      r"released within 1000 ms \(K2NotifyLockTimeout; a process "
                      r"holding it is stopped or stuck\): writing without it")
    # the stopped one goes on once continued
    status, _ = first.result(timeout=15)
    assert (status == 200) == (held["k2_transaction_id"] in ids(s.db))
    pool.shutdown()


def test_lock_timeout_is_a_server_directive_with_bounds(make_httpd):
    for value in ("0", "50ms", "301", "ten"):
        bad = make_httpd("lock-timeout-bad", f"K2NotifyLockTimeout {value}\n"
                         + CONTRACT_LOCATION)
        rc, out = bad.configtest()
        assert rc != 0 and f"K2NotifyLockTimeout: '{value}' is not a time" in out, out
    inside = make_httpd("lock-timeout-ctx", CONTRACT_LOCATION.replace(
        "    SetHandler k2notify\n", "    SetHandler k2notify\n    K2NotifyLockTimeout 5\n"))
    rc, out = inside.configtest()
    assert rc != 0 and "K2NotifyLockTimeout not allowed in <Location> context" in out, out
    ok = make_httpd("lock-timeout-ok", "K2NotifyLockTimeout 500ms\n" + CONTRACT_LOCATION)
    assert ok.configtest()[0] == 0
