"""The SQLite write path off apr-util's driver mutex (issue 17).

apr-util's sqlite3 driver runs every SQLite call of a process under one
mutex; a COMMIT run through it held that mutex through its fsync, so every
query of the child waited for the disk.  The transaction's own statements
(SAVEPOINT, RELEASE, ROLLBACK, COMMIT) now run on the connection's own
handle, and only BEGIN IMMEDIATE (and a COMMIT that meets SQLITE_BUSY) goes
through the driver, whose retries wait out another writer or a reader.

- A commit held up by the disk (the database's file system frozen with
  fsfreeze: its WAL write blocks until the thaw) leaves the child's reads
  alone: an account lookup is answered meanwhile; the notification gets its
  01 after the thaw, and its row is there.
- On a rollback-journal database a COMMIT needs the readers gone: a reader
  holding its transaction open makes it wait (SQLITE_BUSY, retried by the
  driver) and the notification gets its 01 once the reader ends.
"""
import os
import shutil
import subprocess
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from conftest import (AUTH, CONTRACT_LOCATION, PASSWORD, USER, form,
                      notification, run_user)
from test_group_commit import ONE_CHILD, post

ACCEPTED = '{"status":"01","description":"Accepted"}'
LOOKUP = """
<Location /k2/lookup>
    SetHandler k2notify
""" + AUTH + """
    K2NotifyAccountQuery "SELECT ac_no FROM accounts WHERE ac_no = %s"
</Location>
"""


@pytest.fixture
def loopfs():
    """A small ext4 file system on a loop device (root only), mounted where
    the test asks; unmounted (thawed first) at the end."""
    if os.geteuid() != 0:
        pytest.skip("needs root: a loop device and fsfreeze")
    work = tempfile.mkdtemp(prefix="k2notify-loopfs-")
    image = os.path.join(work, "fs.img")
    with open(image, "wb") as f:
        f.truncate(24 << 20)
    subprocess.run(["mkfs.ext4", "-q", "-F", image], check=True)
    mounted = []

    def mount(where):
        subprocess.run(["mount", "-o", "loop", image, where], check=True)
        mounted.append(where)
        return where

    yield mount
    for where in mounted:
        subprocess.run(["fsfreeze", "-u", where], capture_output=True)
        subprocess.run(["umount", where], check=True)
    shutil.rmtree(work)


def database_on(s, mount):
    """Move the server's database directory onto a file system of its own."""
    keep = tempfile.mkdtemp(prefix="k2notify-db-")
    for name in os.listdir(s.db_dir):
        shutil.move(os.path.join(s.db_dir, name), keep)
    mount(s.db_dir)
    for name in os.listdir(keep):
        shutil.move(os.path.join(keep, name), s.db_dir)
    os.rmdir(keep)
    user = run_user()
    if user:
        for root, dirs, files in os.walk(s.db_dir):
            for name in [root] + [os.path.join(root, f) for f in files]:
                os.chown(name, user.pw_uid, user.pw_gid)


def test_reads_go_on_while_a_commit_waits_for_the_disk(make_httpd, loopfs):
    s = make_httpd("wp-frozen", ONE_CHILD + LOOKUP + CONTRACT_LOCATION)
    database_on(s, loopfs)
    s.start()
    try:
        # every pooled connection has opened the WAL before the freeze
        with ThreadPoolExecutor(max_workers=8) as pool:
            assert set(pool.map(lambda _: post(s, notification()), range(16))) \
                == {(200, ACCEPTED)}
        # and a reader has marked the last commit read (a read after a
        # commit writes its mark into the -shm file, which a frozen file
        # system would hold up as it does the commit)
        assert post(s, notification(), "/k2/lookup") == (200, ACCEPTED)
        subprocess.run(["fsfreeze", "-f", s.db_dir], check=True)
        pool = ThreadPoolExecutor(max_workers=1)
        try:
            n = notification()
            held = pool.submit(post, s, n)
            time.sleep(0.5)
            assert not held.done(), held.result()   # its commit waits
            r = requests.post(s.base + "/k2/lookup", data=form(notification()),
                              auth=(USER, PASSWORD), timeout=3, headers={
                                  "Content-Type": "application/x-www-form-urlencoded"})
            assert (r.status_code, r.text) == (200, ACCEPTED)
            assert not held.done()
        finally:
            subprocess.run(["fsfreeze", "-u", s.db_dir], check=True)
        assert held.result() == (200, ACCEPTED)
        pool.shutdown()
        assert len(s.rows(n["k2_transaction_id"])) == 1
    finally:
        s.stop()


def test_commit_on_a_rollback_journal_database_waits_out_its_readers(make_httpd):
    s = make_httpd("wp-journal", ONE_CHILD + CONTRACT_LOCATION)
    con = __import__("sqlite3").connect(s.db)
    con.execute("PRAGMA journal_mode = DELETE")
    con.close()
    s.start()
    assert post(s, notification()) == (200, ACCEPTED)
    user = run_user()
    cmd = ["sqlite3", s.db]
    if user:
        cmd = ["runuser", "-u", user.pw_name, "--"] + cmd
    reader = subprocess.Popen(cmd, stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    reader.stdin.write("BEGIN;\nSELECT count(*) FROM accounts;\n")
    reader.stdin.flush()
    assert reader.stdout.readline().strip() == "1"     # holds its SHARED lock
    with ThreadPoolExecutor(max_workers=1) as pool:
        n = notification()
        held = pool.submit(post, s, n)
        time.sleep(0.4)
        assert not held.done(), held.result()   # its COMMIT waits
        reader.communicate("COMMIT;\n.quit\n", timeout=10)
        assert held.result() == (200, ACCEPTED)
    assert len(s.rows(n["k2_transaction_id"])) == 1
