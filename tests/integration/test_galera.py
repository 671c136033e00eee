"""Galera (issue 16): several MariaDB nodes, each Apache writing to its own.

A 3-node cluster on this machine (myserver.Galera: galera-4's
libgalera_smm.so, gcomm:// on loopback ports, private datadirs, the others
joining node 0 by an rsync state transfer), wsrep_sync_wait = 1 as
docs/mysql.md says, and one Apache node on the shipped sample per cluster
node.  The same payment written on two nodes at once fails certification
on one of them (1213, after Galera's own retry): the statement was rolled
back, and the module runs it again (the resend then affects 0 rows and is
verified by K2NotifyDuplicateQuery).
"""
import collections
import concurrent.futures
import decimal
import re
import threading
import time

import pytest

from conftest import ACCOUNT, Httpd, notification, served
from myserver import Galera
from test_mysql import DB_DOWN_LINES, sample_node
from test_pgsql import ACCEPTED, INTERNAL_ERROR, outcomes_of, post_close

RERUN = re.compile(r"rolled back by the database: running K2NotifyRecordQuery "
                   r"again \((\d) of at most \d\)")


@pytest.fixture(scope="module")
def cluster():
    g = Galera(3, accounts=(ACCOUNT,), sync_wait=1)
    yield g
    g.cleanup()


def _node(cluster, i):
    return served(sample_node(Httpd, cluster.nodes[i], f"galera-apache{i}"))


@pytest.fixture(scope="module")
def apache0(cluster):
    yield from _node(cluster, 0)


@pytest.fixture(scope="module")
def apache1(cluster):
    yield from _node(cluster, 1)


@pytest.fixture(scope="module")
def apache2(cluster):
    yield from _node(cluster, 2)


def rows_of(db, ids):
    marks = ", ".join("?" for _ in ids)
    return dict(db.query("SELECT k2_transaction_id, amount FROM k2_transactions "
                         f"WHERE k2_transaction_id IN ({marks})", *ids))


def test_galera_resend_storm_on_three_nodes_is_all_01_with_exact_rows_on_every_node(
        cluster, apache0, apache1, apache2):
    """300 payments, each posted twice to each of the 3 nodes at once."""
    nodes = [apache0, apache1, apache2]
    notes = [notification(amount=f"{100 + i}.{i % 100:02d}") for i in range(300)]
    ids = [n["k2_transaction_id"] for n in notes]
    jobs = [(node, n) for n in notes for node in nodes for _ in range(2)]
    t0 = time.time()
    with concurrent.futures.ThreadPoolExecutor(max_workers=48) as pool:
        replies = list(pool.map(lambda job: post_close(*job), jobs))
    took = time.time() - t0
    statuses = collections.Counter((r.status_code, r.text) for r in replies)
    reruns = collections.Counter(m for node in nodes
                                 for m in RERUN.findall(node.errors_text()))
    print(f"\ngalera storm: {len(jobs)} posts in {took:.1f} s: {dict(statuses)}; "
          f"record statements run again after 1213: {dict(reruns)}")
    assert statuses == {(200, ACCEPTED): 1800}, statuses
    want = {n["k2_transaction_id"]: decimal.Decimal(n["amount"]) for n in notes}
    for db in cluster.nodes:
        assert rows_of(db, ids) == want, db.name
    assert db.query("SELECT count(*) FROM k2_transactions")[0][0] == 300
    seen = outcomes_of(nodes, ids, 1800)
    assert {i: sorted(seen[i]) for i in ids} == {
        i: ["accepted"] + ["duplicate"] * 5 for i in ids}


def test_galera_node_killed_under_load_loses_no_acknowledged_payment(
        cluster, apache0, apache1, apache2):
    """Node 2 is killed (SIGKILL) a third of the way through: 600 payments,
    each posted once to each Apache node.  Every 01 has its row on both
    survivors; the survivors keep answering 01; the Apache node whose
    database died answers 500, never 01 for a payment it did not record."""
    nodes = [apache0, apache1, apache2]
    for pattern in DB_DOWN_LINES + [r"\[dbd:error\] .*AH00639: DBD \[mysql\] "
                                    r"Error: Lost connection"]:
        apache2.expect_error(pattern)
    notes = [notification(amount=f"{1 + i}.{i % 100:02d}") for i in range(600)]
    jobs = [(node, n) for n in notes for node in nodes]
    done = [0]

    def post(job):
        r = post_close(*job)
        done[0] += 1
        return r

    def killer():
        while done[0] < len(jobs) // 3:
            time.sleep(0.005)
        cluster.nodes[2].kill()

    k = threading.Thread(target=killer)
    k.start()
    with concurrent.futures.ThreadPoolExecutor(max_workers=48) as pool:
        replies = list(pool.map(post, jobs))
    k.join()
    per_node = collections.defaultdict(collections.Counter)
    acked = set()
    for (node, n), r in zip(jobs, replies):
        per_node[node.name][(r.status_code, r.text)] += 1
        if r.text == ACCEPTED:
            acked.add(n["k2_transaction_id"])
    print("\ngalera node killed: " + "; ".join(f"{k}: {dict(v)}"
                                               for k, v in per_node.items()))
    assert per_node[apache0.name] == {(200, ACCEPTED): 600}
    assert per_node[apache1.name] == {(200, ACCEPTED): 600}
    assert set(per_node[apache2.name]) <= {(200, ACCEPTED), (500, INTERNAL_ERROR)}
    assert per_node[apache2.name][(500, INTERNAL_ERROR)] > 0   # it did die
    ids = [n["k2_transaction_id"] for n in notes]
    want = {n["k2_transaction_id"]: decimal.Decimal(n["amount"]) for n in notes}
    for db in cluster.nodes[:2]:
        assert rows_of(db, ids) == want, db.name
    assert acked == set(ids)
