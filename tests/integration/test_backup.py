"""Backups of a live SQLite file (docs/operations.md, "Backups of a live SQLite
file"): the manual's lines run as written, against a real Apache that is
recording payments.

- A reader's snapshot held open (what VACUUM INTO holds for the whole copy)
  neither delays nor refuses a notification: WAL lets the module's writer
  commit beside it, and the reader goes on seeing the database as it was.
- The manual's VACUUM INTO line, run as the httpd user, copies every payment
  committed before it, the copy passes integrity_check, and the module goes
  on answering 01 afterwards (no -wal/-shm left that www-data cannot write).
"""
import os
import re
import sqlite3
import subprocess

from conftest import CONTRACT_LOCATION, TOP, notification, run_user

ACCEPTED = '{"status":"01","description":"Accepted"}'
OPERATIONS = os.path.join(TOP, "docs", "operations.md")
LIVE = "/var/lib/k2notify/k2.db"
BACKUPS = "/var/backups/k2notify"


def backup_lines():
    """The sh block of the manual's backup section, as command lines."""
    with open(OPERATIONS) as f:
        text = f.read()
    m = re.search(r"^## Backups of a live SQLite file\n(.*?)(?=^## |\Z)", text,
                  re.M | re.S)
    assert m, "docs/operations.md has no section 'Backups of a live SQLite file'"
    blocks = re.findall(r"^```sh\n(.*?)^```$", m.group(1), re.M | re.S)
    return [l for l in blocks[0].splitlines() if l.strip()]


def as_written(line, server, backups):
    """A manual line for this server: its paths, and 'sudo -u www-data' as
    the user its children run as (runuser when root, nobody else otherwise)."""
    line = line.replace(LIVE, server.db).replace(BACKUPS, backups)
    user = run_user()
    if user:
        line = re.sub(r"^sudo -u www-data ", f"runuser -u {user.pw_name} -- ", line)
        line = re.sub(r"-o www-data -g www-data", f"-o {user.pw_name} -g {user.pw_gid}", line)
        return re.sub(r"^sudo ", "", line)
    line = re.sub(r"^sudo -u www-data ", "", line)
    line = re.sub(r" -o www-data -g www-data", "", line)
    return re.sub(r"^sudo ", "", line)


def post_many(server, n):
    ids = []
    for _ in range(n):
        note = notification()
        r = server.post(note)
        assert (r.status_code, r.text) == (200, ACCEPTED)
        ids.append(note["k2_transaction_id"])
    return ids


def stored_ids(db):
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return {r[0] for r in con.execute("SELECT k2_transaction_id FROM k2_transactions")}
    finally:
        con.close()


class Reader:
    """A read transaction held open by the sqlite3 shell, as the httpd user."""

    def __init__(self, db):
        user = run_user()
        cmd = ["sqlite3", db]
        if user:
            cmd = ["runuser", "-u", user.pw_name, "--"] + cmd
        self.p = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                  text=True)
        self.count_at_start = self.count("BEGIN; ")

    def count(self, before=""):
        self.p.stdin.write(before + "SELECT count(*) FROM k2_transactions;\n")
        self.p.stdin.flush()
        return int(self.p.stdout.readline())

    def end(self):
        self.p.communicate("COMMIT;\n.quit\n", timeout=10)
        assert self.p.returncode == 0


def test_a_reader_s_snapshot_held_open_neither_delays_nor_refuses_a_notification(make_httpd):
    s = make_httpd("backup-reader", CONTRACT_LOCATION).start()
    before = post_many(s, 3)
    reader = Reader(s.db)
    try:
        during = post_many(s, 20)       # 500 after ~1.6 s each if it blocked them
        assert reader.count() == reader.count_at_start == len(before)
    finally:
        reader.end()
    assert stored_ids(s.db) == set(before + during)


def test_the_manual_s_vacuum_into_copies_every_committed_payment_of_a_live_database(
        make_httpd):
    s = make_httpd("backup-vacuum", CONTRACT_LOCATION).start()
    recorded = post_many(s, 30)
    backups = os.path.join(s.dir, "backups")     # s.dir: 0755, as /var/backups
    lines = backup_lines()
    assert len(lines) == 3 and "VACUUM INTO" in lines[1], lines
    for line in lines:
        p = subprocess.run(["bash", "-c", as_written(line, s, backups)],
                           capture_output=True, text=True, timeout=60)
        assert p.returncode == 0, (line, p.stdout, p.stderr)
    assert p.stdout.strip() == "ok"     # integrity_check of the copy
    copies = [os.path.join(backups, n) for n in os.listdir(backups)]
    assert len(copies) == 1
    assert stored_ids(copies[0]) == set(recorded)
    # The live database is still the module's: it goes on recording.
    later = post_many(s, 5)
    assert stored_ids(s.db) == set(recorded + later)
    assert stored_ids(copies[0]) == set(recorded)
