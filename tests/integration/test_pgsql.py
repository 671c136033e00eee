"""Scale-out on PostgreSQL: several Apache nodes, one real PostgreSQL server,
every payment recorded exactly once, and a database that restarts under the
running nodes.

The PostgreSQL server is started by the tests (pgserver.py: initdb into a
temporary directory, pg_ctl on a free loopback port, as user postgres); the
nodes run the shipped conf-samples/k2notify-pgsql.conf with only its paths
and DBDParams replaced, so docs/postgresql.md's "Running several nodes" is what runs
here.  Every test asserts on the database rows.
"""
import collections
import concurrent.futures
import datetime
import decimal
import os
import re
import threading
import time

import pytest
import requests

from conftest import (ACCOUNT, PASSWORD, SPEC_BODY, TOP, USER, Httpd, form,
                      notification, wait_access)
from pgserver import Postgres

SAMPLE = os.path.join(TOP, "conf-samples", "k2notify-pgsql.conf")
ACCEPTED = '{"status":"01","description":"Accepted"}'
INTERNAL_ERROR = '{"description":"Internal Server Error"}'

# Two nodes of at most 4 children each: 2 x 4 x DBDMax 8 = 64 connections,
# within max_connections 100 (the sizing rule of the sample's comment).
NODE_MPM = """
StartServers 2
ServerLimit 4
ThreadsPerChild 25
MaxRequestWorkers 100
MinSpareThreads 10
MaxSpareThreads 50
"""

# What mod_dbd and the module log while the database is away.
DB_DOWN_LINES = [
    r"\[dbd:error\] .*AH00629: Can't connect to pgsql",
    r"\[dbd:error\] .*AH00633: failed to initialise",
    r"\[dbd:crit\] .*AH00636: child init failed!",
    r"\[dbd:error\] .*AH00630: DBD \[pgsql\] Error: ",
    r"\[dbd:error\] .*AH00639: DBD \[pgsql\] Error: ",
    r"\[dbd:error\] .*AH02655: Failed to acquire DBD connection from pool!",
    r"\[k2notify:error\] .* outcome=error: ",
]


@pytest.fixture(scope="module")
def pg():
    server = Postgres("pg", accounts=(ACCOUNT,))
    yield server
    server.cleanup()


def pg_node(make_httpd, pg, name):
    """An Apache node running the shipped PostgreSQL sample."""
    s = make_httpd(name, NODE_MPM + "Include {dir}/k2notify-pgsql.conf\n",
                   pgsql=pg)
    with open(SAMPLE) as f:
        sample = f.read()
    params = re.search(r'^\s*DBDParams "([^"]*)"', sample, re.M).group(1)
    sample = (sample.replace(params, pg.dbd_params)
                    .replace("/etc/apache2/k2.htpasswd", s.htpasswd)
                    .replace("${APACHE_LOG_DIR}", s.dir))
    with open(os.path.join(s.dir, "k2notify-pgsql.conf"), "w") as f:
        f.write(sample)
    return s


# The spec's example as a database with typed columns gives it back (the
# sample schemas of PostgreSQL and MySQL), but received_at.
SPEC_ROW_STORED = {
    "k2_transaction_id": "15", "ac_no": ACCOUNT,
    "amount": decimal.Decimal("1500.00"), "currency": "KES",
    "transaction_timestamp": datetime.datetime(2011, 4, 26, 13, 3),
    "k2_account_id": "12", "mm_system_id": "M-PESA",
    "mp_transaction_id": "54445", "biller_number": "888555",
    "transaction_date": "26/4/11", "transaction_time": "1:03 PM",
    "transaction_type": "Paybill", "sender": "0723456789",
    "first_name": "John", "middle_name": "K.", "last_name": "Doe",
    "remote_user": "k2login",
}


def outcomes_of(nodes, ids, expected, timeout=10):
    """The outcomes each id has in the access logs of nodes together, once
    they hold expected lines for ids (they are written after the reply)."""
    want = set(ids)
    deadline = time.time() + timeout
    while True:
        outcomes = collections.defaultdict(list)
        for node in nodes:
            for line in node.access_lines():
                parts = line.split(" ", 1)[1].split("|")
                if parts[0] in want:
                    outcomes[parts[0]].append(parts[5])
        if sum(map(len, outcomes.values())) >= expected or time.time() > deadline:
            return outcomes
        time.sleep(0.1)


def recovery_times(nodes, up, recorded, timeout=30):
    """After the database came back (at up): post to each node until it
    answers 01; every reply before is a 500 that recorded nothing, and the
    01 recorded its row (recorded(ids): {id: rows}).  {node index: seconds}."""
    recovered = {}
    while len(recovered) < len(nodes) and time.time() - up < timeout:
        for i, node in enumerate(nodes):
            if i not in recovered:
                n = notification()
                r = post_close(node, n)
                if r.text == ACCEPTED:
                    recovered[i] = time.time() - up
                    assert recorded([n["k2_transaction_id"]]) == {
                        n["k2_transaction_id"]: 1}
                else:
                    assert (r.status_code, r.text) == (500, INTERNAL_ERROR)
                    assert recorded([n["k2_transaction_id"]]) == {}
        time.sleep(0.1)
    return recovered


def count_ids(pg, ids):
    """How many rows each id has (ids absent from the table are omitted)."""
    rows = pg.query("SELECT k2_transaction_id, count(*) FROM k2_transactions "
                    "WHERE k2_transaction_id = ANY(?) GROUP BY 1", list(ids))
    return dict(rows)


_local = threading.local()


def post_close(server, fields):
    """One POST on its own connection (no keep-alive: see test_concurrency)."""
    return requests.post(server.base + "/k2/notify", data=form(fields),
                         auth=(USER, PASSWORD),
                         headers={"Content-Type": "application/x-www-form-urlencoded",
                                  "Connection": "close"}, timeout=30)


# -- the sample itself ----------------------------------------------------------------

def test_pgsql_sample_records_the_spec_example_once_with_every_field(make_httpd, pg):
    s = pg_node(make_httpd, pg, "pgsample")
    assert s.configtest() == (0, "Syntax OK\n")
    s.start()
    for outcome in ("accepted", "duplicate"):
        r = s.post(SPEC_BODY)
        assert (r.status_code, r.text) == (200, ACCEPTED)
    rows = pg.rows("15")
    assert len(rows) == 1
    row = rows[0]
    assert isinstance(row.pop("received_at"), datetime.datetime)
    assert row == SPEC_ROW_STORED
    assert [e[6] for e in wait_access(s, "15", n=2)] == ["accepted", "duplicate"]


# -- exactly once across nodes --------------------------------------------------------

def test_two_nodes_record_each_of_500_notifications_posted_to_both_exactly_once(make_httpd, pg):
    a = pg_node(make_httpd, pg, "nodeA").start()
    b = pg_node(make_httpd, pg, "nodeB").start()
    notes = [notification(amount=f"{100 + i}.{i % 100:02d}") for i in range(500)]
    ids = [n["k2_transaction_id"] for n in notes]

    # Each notification goes to both nodes at the same moment.
    jobs = [(node, n) for n in notes for node in (a, b)]
    with concurrent.futures.ThreadPoolExecutor(max_workers=64) as pool:
        replies = list(pool.map(lambda job: post_close(*job), jobs))

    statuses = collections.Counter((r.status_code, r.text) for r in replies)
    assert statuses == {(200, ACCEPTED): 1000}, statuses
    assert count_ids(pg, ids) == {i: 1 for i in ids}
    amounts = dict(pg.query("SELECT k2_transaction_id, amount FROM k2_transactions "
                            "WHERE k2_transaction_id = ANY(?)", ids))
    assert amounts == {n["k2_transaction_id"]: decimal.Decimal(n["amount"])
                       for n in notes}

    # The audit trail of the two nodes together: one accepted and one
    # duplicate per transaction, whichever node won.
    outcomes = outcomes_of((a, b), ids, 1000)
    assert {i: sorted(outcomes[i]) for i in ids} == {
        i: ["accepted", "duplicate"] for i in ids}


# -- the database restarts under running nodes ----------------------------------------

def test_database_restart_between_notifications_is_invisible_to_k2(make_httpd, pg):
    """After a restart PostgreSQL has forgotten the pooled connections'
    prepared statements, and apr-util resets a connection without saying
    so: without the module's repair every notification would get 500 until
    the connection expired.  With it, none does."""
    nodes = [pg_node(make_httpd, pg, "restartA").start(),
             pg_node(make_httpd, pg, "restartB").start()]
    for node in nodes:                  # fill the pools
        for _ in range(10):
            assert node.post(notification()).text == ACCEPTED
    offsets = [node.log_offset() for node in nodes]

    pg.restart()

    after = [(node, notification()) for _ in range(20) for node in nodes]
    replies = [node.post(n) for node, n in after]
    assert [(r.status_code, r.text) for r in replies] == [(200, ACCEPTED)] * 40
    ids = [n["k2_transaction_id"] for _, n in after]
    assert count_ids(pg, ids) == {i: 1 for i in ids}
    # The repair is logged, and no notification failed.
    for node, off in zip(nodes, offsets):
        lines = node.error_lines_since(off)
        assert any(re.search(r"\[k2notify:warn\] .*(the database connection "
                             r"had broken and is open again \(\d+ statements "
                             r"prepared again\): running the query again|this "
                             r"database session had lost its prepared "
                             r"statements)", l) for l in lines), lines
        assert not [l for l in lines if ":error]" in l], lines


def test_database_outage_answers_500_never_01_and_recovers_without_restarting_apache(make_httpd, pg):
    nodes = [pg_node(make_httpd, pg, "outageA").start(),
             pg_node(make_httpd, pg, "outageB").start()]
    for node in nodes:
        for pattern in DB_DOWN_LINES:
            node.expect_error(pattern)
        for _ in range(5):
            assert node.post(notification()).text == ACCEPTED
    before = pg.query("SELECT count(*) FROM k2_transactions")[0][0]

    pg.stop()
    try:
        during = [(node, notification()) for _ in range(10) for node in nodes]
        replies = [post_close(node, n) for node, n in during]
        statuses = collections.Counter((r.status_code, r.headers["Content-Type"],
                                        r.text) for r in replies)
    finally:
        pg.start()
    up = time.time()
    assert statuses == {(500, "application/json", INTERNAL_ERROR): 20}, statuses
    for node, n in during:
        entry = wait_access(node, n["k2_transaction_id"])
        assert [e[:7] for e in entry] == [["500", n["k2_transaction_id"], ACCOUNT,
                                           n["amount"], "KES", "", "error"]]
    assert count_ids(pg, [n["k2_transaction_id"] for _, n in during]) == {}
    assert pg.query("SELECT count(*) FROM k2_transactions")[0][0] == before
    for node in nodes:
        assert node.wait_log(r"\[k2notify:error\] .*outcome=error: ")

    # Back: each node answers 01 again within seconds, without a restart.
    recovered = recovery_times(nodes, up, lambda ids: count_ids(pg, ids))
    print(f"\nrecovery after PostgreSQL came back: "
          f"{', '.join(f'{v:.2f} s' for v in recovered.values())}")
    assert len(recovered) == 2 and max(recovered.values()) < 10, recovered

    # And every node serves every later notification.
    later = [(node, notification()) for _ in range(20) for node in nodes]
    with concurrent.futures.ThreadPoolExecutor(max_workers=16) as pool:
        replies = list(pool.map(lambda job: post_close(*job), later))
    assert [r.text for r in replies] == [ACCEPTED] * 40
    ids = [n["k2_transaction_id"] for _, n in later]
    assert count_ids(pg, ids) == {i: 1 for i in ids}


def test_database_down_when_apache_starts_answers_500_then_recovers(make_httpd, pg):
    node = pg_node(make_httpd, pg, "coldstart")
    for pattern in DB_DOWN_LINES:
        node.expect_error(pattern)
    pg.stop()
    try:
        node.start()                    # Apache starts without its database
        n = notification()
        r = post_close(node, n)
        assert (r.status_code, r.headers["Content-Type"], r.text) == (
            500, "application/json", INTERNAL_ERROR)
        assert node.wait_log(r"\[k2notify:error\] .*k2_transaction_id="
                             + n["k2_transaction_id"] + r" .*outcome=error: no "
                             r"database connection")
    finally:
        pg.start()
    assert count_ids(pg, [n["k2_transaction_id"]]) == {}
    up = time.time()
    while time.time() - up < 30:
        m = notification()
        r = post_close(node, m)
        if r.text == ACCEPTED:
            break
        assert (r.status_code, r.text) == (500, INTERNAL_ERROR)
        time.sleep(0.1)
    print(f"\nrecovery after a cold start without PostgreSQL: {time.time() - up:.2f} s")
    assert r.text == ACCEPTED and time.time() - up < 10
    assert count_ids(pg, [m["k2_transaction_id"]]) == {m["k2_transaction_id"]: 1}
