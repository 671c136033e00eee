"""PostgreSQL: what the module does when a statement fails (issue 9).

A restarted server closes the pooled connections; apr-util's pgsql driver
reopens a connection without a word, and the new session has none of the
prepared statements.  The module notices without reading the server's
message (it follows lc_messages), by asking the session which statements it
has, prepares every missing one of this server (every <Location>'s), and
runs again only what is safe: a query, or a write the session provably
never ran.  A statement that fails by itself (a constraint, a value the
column cannot hold) is not run again.
"""
import decimal
import os
import re
import shutil
import subprocess
import tempfile

import pytest

from conftest import ACCOUNT, AUTH, ONE_CONNECTION, notification, wait_access
from pgserver import Postgres
from test_pgsql import ACCEPTED, INTERNAL_ERROR, count_ids, pg_node

ACCOUNT_SQL = "SELECT ac_no FROM accounts WHERE ac_no = %s"
RECORD_SQL = ("INSERT INTO k2_transactions (k2_transaction_id, ac_no, amount, "
              "currency) VALUES (%s, %s, CAST(%s AS numeric), %s) ON CONFLICT "
              "(k2_transaction_id) DO NOTHING")
FIELDS = "k2_transaction_id ac_no amount currency"
DUPLICATE_SQL = ("SELECT ac_no, amount FROM k2_transactions WHERE "
                 "k2_transaction_id = %s")


@pytest.fixture(scope="module")
def pg():
    server = Postgres("pgrepair", accounts=(ACCOUNT,))
    server.execute("""
        CREATE TABLE k2_b_transactions (k2_transaction_id text PRIMARY KEY,
                                        ac_no text NOT NULL);
        CREATE SEQUENCE k2_attempts;
        CREATE TABLE k2_refused (k2_transaction_id text);
        CREATE FUNCTION k2_refuse() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            PERFORM nextval('k2_attempts');
            RAISE EXCEPTION 'k2_refused accepts nothing';
        END $$;
        CREATE TRIGGER k2_refuse BEFORE INSERT ON k2_refused
            FOR EACH ROW EXECUTE FUNCTION k2_refuse();
        """, user="k2notify")
    yield server
    server.cleanup()


def node(make_httpd, pg, name, body):
    return make_httpd(name, ONE_CONNECTION + body, pgsql=pg).start()


def test_nested_location_statements_are_prepared_again_after_a_restart(make_httpd, pg):
    """Defect 1: /k2 and /k2/b share one connection; /k2/b has a record
    statement of its own.  After a restart, whichever location comes first
    must not leave the other one failing for good ("already exists")."""
    s = node(make_httpd, pg, "nested-restart", f"""
<Location /k2>
    SetHandler k2notify
{AUTH}
    K2NotifyAccountQuery "{ACCOUNT_SQL}"
    K2NotifyRecordQuery "{RECORD_SQL}" {FIELDS}
</Location>
<Location /k2/b>
    K2NotifyRecordQuery "INSERT INTO k2_b_transactions (k2_transaction_id, ac_no) VALUES (%s, %s) ON CONFLICT (k2_transaction_id) DO NOTHING" k2_transaction_id ac_no
</Location>
""")
    first = [notification(), notification()]
    assert s.post(first[0], path="/k2/a").text == ACCEPTED
    assert s.post(first[1], path="/k2/b").text == ACCEPTED

    pg.restart()

    a = notification()
    assert s.post(a, path="/k2/a").text == ACCEPTED
    bs = [notification() for _ in range(3)]
    replies = [s.post(n, path="/k2/b") for n in bs]
    assert [(r.status_code, r.text) for r in replies] == [(200, ACCEPTED)] * 3
    assert count_ids(pg, [a["k2_transaction_id"]]) == {a["k2_transaction_id"]: 1}
    assert sorted(r[0] for r in pg.query(
        "SELECT k2_transaction_id FROM k2_b_transactions WHERE "
        "k2_transaction_id = ANY(?)", [n["k2_transaction_id"] for n in bs])) == \
        sorted(n["k2_transaction_id"] for n in bs)
    assert "already exists" not in s.errors_text()


def test_duplicate_query_is_prepared_again_after_a_restart(make_httpd, pg):
    """A resend after a restart needs K2NotifyDuplicateQuery on the new
    session too: 01 duplicate, not 500."""
    s = node(make_httpd, pg, "dup-restart", f"""
<Location /k2/notify>
    SetHandler k2notify
{AUTH}
    K2NotifyAccountQuery "{ACCOUNT_SQL}"
    K2NotifyRecordQuery "{RECORD_SQL}" {FIELDS}
    K2NotifyDuplicateQuery "{DUPLICATE_SQL}"
</Location>
""")
    n = notification()
    assert s.post(n).text == ACCEPTED
    pg.restart()
    assert s.post(n).text == ACCEPTED
    conflicting = dict(n, amount="1.00")
    assert s.post(conflicting).text == '{"status":"03","description":"Invalid Payment"}'
    assert [e[6] for e in wait_access(s, n["k2_transaction_id"], n=3)] == [
        "accepted", "duplicate", "conflict"]
    assert count_ids(pg, [n["k2_transaction_id"]]) == {n["k2_transaction_id"]: 1}
    s.expect_error(r"\[k2notify:error\] .*outcome=conflict: this transaction id "
                   r"is already recorded with ac_no=A123333 amount=1500.00")


def test_failing_record_statement_runs_once_and_is_not_retried(make_httpd, pg):
    """A statement that fails by itself (here a trigger that counts its runs
    in a sequence, which no rollback undoes) fails again if run again: it
    runs once, 500, and the log says nothing of a retry."""
    s = node(make_httpd, pg, "no-retry", f"""
<Location /k2/notify>
    SetHandler k2notify
{AUTH}
    K2NotifyAccountQuery "{ACCOUNT_SQL}"
    K2NotifyRecordQuery "INSERT INTO k2_refused (k2_transaction_id) VALUES (%s)" k2_transaction_id
</Location>
""")
    s.expect_error(r"\[k2notify:error\] .*outcome=error: K2NotifyRecordQuery "
                   r"failed \(7\): ERROR:  k2_refused accepts nothing")
    before = pg.query("SELECT nextval('k2_attempts')")[0][0]
    r = s.post(notification())
    assert (r.status_code, r.text) == (500, INTERNAL_ERROR)
    after = pg.query("SELECT nextval('k2_attempts')")[0][0]
    assert after - before == 2          # one run of the trigger, one nextval here
    k2lines = [l for l in s.errors_text().splitlines()
               if "[k2notify:" in l and "] mod_k2notify " not in l]
    assert len(k2lines) == 1 and "again" not in k2lines[0], k2lines


def test_largest_accepted_amount_is_held_by_the_shipped_pgsql_schema(make_httpd, pg):
    """Defect 5: the module accepts 15 integer digits and 2 decimals; the
    shipped schema must hold them (numeric(14,2) overflowed: 500 forever)."""
    s = pg_node(make_httpd, pg, "pg-largest").start()
    n = notification(amount="999999999999999.99")
    assert s.post(n).text == ACCEPTED
    assert s.post(n).text == ACCEPTED   # the resend: duplicate
    assert [r["amount"] for r in pg.rows(n["k2_transaction_id"])] == [
        decimal.Decimal("999999999999999.99")]
    assert [e[6] for e in wait_access(s, n["k2_transaction_id"], n=2)] == [
        "accepted", "duplicate"]


# -- a server whose messages are not in English --------------------------------------

@pytest.fixture(scope="module")
def german_pg():
    """PostgreSQL answering in German (lc_messages of the module's role).
    The locale is compiled into a private directory (LOCPATH): the system's
    locales are left alone."""
    locales = tempfile.mkdtemp(prefix="k2notify-locales-")
    os.chmod(locales, 0o755)
    subprocess.run(["localedef", "-i", "de_DE", "-f", "UTF-8",
                    os.path.join(locales, "de_DE.UTF-8")], check=True,
                   capture_output=True)
    server = Postgres("pgde", accounts=(ACCOUNT,), locale_dir=locales)
    server.execute("ALTER ROLE k2notify SET lc_messages = 'de_DE.UTF-8'",
                   db="postgres")
    yield server
    server.cleanup()
    shutil.rmtree(locales, ignore_errors=True)


def test_restart_of_a_server_that_answers_in_german_is_invisible_to_k2(make_httpd, german_pg):
    """Defect 2: recovery must not depend on the language of a message."""
    pg = german_pg
    con = pg.connect(user="k2notify")
    try:
        with con.cursor() as cur:
            with pytest.raises(Exception) as e:
                cur.execute("SELECT * FROM no_such_table")
        assert "FEHLER" in str(e.value), str(e.value)   # the server is German
    finally:
        con.close()

    s = pg_node(make_httpd, pg, "german").start()
    for _ in range(5):
        assert s.post(notification()).text == ACCEPTED
    off = s.log_offset()

    pg.restart()

    after = [notification() for _ in range(20)]
    replies = [s.post(n) for n in after]
    assert [(r.status_code, r.text) for r in replies] == [(200, ACCEPTED)] * 20
    ids = [n["k2_transaction_id"] for n in after]
    assert count_ids(pg, ids) == {i: 1 for i in ids}
    lines = s.error_lines_since(off)
    assert any(re.search(r"\[k2notify:warn\] .*(the database connection had "
                         r"broken and is open again|this database session had "
                         r"lost its prepared statements)", l) for l in lines), lines
    assert not [l for l in lines if ":error]" in l], lines
