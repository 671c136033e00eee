"""A notification whose deduplication key would be NULL is refused (issue 15,
item 1).

The record statement's key is the column of its ON CONFLICT target; its
value a FIELD, or COALESCE of FIELDs.  On SQLite a NULL in a TEXT primary
key never conflicts: an event without an id would be recorded again at
every delivery, each time answered 200 accepted.  Such an event gets 400
(it can never be recorded exactly once: not 200, and not 500, which tells
K2 to try again), a warn line that names the FIELDs, and no row; the
shipped schemas say NOT NULL as well.
"""
import json
import os
import re
import sqlite3

import pytest

from conftest import TOP, served
from test_k2connect import (events, fixture, fresh, k2connect_server, post,
                            sign)

SAMPLES = os.path.join(TOP, "conf-samples")


@pytest.fixture(scope="module")
def k2c():
    yield from served(k2connect_server("dedup-key"))


def without(body, pointer_key):
    doc = json.loads(body)
    doc.pop(pointer_key)
    return json.dumps(doc, separators=(",", ":")).encode()


def null_key_rows(server):
    con = sqlite3.connect(server.db, timeout=10)
    try:
        return con.execute("SELECT count(*) FROM k2_events WHERE event_id IS NULL"
                           ).fetchone()[0]
    finally:
        con.close()


def test_k2connect_event_without_an_id_is_refused_400_at_every_delivery(k2c):
    body = without(fixture("php/buygoodsreceived.json"), "id")
    off = k2c.log_offset()
    before = k2c.query("SELECT count(*) FROM k2_events")[0][0]
    for _ in range(2):                  # K2 delivers it again
        r = post(k2c, body, sign(body))
        assert r.status_code == 400, r.text
        assert r.json() == {"description": "Bad Request",
                            "reason": "no value for the deduplication key "
                                      "(/id /data/id)"}
    assert k2c.query("SELECT count(*) FROM k2_events")[0][0] == before
    assert null_key_rows(k2c) == 0
    lines = k2c.wait_log(r"\[k2notify:warn\] .* webhook topic=buygoods_transaction_"
                         r"received id=- reference=OJM6Q1W84K amount=100\.0 "
                         r"outcome=bad_request: the deduplication key of "
                         r"K2NotifyRecordQuery \(line \d+ of .*\) would be NULL: "
                         r"/id /data/id absent or null in this event", off)
    assert len(lines) == 2, lines


def test_daraja_event_without_transid_is_refused_400(k2c):
    body = without(fixture("node-stringified/darajabuygoods.json"), "TransID")
    r = post(k2c, body, sign(body), path="/k2/webhook-daraja")
    assert r.status_code == 400, r.text
    assert r.json()["reason"] == "no value for the deduplication key (/TransID)"
    assert null_key_rows(k2c) == 0
    # with its TransID, the same event is recorded once
    whole = fixture("node-stringified/darajabuygoods.json")
    tid = json.loads(whole)["TransID"]
    assert post(k2c, whole, sign(whole), path="/k2/webhook-daraja").status_code == 200
    assert len(events(k2c, tid)) == 1


def test_event_whose_id_is_in_the_coalesced_field_is_recorded(k2c):
    """/id absent, /data/id present (an STK result): the key is not NULL."""
    body = fresh(fixture("php/stksuccessfulresult.json"), **{"/data/id": "stk-key-1"})
    r = post(k2c, body, sign(body))
    assert r.status_code == 200, r.text
    assert len(events(k2c, "stk-key-1")) == 1


@pytest.mark.parametrize("schema,table,key", [
    ("schema-k2connect-sqlite.sql", "k2_events", "event_id"),
    ("schema-sqlite.sql", "k2_transactions", "k2_transaction_id")])
def test_shipped_sqlite_schema_refuses_a_null_key(tmp_path, schema, table, key):
    con = sqlite3.connect(str(tmp_path / "k2.db"))
    with open(os.path.join(SAMPLES, schema)) as f:
        con.executescript(f.read())
    cols = [r[1] for r in con.execute(f"PRAGMA table_info({table})")
            if r[3] and r[1] != key and r[4] is None]      # NOT NULL, no default
    with pytest.raises(sqlite3.IntegrityError, match="NOT NULL"):
        con.execute(f"INSERT INTO {table} ({', '.join([key] + cols)}) VALUES "
                    f"({', '.join(['?'] * (len(cols) + 1))})", [None] + ["x"] * len(cols))
    con.close()


@pytest.mark.parametrize("schema,key", [("schema-k2connect-pgsql.sql", "event_id"),
                                        ("schema-pgsql.sql", "k2_transaction_id")])
def test_shipped_pgsql_schema_says_its_key_is_not_null(schema, key):
    """PostgreSQL's PRIMARY KEY implies NOT NULL; the schema says so too, as
    the SQLite ones must."""
    with open(os.path.join(SAMPLES, schema)) as f:
        assert re.search(rf"^\s+{key}\s+text PRIMARY KEY NOT NULL,", f.read(), re.M)
