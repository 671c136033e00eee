"""The K2 Connect samples' statements on the real databases.

Every K2NotifyRecordQuery of conf-samples/k2notify-k2connect.conf (SQLite) and
k2notify-k2connect-pgsql.conf (PostgreSQL), with its FIELDs bound the way the
module binds them (k2_json.h: a JSON pointer's string value as is, a
number's text, absent or null as NULL; raw_body the bytes received), runs
on the schema it names, for every SDK fixture of tests/fixtures/k2connect
(see its SOURCES): each recorded topic gives one row, a resend none, the
raw body and the amount come back exactly.  PostgreSQL statements are
prepared as apr-util's pgsql driver prepares them: every parameter varchar.
No httpd: this checks the samples, the glue is tested elsewhere.
"""
import glob
import json
import os
import re
import shlex
import sqlite3
import subprocess

import pytest

from pgserver import Postgres

TOP = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
SAMPLES = os.path.join(TOP, "conf-samples")
FIXTURES = os.path.join(TOP, "tests", "fixtures", "k2connect")


def locations(conf):
    """{location: (topics or None, sql, fields)} of a sample file."""
    with open(os.path.join(SAMPLES, conf)) as f:
        text = re.sub(r"\\\n", " ", f.read())      # Apache's line continuation
    found = {}
    for m in re.finditer(r"<Location (\S+)>(.*?)</Location>", text, re.S):
        topics, sql, fields = None, None, None
        for line in m.group(2).splitlines():
            words = shlex.split(line.strip(), comments=True)
            if words[:1] == ["K2NotifyTopics"]:
                topics = words[1:]
            elif words[:1] == ["K2NotifyRecordQuery"]:
                sql, fields = words[1], words[2:]
        assert sql.count("%s") == len(fields), m.group(1)
        found[m.group(1)] = (topics, sql, fields)
    return found


def resolve(doc, pointer):
    """RFC 6901; None when absent."""
    if pointer == "":
        return doc
    cur = doc
    for raw in pointer[1:].split("/"):
        tok = raw.replace("~1", "/").replace("~0", "~")
        if isinstance(cur, dict) and tok in cur:
            cur = cur[tok]
        elif isinstance(cur, list) and re.fullmatch(r"0|[1-9][0-9]*", tok) \
                and int(tok) < len(cur):
            cur = cur[int(tok)]
        else:
            return None
    return cur


def bind(body, doc, field):
    """What the module binds for FIELD (k2_json.h's rule)."""
    if field == "raw_body":
        return body.decode("utf-8")
    if field == "remote_user":
        return None                                 # K2 Connect: no user
    v = resolve(doc, field)
    if v is None or isinstance(v, str):
        return v
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        raise AssertionError("no fixture binds a real")  # none does today
    return json.dumps(v, separators=(",", ":"), ensure_ascii=False)


def topic(doc):
    for p in ("/topic", "/data/type"):
        if isinstance(resolve(doc, p), str):
            return resolve(doc, p)
    return ""


def fixtures():
    """(name, bytes, parsed) of every JSON fixture: the PHP SDK's published
    bytes first, then the Node SDK's events (some are the same events,
    serialised compactly: resends with other bytes)."""
    out = []
    for path in (sorted(glob.glob(os.path.join(FIXTURES, "php", "*.json")))
                 + sorted(glob.glob(os.path.join(FIXTURES, "node-stringified",
                                                 "*.json")))):
        with open(path, "rb") as f:
            body = f.read()
        out.append((os.path.relpath(path, FIXTURES), body, json.loads(body)))
    return out


def location_for(doc, locs):
    """Which sample location a body belongs to: Daraja's has no topic."""
    return "/k2/webhook-daraja" if "TransID" in doc else "/k2/webhook"


def event_key(where, values):
    """The event_id a statement stores: COALESCE(/id, /data/id), or TransID."""
    if where == "/k2/webhook-daraja":
        return values[0]
    return values[0] if values[0] is not None else values[1]


def recorded_topics(locs):
    return set(locs["/k2/webhook"][0])


# ---- SQLite ---------------------------------------------------------------

@pytest.fixture
def sqlite_db(tmp_path):
    db = str(tmp_path / "k2.db")
    with open(os.path.join(SAMPLES, "schema-k2connect-sqlite.sql")) as f:
        # the real sqlite3 program, as the manual tells users to
        subprocess.run(["sqlite3", db], stdin=f, check=True,
                       capture_output=True)
    conn = sqlite3.connect(db, isolation_level=None)
    yield conn
    conn.close()


def run_sqlite(conn, sql, values):
    cur = conn.execute(sql.replace("%s", "?"), values)
    return cur.rowcount


def test_k2connect_sample_records_every_listed_topic_once_on_sqlite(sqlite_db):
    locs = locations("k2notify-k2connect.conf")
    wanted = recorded_topics(locs)
    seen = {}
    for name, body, doc in fixtures():
        where = location_for(doc, locs)
        topics, sql, fields = locs[where]
        if topics is not None and topic(doc) not in topics:
            continue                                # answered 200 "ignored"
        values = [bind(body, doc, f) for f in fields]
        key = event_key(where, values)
        first = run_sqlite(sqlite_db, sql, values)
        again = run_sqlite(sqlite_db, sql, values)  # K2 resends
        assert (first, again) == ((1, 0) if key not in seen else (0, 0)), name
        seen.setdefault(key, name)
    # the same events appear as PHP and Node fixtures: one row per event id
    rows = sqlite_db.execute(
        "SELECT event_id, topic, reference, amount, currency, status, raw_body"
        " FROM k2_events").fetchall()
    assert len(rows) == len(seen)
    by_id = {r[0]: r for r in rows}
    assert by_id["2133dbfb-24b9-40fc-ae57-2d7559785760"][1:6] == (
        "buygoods_transaction_received", "OJM6Q1W84K", "100.0", "KES",
        "Received")
    assert by_id["98adf21e-5721-476a-8643-609b4a6513a2"][1:6] == (
        "buygoods_transaction_reversed", "OJM6Q1W84K", "233", "KES", "Reversed")
    assert by_id["a652f86f-f2aa-4d70-baa2-ccfe4b78f4fc"][1:6] == (
        "incoming_payment", "OJJ1MPU40Z", "100.0", "KES", "Success")
    assert by_id["09bc45fc-3b97-4c44-b860-42a7bcbd7480"][1:6] == (
        "incoming_payment", None, None, None, "Failed")
    assert by_id["5fbbcfc3-5b06-485e-929c-066741f4b14d"][1:6] == (
        "m2m_transaction_received", None, "456", "KES", "Received")
    assert by_id["OJM6Q1W84K"][1:4] == ("daraja", "OJM6Q1W84K", "100.0")
    # not listed: no row
    assert "f720ecf5-ff98-4ca8-a3f2-d70a65c4a02c" not in by_id   # customer_created
    assert "052b7b2a-745b-4ca1-866b-b92d4a1418c3" not in by_id   # settlement
    # the raw body is the bytes received (the PHP file's own spacing)
    with open(os.path.join(FIXTURES, "php", "buygoodsreversed.json"), "rb") as f:
        assert by_id["98adf21e-5721-476a-8643-609b4a6513a2"][6].encode() == f.read()
    assert {r[1] for r in rows} <= wanted | {"daraja"}


def test_k2connect_sample_keeps_the_largest_amounts_exact_on_sqlite(sqlite_db):
    topics, sql, fields = locations("k2notify-k2connect.conf")["/k2/webhook"]
    name, body, doc = next(f for f in fixtures()
                           if f[0] == "php/buygoodsreceived.json")
    for i, amount in enumerate(["999999999999999.99", "100000000000000000000.00",
                                "0.01", "1500.10"]):
        doc["id"] = f"big-{i}"
        doc["event"]["resource"]["amount"] = amount
        body = json.dumps(doc).encode()
        assert run_sqlite(sqlite_db, sql, [bind(body, doc, f) for f in fields]) == 1
        assert sqlite_db.execute("SELECT amount, typeof(amount) FROM k2_events"
                                 " WHERE event_id = ?", (f"big-{i}",)).fetchone() \
            == (amount, "text")


# ---- PostgreSQL -----------------------------------------------------------

@pytest.fixture(scope="module")
def pg():
    server = Postgres(name="k2connect")
    with open(os.path.join(SAMPLES, "schema-k2connect-pgsql.sql")) as f:
        server.execute(f.read(), user="k2notify")
    yield server
    server.cleanup()


def run_pgsql(conn, label, sql, values):
    """PREPARE as apr_dbd_pgsql does (varchar parameters), then EXECUTE."""
    n = 0

    def placeholder(_):
        nonlocal n
        n += 1
        return f"${n}"
    body = re.sub(r"%s", placeholder, sql)
    with conn.cursor() as cur:
        cur.execute("SELECT 1 FROM pg_prepared_statements WHERE name = %s",
                    (label,))
        if not cur.fetchone():
            cur.execute(f"PREPARE {label} ({', '.join(['varchar'] * n)}) AS {body}")
        cur.execute(f"EXECUTE {label} ({', '.join(['%s'] * n)})", values)
        return cur.rowcount


def test_k2connect_pgsql_sample_records_every_listed_topic_once(pg):
    locs = locations("k2notify-k2connect-pgsql.conf")
    conn = pg.connect(user="k2notify")
    conn.autocommit = True
    seen = set()
    for name, body, doc in fixtures():
        where = location_for(doc, locs)
        topics, sql, fields = locs[where]
        if topics is not None and topic(doc) not in topics:
            continue
        values = [bind(body, doc, f) for f in fields]
        label = "k2rec" if where == "/k2/webhook" else "k2daraja"
        first = run_pgsql(conn, label, sql, values)
        again = run_pgsql(conn, label, sql, values)
        key = event_key(where, values)
        assert (first, again) == ((0, 0) if key in seen else (1, 0)), name
        seen.add(key)
    with conn.cursor() as cur:
        cur.execute("SELECT event_id, amount::text, raw_body FROM k2_events"
                    " WHERE event_id IN ('2133dbfb-24b9-40fc-ae57-2d7559785760',"
                    " 'OJQ8USH5XK', '09bc45fc-3b97-4c44-b860-42a7bcbd7480')"
                    " ORDER BY event_id")
        rows = cur.fetchall()
        cur.execute("SELECT count(*) FROM k2_events")
        assert cur.fetchone()[0] == len(seen)
    assert [r[:2] for r in rows] == [
        ("09bc45fc-3b97-4c44-b860-42a7bcbd7480", None),     # failed STK push
        ("2133dbfb-24b9-40fc-ae57-2d7559785760", "100.0"),
        ("OJQ8USH5XK", "313")]                               # Daraja b2b
    with open(os.path.join(FIXTURES, "php", "stkunsuccessfulresult.json"),
              "rb") as f:
        assert rows[0][2].encode() == f.read()
    conn.close()


def test_k2connect_pgsql_sample_keeps_the_largest_amounts_exact(pg):
    topics, sql, fields = locations("k2notify-k2connect-pgsql.conf")["/k2/webhook"]
    name, body, doc = next(f for f in fixtures()
                           if f[0] == "php/buygoodsreceived.json")
    conn = pg.connect(user="k2notify")
    conn.autocommit = True
    for i, amount in enumerate(["999999999999999.99", "100000000000000000000.00",
                                "0.01", "1500.10", "49452.0"]):
        doc["id"] = f"pg-big-{i}"
        doc["event"]["resource"]["amount"] = amount
        body = json.dumps(doc).encode()
        assert run_pgsql(conn, "k2big", sql,
                         [bind(body, doc, f) for f in fields]) == 1
        with conn.cursor() as cur:
            cur.execute("SELECT amount::text FROM k2_events WHERE event_id = %s",
                        (f"pg-big-{i}",))
            assert cur.fetchone()[0] == amount
    conn.close()
