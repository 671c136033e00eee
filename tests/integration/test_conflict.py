"""Conflicting duplicates (issue 5): K2NotifyDuplicateQuery tells a true
resend (01, outcome duplicate) from another payment that reuses a recorded
k2_transaction_id with another account or amount (03, outcome conflict,
an error-log line naming the transaction, the stored row untouched).
On SQLite, on PostgreSQL (whose numeric column gives back "1500.00") and on
MariaDB (whose driver reads rows only by number in a random-access result:
issue 16)."""
import decimal
import re

import pytest

from conftest import ACCOUNT, AUTH, notification, wait_access
from myserver import MariaDB
from pgserver import Postgres

ACCEPTED = '{"status":"01","description":"Accepted"}'
INVALID = '{"status":"03","description":"Invalid Payment"}'
OTHER_ACCOUNT = "B777"

LOCATION = """
<Location /k2/notify>
    SetHandler k2notify
""" + AUTH + """
    K2NotifyAccountQuery "SELECT ac_no FROM accounts WHERE ac_no = %s"
    K2NotifyRecordQuery "INSERT INTO k2_transactions (k2_transaction_id, ac_no, amount, currency) VALUES (%s, %s, {amount}, %s) ON CONFLICT (k2_transaction_id) DO NOTHING" k2_transaction_id ac_no amount currency
    K2NotifyDuplicateQuery "SELECT ac_no, amount FROM k2_transactions WHERE k2_transaction_id = %s"
</Location>
<Location /k2/plain>
    SetHandler k2notify
""" + AUTH + """
    K2NotifyAccountQuery "SELECT ac_no FROM accounts WHERE ac_no = %s"
    K2NotifyRecordQuery "INSERT INTO k2_transactions (k2_transaction_id, ac_no, amount, currency) VALUES (%s, %s, {amount}, %s) ON CONFLICT (k2_transaction_id) DO NOTHING" k2_transaction_id ac_no amount currency
</Location>
"""

CONFLICT_LINE = (r"\[k2notify:error\] .* notification k2_transaction_id={id} "
                 r"ac_no={ac} outcome=conflict: this transaction id is already "
                 r"recorded with ac_no={stored_ac} amount={stored_amount}$")


@pytest.fixture(scope="module")
def pg():
    server = Postgres("pg-conflict", accounts=(ACCOUNT, OTHER_ACCOUNT))
    yield server
    server.cleanup()


@pytest.fixture(scope="module")
def my():
    server = MariaDB("my-conflict", accounts=(ACCOUNT, OTHER_ACCOUNT))
    yield server
    server.cleanup()


def make_node(request, make_httpd):
    if request.param == "mysql":
        # no ON CONFLICT; and /k2/plain, without K2NotifyDuplicateQuery, is
        # refused by configtest on mysql (test_mysql_config.py)
        loc = LOCATION[:LOCATION.index("<Location /k2/plain>")].replace(
            "ON CONFLICT (k2_transaction_id) DO NOTHING",
            "ON DUPLICATE KEY UPDATE k2_transaction_id = k2_transaction_id")
        s = make_httpd("conflict-my", loc.replace("{amount}", "%s"),
                       mysql=request.getfixturevalue("my"))
        s.stored = lambda amount: decimal.Decimal(amount)
        s.shown = lambda amount: f"{decimal.Decimal(amount):.2f}"
    elif request.param == "pgsql":
        pg = request.getfixturevalue("pg")
        s = make_httpd("conflict-pg", LOCATION.replace("{amount}", "CAST(%s AS numeric)"),
                       pgsql=pg)
        s.stored = lambda amount: decimal.Decimal(amount)
        s.shown = lambda amount: f"{decimal.Decimal(amount):.2f}"
    else:
        s = make_httpd("conflict", LOCATION.replace("{amount}", "%s"),
                       accounts=(ACCOUNT, OTHER_ACCOUNT))
        s.stored = lambda amount: amount
        s.shown = lambda amount: amount
    s.expect_error(r"outcome=conflict: this transaction id is already recorded")
    return s.start()


@pytest.fixture(params=["sqlite", "pgsql", "mysql"])
def node(request, make_httpd):
    return make_node(request, make_httpd)


@pytest.fixture(params=["sqlite", "pgsql"])
def proving_node(request, make_httpd):
    """A node whose 0-row result proves a resend (ON CONFLICT names the key)."""
    return make_node(request, make_httpd)


def test_true_resend_is_01_duplicate_even_written_differently(node):
    n = notification(amount="1500")
    assert node.post(n).text == ACCEPTED
    assert node.post(n).text == ACCEPTED
    # The same amount with trailing zeros is the same payment.
    assert node.post(dict(n, amount="1500.00")).text == ACCEPTED
    rows = node.rows(n["k2_transaction_id"])
    assert [(r["ac_no"], r["amount"]) for r in rows] == [(ACCOUNT, node.stored("1500"))]
    assert [e[6] for e in wait_access(node, n["k2_transaction_id"], n=3)] == [
        "accepted", "duplicate", "duplicate"]


@pytest.mark.parametrize("change", ["amount", "ac_no"])
def test_resend_with_another_account_or_amount_is_03_conflict(node, change):
    n = notification(amount="1500")
    assert node.post(n).text == ACCEPTED
    off = node.log_offset()
    other = dict(n, **({"amount": "1501"} if change == "amount"
                       else {"ac_no": OTHER_ACCOUNT}))
    r = node.post(other)
    assert (r.status_code, r.headers["Content-Type"], r.text) == (
        200, "application/json", INVALID)
    # The stored payment is untouched, and nothing else was recorded.
    rows = node.rows(n["k2_transaction_id"])
    assert [(r["ac_no"], r["amount"]) for r in rows] == [(ACCOUNT, node.stored("1500"))]
    lines = node.wait_log(r"outcome=conflict", off)
    assert len(lines) == 1 and re.search(CONFLICT_LINE.format(
        id=n["k2_transaction_id"], ac=other["ac_no"], stored_ac=ACCOUNT,
        stored_amount=re.escape(node.shown("1500"))), lines[0]), lines
    e = wait_access(node, n["k2_transaction_id"], n=2)
    assert [x[5:7] for x in e] == [["01", "accepted"], ["03", "conflict"]]


def test_without_duplicate_query_a_changed_resend_stays_01_duplicate(proving_node):
    node = proving_node
    n = notification(amount="1500")
    assert node.post(n, path="/k2/plain").text == ACCEPTED
    assert node.post(dict(n, amount="1501"), path="/k2/plain").text == ACCEPTED
    rows = node.rows(n["k2_transaction_id"])
    assert [(r["ac_no"], r["amount"]) for r in rows] == [(ACCOUNT, node.stored("1500"))]
    assert [e[6] for e in wait_access(node, n["k2_transaction_id"], n=2)] == [
        "accepted", "duplicate"]


def test_duplicate_query_configuration_mistakes_fail_configtest(make_httpd):
    for sql, fields, complaint in [
        ("SELECT ac_no, amount FROM k2_transactions WHERE k2_transaction_id = %s AND ac_no = %s",
         "", "the SQL has 2 %s placeholders but 1 field is bound to them"),
        ("SELECT ac_no, amount FROM k2_transactions WHERE k2_transaction_id = %s",
         " txid", "unknown field 'txid'"),
    ]:
        s = make_httpd("conflict-conf", f"""
<Location /k2/notify>
    SetHandler k2notify
    K2NotifyAccountQuery "SELECT ac_no FROM accounts WHERE ac_no = %s"
    K2NotifyDuplicateQuery "{sql}"{fields}
</Location>
""")
        rc, out = s.configtest()
        assert rc != 0 and f"K2NotifyDuplicateQuery: {complaint}" in out, out


@pytest.mark.parametrize("stored,resent", [("1500.5", "1500.55"), ("1500", "1500.05")])
def test_resend_with_more_cents_than_stored_is_03_conflict(node, stored, resent):
    """The stored amount's decimals begin the resent one's, but it has more
    (PostgreSQL gives 1500.5 back as 1500.50, 1500 as 1500.00): another
    payment, not a resend."""
    n = notification(amount=stored)
    assert node.post(n).text == ACCEPTED
    off = node.log_offset()
    r = node.post(dict(n, amount=resent))
    assert (r.status_code, r.text) == (200, INVALID)
    rows = node.rows(n["k2_transaction_id"])
    assert [(r["ac_no"], r["amount"]) for r in rows] == [(ACCOUNT, node.stored(stored))]
    lines = node.wait_log(r"outcome=conflict", off)
    assert len(lines) == 1 and re.search(CONFLICT_LINE.format(
        id=n["k2_transaction_id"], ac=ACCOUNT, stored_ac=ACCOUNT,
        stored_amount=re.escape(node.shown(stored))), lines[0]), lines
    assert [e[6] for e in wait_access(node, n["k2_transaction_id"], n=2)] == [
        "accepted", "conflict"]
