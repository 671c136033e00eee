"""Failure rules: a database that is unreachable, read-only or refuses a
statement gives 500 (never 01) with no database detail to the client, the
database's own message in the error log, and a server that keeps serving.
Plus the locations that are misconfigured on purpose (no authentication, no
account query, lookup only).
"""
import os
import re
import shutil
import sqlite3
import time

import pytest
import requests

from conftest import (ACCOUNT, AUTH, CONTRACT_LOCATION, ONE_CONNECTION,
                      notification, run_user, wait_access)
from test_faults import RECORD_READ_ONLY, children, parent_pid

ACCEPTED = '{"status":"01","description":"Accepted"}'
ACCOUNT_NOT_FOUND = '{"status":"02","description":"Account not Found"}'
INTERNAL_ERROR = '{"description":"Internal Server Error"}'

# mod_dbd's own lines when it cannot open or prepare on a connection.  With
# the pool (DBDPersist On, the default) a child that cannot connect at start
# also logs "[dbd:crit] AH00636: child init failed!": that is mod_dbd's
# reaction to a database that is down when httpd starts, and the only crit
# line these tests accept.
DBD_CONNECT = r"\[dbd:error\] .*AH00629: Can't connect to sqlite3: unable to open database file"
DBD_PREPARE_RO = (r"\[dbd:error\] .*AH00632: failed to prepare SQL statements: "
                  r"attempt to write a readonly database")
DBD_INIT = r"\[dbd:error\] .*AH00633: failed to initialise"
DBD_CHILD_INIT_CRIT = re.compile(r"\[dbd:crit\] .*AH00636: child init failed!$")
K2_NO_CONNECTION = (r"\[k2notify:error\] .* notification k2_transaction_id=\S+ "
                    r"ac_no=\S+ outcome=error: no database connection")

STATIC_LOCATION = '\nDocumentRoot "{dir}/htdocs"\n'


@pytest.fixture
def dbd_down_httpd(make_httpd):
    """make_httpd for servers whose database is broken before start: mod_dbd
    logs "[dbd:crit] AH00636: child init failed!" whenever a child cannot open
    its pool; that line is declared, everything else is checked as usual."""
    def factory(name, body, **kw):
        s = make_httpd(name, body, **kw)
        s.expect_error(DBD_CHILD_INIT_CRIT.pattern)
        return s

    return factory


def with_static_file(server):
    htdocs = os.path.join(server.dir, "htdocs")
    os.mkdir(htdocs)
    with open(os.path.join(htdocs, "hello.txt"), "w") as f:
        f.write("hello\n")
    os.chmod(htdocs, 0o755)


def new_access_lines(server, before, timeout=5):
    """Access-log lines written after the first `before` ones (bounded poll:
    they are written after the reply)."""
    deadline = time.time() + timeout
    while True:
        lines = server.access_lines()[before:]
        if lines or time.time() > deadline:
            return lines
        time.sleep(0.05)


# -- the database is unreachable -------------------------------------------------

def test_unreachable_database_answers_500_without_detail_and_server_keeps_serving(dbd_down_httpd):
    s = dbd_down_httpd("unreachable", CONTRACT_LOCATION + STATIC_LOCATION, db=False)
    with_static_file(s)
    # DBDParams names a file in a directory that does not exist: SQLite
    # cannot create it (a missing file alone would be created, empty).
    shutil.rmtree(s.db_dir)
    for p in (DBD_CONNECT, DBD_INIT, K2_NO_CONNECTION):
        s.expect_error(p)
    s.start()

    first, second = notification(), notification(amount="20.50")
    for n in (first, second):
        off = s.log_offset()
        r = s.post(n)
        assert (r.status_code, r.headers["Content-Type"], r.text) == (
            500, "application/json", INTERNAL_ERROR)
        lines = s.wait_log(r"\[k2notify:error\] .*k2_transaction_id="
                           + n["k2_transaction_id"] + " ", offset=off)
        assert len(lines) == 1
        assert re.search(K2_NO_CONNECTION, lines[0]), lines[0]
        assert f"ac_no={ACCOUNT} outcome=error:" in lines[0]
        # mod_dbd's own error explains why, before the module's line.
        assert any(re.search(DBD_CONNECT, l) for l in s.error_lines_since(off))
        e = wait_access(s, n["k2_transaction_id"])
        assert [x[0] for x in e] == ["500"]
        assert e[0][5:8] == ["", "error", "k2login"]

    # Nothing about the database reaches the client, and the server still
    # answers what does not need the database.
    r = requests.get(s.base + "/hello.txt", timeout=10)
    assert (r.status_code, r.text) == (200, "hello\n")
    r = s.post(notification(), method="GET")
    assert (r.status_code, r.headers["Allow"]) == (405, "POST")
    assert not os.path.exists(s.db_dir)


def test_database_read_only_to_httpd_answers_500_and_records_nothing(dbd_down_httpd):
    s = dbd_down_httpd("read-only", CONTRACT_LOCATION)
    os.chmod(s.db, 0o444)
    os.chmod(s.db_dir, 0o555)
    for p in (DBD_PREPARE_RO, DBD_INIT, K2_NO_CONNECTION):
        s.expect_error(p)
    s.start()

    n = notification()
    off = s.log_offset()
    r = s.post(n)
    assert (r.status_code, r.headers["Content-Type"], r.text) == (
        500, "application/json", INTERNAL_ERROR)
    assert len(s.wait_log(K2_NO_CONNECTION, offset=off)) == 1
    assert any(re.search(DBD_PREPARE_RO, l) for l in s.error_lines_since(0))

    unknown = notification(ac_no="NOSUCH")
    r = s.post(unknown)
    assert (r.status_code, r.text) == (500, INTERNAL_ERROR)

    s.stop()
    # Reading a WAL database needs write access to its -shm file: only root
    # can read it back while it is read-only.
    os.chmod(s.db_dir, 0o755)
    os.chmod(s.db, 0o644)
    assert s.rows(n["k2_transaction_id"]) == []
    assert s.count() == 0


# A write on a connection SQLite opened read-only, and what the module does.
BEGIN_READ_ONLY = (r"\[k2notify:error\] .* notification k2_transaction_id=\S+ "
                   r"ac_no=\S+ outcome=error: BEGIN IMMEDIATE failed \(\d+\): "
                   r"attempt to write a readonly database$")
REOPENED_READ_ONLY = (r"\[k2notify:warn\] .*: SQLite had opened this database "
                      r"connection read-only \(its files were not all writable "
                      r"by the httpd user when it opened\): opened again on ")


@pytest.mark.parametrize("name,refused", [("k2.db-wal", BEGIN_READ_ONLY),
                                          ("k2.db", RECORD_READ_ONLY)],
                         ids=["wal", "database-file"])
def test_connection_opened_read_only_is_opened_again_once_its_files_are_writable(
        make_httpd, name, refused):
    """A file of the database the httpd user cannot write when its connection
    opens (its -wal: a program run as root created it, and the instant before
    SQLite gives it to the database's owner is enough, as a CI run found; or
    the database file, chmod) makes SQLite open the connection read-only,
    for good, and mod_dbd pools it.  While the file stays so, notifications
    get 500 (BEGIN IMMEDIATE refused, or the record statement) and nothing
    is recorded; once it is writable, the next notification is 01 on a
    connection opened again, with no graceful."""
    s = make_httpd("read-only-" + name, ONE_CONNECTION + CONTRACT_LOCATION)
    path = os.path.join(s.db_dir, name)
    if not os.path.exists(path):
        open(path, "w").close()
    os.chmod(path, 0o444)               # root's or not, httpd cannot write it
    s.expect_error(refused)
    s.start()
    refused_ids = []
    start = s.log_offset()
    for _ in range(2):
        n = notification()
        off = s.log_offset()
        r = s.post(n)
        assert (r.status_code, r.text) == (500, INTERNAL_ERROR)
        assert s.wait_log(refused, offset=off)
        refused_ids.append(n["k2_transaction_id"])
    assert s.wait_log(REOPENED_READ_ONLY, offset=start)
    # (no read of the database meanwhile: this process may be root, and its
    # connection, closing last, would remove the -wal file)
    # as an admin would: SQLite made the -shm with the database file's mode
    user = run_user()
    for f in os.listdir(s.db_dir):
        if user:
            os.chown(os.path.join(s.db_dir, f), user.pw_uid, user.pw_gid)
        os.chmod(os.path.join(s.db_dir, f), 0o644)
    off = s.log_offset()
    n = notification()
    assert s.post(n).text == ACCEPTED
    assert s.wait_log(REOPENED_READ_ONLY, offset=off)
    assert [r["amount"] for r in s.rows(n["k2_transaction_id"])] == ["1500"]
    assert s.post(notification()).text == ACCEPTED
    assert s.count() == 2
    assert [s.rows(t) for t in refused_ids] == [[], []]


def child_fd_dirs(server):
    return [f"/proc/{pid}/fd" for pid in children(parent_pid(server))]


def test_connection_opened_read_only_at_startup_writes_the_first_notification_once_its_files_are_writable(make_httpd):
    """The CI run's case: the connection a child opened at startup is
    read-only (its -wal was not writable then), and the file is writable by
    the first notification: BEGIN IMMEDIATE is refused, the connection is
    opened again at once, and that notification is 01."""
    s = make_httpd("wal-read-only-at-start", ONE_CONNECTION + CONTRACT_LOCATION)
    wal = s.db + "-wal"
    open(wal, "w").close()
    os.chmod(wal, 0o444)
    s.start()
    # the child's pooled connection has the -wal open (read-only) ...
    deadline = time.time() + 10
    while not any(os.path.realpath(os.path.join(fds, fd)) == wal
                  for fds in child_fd_dirs(s) for fd in os.listdir(fds)):
        assert time.time() < deadline, "no child opened the -wal file"
        time.sleep(0.05)
    # ... before it is made writable
    user = run_user()
    if user:
        os.chown(wal, user.pw_uid, user.pw_gid)
    os.chmod(wal, 0o644)
    off = s.log_offset()
    n = notification()
    assert s.post(n).text == ACCEPTED
    assert s.wait_log(r"\[k2notify:warn\] .* BEGIN IMMEDIATE failed \(\d+\): "
                      r"attempt to write a readonly database: " + REOPENED_READ_ONLY[
                          len(r"\[k2notify:warn\] .*: "):], offset=off)
    assert [r["amount"] for r in s.rows(n["k2_transaction_id"])] == ["1500"]


# -- a statement fails at run time --------------------------------------------------

def test_failing_record_statement_answers_500_logs_database_message_and_next_notification_gets_01(k2):
    k2.expect_error(r"\[k2notify:error\] .*outcome=error: K2NotifyRecordQuery "
                    r"failed \(\d+\): k2_refused accepts nothing")
    n = notification()
    off = k2.log_offset()
    r = k2.post(n, path="/k2/failing")
    assert (r.status_code, r.headers["Content-Type"], r.text) == (
        500, "application/json", INTERNAL_ERROR)

    lines = k2.wait_log(r"\[k2notify:error\] .*k2_transaction_id="
                        + n["k2_transaction_id"] + " ", offset=off)
    assert len(lines) == 1
    assert re.search(r"\[k2notify:error\] .* notification k2_transaction_id="
                     + n["k2_transaction_id"] + f" ac_no={ACCOUNT} outcome=error: "
                     r"K2NotifyRecordQuery failed \(\d+\): k2_refused accepts nothing$",
                     lines[0]), lines[0]
    assert k2.query("SELECT count(*) FROM k2_refused") == [(0,)]
    assert k2.rows(n["k2_transaction_id"]) == []
    e = wait_access(k2, n["k2_transaction_id"])
    assert [x[0] for x in e] == ["500"] and e[0][5:7] == ["", "error"]

    # The connection that saw the failure goes back to the pool: the next
    # good notifications (some on it) are recorded.
    for _ in range(5):
        good = notification()
        r = k2.post(good)
        assert (r.status_code, r.text) == (200, ACCEPTED)
        assert len(k2.rows(good["k2_transaction_id"])) == 1


def test_account_query_failing_at_run_time_answers_500_never_01_or_02_even_after_a_first_row(make_httpd):
    # abs() of the smallest integer is SQLite's run-time "integer overflow":
    # here it fires on the row ZZ only, so a query for A123333 (rows A123333,
    # then ZZ) fails after its first row and a query for NOPE (row ZZ) fails
    # before any, while a query for ZZZ (no row) succeeds.
    s = make_httpd("account-fails", """
<Location /k2/notify>
    SetHandler k2notify
""" + AUTH + """
    K2NotifyAccountQuery "SELECT ac_no FROM accounts WHERE ac_no >= %s AND abs(CASE WHEN ac_no = 'ZZ' THEN -9223372036854775808 ELSE 1 END) > 0 ORDER BY ac_no"
    K2NotifyRecordQuery "INSERT INTO k2_transactions (k2_transaction_id, ac_no, amount, currency) VALUES (%s, %s, %s, %s) ON CONFLICT (k2_transaction_id) DO NOTHING" k2_transaction_id ac_no amount currency
</Location>
""", accounts=(ACCOUNT, "ZZ"))
    failed = (r"\[k2notify:error\] .* outcome=error: K2NotifyAccountQuery failed "
              r"\(\d+\): integer overflow$")
    s.expect_error(failed)
    s.start()

    for ac in (ACCOUNT, "NOPE"):
        n = notification(ac_no=ac)
        off = s.log_offset()
        r = s.post(n)
        assert (r.status_code, r.headers["Content-Type"], r.text) == (
            500, "application/json", INTERNAL_ERROR)
        lines = s.wait_log(r"k2_transaction_id=" + n["k2_transaction_id"] + " ",
                           offset=off)
        assert len(lines) == 1 and re.search(failed, lines[0]), lines
        assert f" ac_no={ac} outcome=error" in lines[0]
        e = wait_access(s, n["k2_transaction_id"])
        assert [x[0] for x in e] == ["500"] and e[0][5:7] == ["", "error"]

    # The statement was reset: the same query without the failing row works.
    r = s.post(notification(ac_no="ZZZ"))
    assert (r.status_code, r.text) == (200, ACCOUNT_NOT_FOUND)
    assert s.count() == 0


# -- K2NotifyRequireUser ------------------------------------------------------------

def test_location_without_authentication_answers_500_and_records_nothing(k2):
    k2.expect_error(r"\[k2notify:error\] .*outcome=error: this location has no "
                    r"authentication")
    n = notification()
    off = k2.log_offset()
    # K2 sends its credentials, but nothing in the location checks them.
    before = len(k2.access_lines())
    r = k2.post(n, path="/k2/noauth")
    assert (r.status_code, r.headers["Content-Type"], r.text) == (
        500, "application/json", INTERNAL_ERROR)
    lines = k2.wait_log(r"\[k2notify:error\] .*outcome=error: this location "
                        r"has no authentication", offset=off)
    assert len(lines) == 1
    assert re.search(r"\(no user was authenticated\): add 'AuthType Basic' and "
                     r"'Require valid-user', set K2NotifySignatureKeyFile, or "
                     r"set K2NotifyRequireUser Off$", lines[0]), lines[0]
    assert k2.rows(n["k2_transaction_id"]) == []
    new = new_access_lines(k2, before)
    assert len(new) == 1
    # The body is parsed before the 500: the audit trail names the payment.
    assert f"k2_transaction_id={n['k2_transaction_id']} ac_no={ACCOUNT} " in lines[0]
    assert new[0] == (f"500 {n['k2_transaction_id']}|{ACCOUNT}|1500|KES||error|-|"
                      "POST /k2/noauth HTTP/1.1"), new[0]


def test_require_user_off_accepts_without_authentication_and_records_null_remote_user(k2):
    n = notification()
    r = k2.post(n, path="/k2/open", auth=None)
    assert (r.status_code, r.headers["Content-Type"], r.text) == (
        200, "application/json", ACCEPTED)
    rows = k2.rows(n["k2_transaction_id"])
    assert [(x["ac_no"], x["amount"], x["currency"], x["remote_user"])
            for x in rows] == [(ACCOUNT, "1500", "KES", None)]
    e = wait_access(k2, n["k2_transaction_id"])
    assert e[0][0] == "200" and e[0][5:8] == ["01", "accepted", "-"]


# -- misconfigured or lookup-only locations ----------------------------------------

def test_location_without_account_query_answers_500_naming_the_directive(k2):
    k2.expect_error(r"\[k2notify:error\] .*outcome=error: this location has "
                    r"'SetHandler k2notify' but no K2NotifyAccountQuery")
    n = notification()
    off = k2.log_offset()
    before = len(k2.access_lines())
    r = k2.post(n, path="/k2/noquery")
    assert (r.status_code, r.headers["Content-Type"], r.text) == (
        500, "application/json", INTERNAL_ERROR)
    lines = k2.wait_log(r"\[k2notify:error\] .*outcome=error: ", offset=off)
    assert len(lines) == 1
    assert lines[0].endswith("outcome=error: this location has 'SetHandler "
                             "k2notify' but no K2NotifyAccountQuery"), lines[0]
    assert k2.rows(n["k2_transaction_id"]) == []
    new = new_access_lines(k2, before)
    assert len(new) == 1
    assert f"k2_transaction_id={n['k2_transaction_id']} ac_no={ACCOUNT} " in lines[0]
    assert new[0] == (f"500 {n['k2_transaction_id']}|{ACCOUNT}|1500|KES||error|"
                      "k2login|POST /k2/noquery HTTP/1.1"), new[0]


def test_lookup_only_location_answers_01_for_known_and_02_for_unknown_accounts_recording_nothing(k2):
    known = notification()
    r = k2.post(known, path="/k2/lookup")
    assert (r.status_code, r.headers["Content-Type"], r.text) == (
        200, "application/json", ACCEPTED)
    assert k2.rows(known["k2_transaction_id"]) == []
    assert wait_access(k2, known["k2_transaction_id"])[0][5:7] == ["01", "accepted"]

    # Sent again: still 01 (no record statement, so never a duplicate).
    r = k2.post(known, path="/k2/lookup")
    assert (r.status_code, r.text) == (200, ACCEPTED)
    assert [x[6] for x in wait_access(k2, known["k2_transaction_id"], n=2)] == [
        "accepted", "accepted"]

    unknown = notification(ac_no="Z999999")
    r = k2.post(unknown, path="/k2/lookup")
    assert (r.status_code, r.text) == (200, ACCOUNT_NOT_FOUND)
    assert k2.rows(unknown["k2_transaction_id"]) == []
    assert wait_access(k2, unknown["k2_transaction_id"])[0][5:7] == [
        "02", "account_not_found"]
    assert k2.query("SELECT count(*) FROM k2_transactions WHERE "
                    "k2_transaction_id IN (?, ?)", known["k2_transaction_id"],
                    unknown["k2_transaction_id"]) == [(0,)]


# -- the schema changes under a running server ---------------------------------------

def test_schema_change_while_running_keeps_answering_01(make_httpd):
    """apr-util's sqlite3 driver prepares with the legacy sqlite3_prepare():
    after any schema change its statements fail for good ("database schema
    has changed", then "not an error").  The module prepares them again on
    that connection and retries, so a sysadmin's CREATE TABLE never turns
    payments into 500s."""
    s = make_httpd("schema", CONTRACT_LOCATION)
    s.start()
    warm = [notification() for _ in range(8)]
    for n in warm:       # every child and pooled connection prepares its statements
        assert s.post(n).text == ACCEPTED
    off = s.log_offset()
    con = sqlite3.connect(s.db, timeout=10)
    con.execute("CREATE TABLE added_by_the_sysadmin (x TEXT)")
    con.commit()
    con.close()
    after = [notification() for _ in range(20)]
    replies = [s.post(n) for n in after]
    assert [(r.status_code, r.text) for r in replies] == [(200, ACCEPTED)] * 20
    for n in after:
        assert len(s.rows(n["k2_transaction_id"])) == 1
    assert s.count() == 28
    lost = s.wait_log(r"\[k2notify:warn\] .*database schema has changed; the "
                      r"connection's prepared statements expired \(the "
                      r"database schema changed\): \d+ prepared again, "
                      r"running the statement again", off)
    assert lost, s.error_lines_since(off)
    assert not [l for l in s.error_lines_since(off) if ":error]" in l]


# -- SQLite: statements that expire or return rows (issue 9) ---------------------

DUPLICATE_LOCATION = CONTRACT_LOCATION.replace(
    "    K2NotifyCurrencies KES\n",
    '    K2NotifyDuplicateQuery "SELECT ac_no, amount FROM k2_transactions '
    'WHERE k2_transaction_id = %s"\n    K2NotifyCurrencies KES\n')


def sqlite_exec(server, sql):
    con = sqlite3.connect(server.db, timeout=10)
    try:
        con.executescript(sql)
    finally:
        con.close()


def test_resend_after_a_schema_change_is_checked_by_the_duplicate_query_prepared_again(make_httpd):
    """K2NotifyDuplicateQuery expires with the others: a resend after a
    CREATE TABLE is still 01 duplicate (and another amount still 03)."""
    s = make_httpd("dup-schema", ONE_CONNECTION + DUPLICATE_LOCATION).start()
    n = notification()
    assert s.post(n).text == ACCEPTED
    sqlite_exec(s, "CREATE TABLE added_by_the_sysadmin (x TEXT)")
    assert s.post(n).text == ACCEPTED
    sqlite_exec(s, "DROP TABLE added_by_the_sysadmin")
    assert s.post(dict(n, amount="1.00")).text == (
        '{"status":"03","description":"Invalid Payment"}')
    assert [e[6] for e in wait_access(s, n["k2_transaction_id"], n=3)] == [
        "accepted", "duplicate", "conflict"]
    assert len(s.rows(n["k2_transaction_id"])) == 1
    s.expect_error(r"\[k2notify:error\] .*outcome=conflict: ")


def test_statement_whose_preparation_failed_is_prepared_again_at_its_next_use(make_httpd):
    """The table of the record statement disappears for a while: its
    statement cannot be prepared again (500, nothing recorded, the reason in
    the log) and stays expired, while the account query, prepared again,
    works.  At its next use the expired statement says "not an error" (with
    SQLITE_ERROR): the module must read that as expired too and prepare it
    again, as it does once the table is back."""
    s = make_httpd("reprepare-fails", ONE_CONNECTION + CONTRACT_LOCATION)
    s.expect_error(r"\[k2notify:error\] .*cannot prepare the K2NotifyRecordQuery "
                   r"statement again \(1\): no such table: k2_transactions")
    s.expect_error(r"\[k2notify:error\] .*outcome=error: K2NotifyRecordQuery "
                   r"failed \(1\): not an error$")
    s.start()
    assert s.post(notification()).text == ACCEPTED

    sqlite_exec(s, "ALTER TABLE k2_transactions RENAME TO k2_moved")
    gone = [notification(), notification()]
    r = s.post(gone[0])                 # expired: "database schema has changed"
    assert (r.status_code, r.text) == (500, INTERNAL_ERROR)
    off = s.log_offset()
    r = s.post(gone[1])                 # still expired: "not an error"
    assert (r.status_code, r.text) == (500, INTERNAL_ERROR)
    assert s.wait_log(r"\[k2notify:warn\] .*K2NotifyRecordQuery failed \(1\): "
                      r"not an error; the connection's prepared statements "
                      r"expired \(the database schema changed\): \d+ prepared "
                      r"again, running the statement again", off), \
        s.error_lines_since(off)

    sqlite_exec(s, "ALTER TABLE k2_moved RENAME TO k2_transactions")
    back = notification()
    assert s.post(back).text == ACCEPTED
    assert len(s.rows(back["k2_transaction_id"])) == 1
    assert [s.rows(n["k2_transaction_id"]) for n in gone] == [[], []]


def test_record_statement_that_returns_a_row_is_an_error_and_runs_once(make_httpd):
    """configtest refuses RETURNING; a record statement that returns rows
    some other way (here a SELECT) is answered 500 at run time: SQLite says
    SQLITE_ROW ("not an error"), which is neither an expired statement nor
    a success, so it is neither run again nor answered 01."""
    s = make_httpd("returns-row", ONE_CONNECTION + """
<Location /k2/notify>
    SetHandler k2notify
""" + AUTH + """
    K2NotifyAccountQuery "SELECT ac_no FROM accounts WHERE ac_no = %s"
    K2NotifyRecordQuery "SELECT %s, %s" k2_transaction_id ac_no
</Location>
""")
    s.expect_error(r"\[k2notify:error\] .*outcome=error: K2NotifyRecordQuery "
                   r"returned a row: a record statement must not return rows; "
                   r"what it did is rolled back$")
    s.start()
    n = notification()
    r = s.post(n)
    assert (r.status_code, r.text) == (500, INTERNAL_ERROR)
    assert "prepared again" not in s.errors_text()


def test_largest_accepted_amount_is_held_by_the_shipped_sqlite_schema(k2):
    n = notification(amount="999999999999999.99")
    assert k2.post(n).text == ACCEPTED
    assert k2.post(n).text == ACCEPTED
    assert [r["amount"] for r in k2.rows(n["k2_transaction_id"])] == [
        "999999999999999.99"]
    assert [e[6] for e in wait_access(k2, n["k2_transaction_id"], n=2)] == [
        "accepted", "duplicate"]
