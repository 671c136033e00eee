"""Hostile K2 Connect bodies (issue 12): correctly signed, so that they reach
the JSON parser, and built to hurt it: deep nesting, huge numbers, NUL
characters, invalid UTF-8, megabyte strings, escapes that would forge a log
line.  For every row: the exact status and JSON reason, nothing recorded
unless the row says so, no crash or error line, and no forged line in the
error log or the access log.
"""
import hashlib
import hmac
import json
import os
import re
import sqlite3
import uuid

import pytest
import requests

from conftest import CHILD_INIT_LOCKED, Httpd, TOP, served

SCHEMA = os.path.join(TOP, "conf-samples", "schema-k2connect-sqlite.sql")
KEY = b"k2connect-hostile-key"
FORGED = "[Mon Jan 01 00:00:00.000000 2024] [k2notify:error] FORGED"
REAL_TS = re.compile(r"^\[(Mon|Tue|Wed|Thu|Fri|Sat|Sun) [A-Z][a-z]{2} [ 0-9]\d "
                     r"\d\d:\d\d:\d\d\.\d{6} \d{4}\] \[")
# the level of a line is its second bracket: a value may hold ":error]"
BAD_LOG = re.compile(r"^\[[^\]]*\] \[[^\]]*:(error|crit|alert|emerg)\]|"
                     r"Segmentation fault|exit signal|AddressSanitizer|"
                     r"runtime error:")

LOCATIONS = """
LogFormat "%>s %{K2_TOPIC}e|%{K2_TRANSACTION_ID}e|%{K2_OUTCOME}e|%r" webhooks
CustomLog "{dir}/webhooks.log" webhooks
<Location /k2/webhook>
    SetHandler k2notify
    K2NotifyFormat k2connect
    K2NotifySignatureKeyFile {dir}/k2.key
    K2NotifyMaxBody 1048576
    K2NotifyRecordQuery "INSERT INTO k2_events (event_id, topic, amount, raw_body) VALUES (%s, %s, %s, %s) ON CONFLICT (event_id) DO NOTHING" /id /topic /event/resource/amount raw_body
</Location>
""".replace("{", "{{").replace("}", "}}").replace("{{dir}}", "{dir}")


@pytest.fixture(scope="module")
def hostile():
    with open(SCHEMA) as f:
        s = Httpd("k2c-hostile", LOCATIONS, extra_sql=f.read())
    path = os.path.join(s.dir, "k2.key")
    with open(path, "wb") as f:
        f.write(KEY)
    os.chmod(path, 0o600)
    yield from served(s)


def event(**fields):
    doc = {"topic": "buygoods_transaction_received", "id": str(uuid.uuid4()),
           "event": {"resource": {"amount": "100.0", "currency": "KES"}}}
    doc.update(fields)
    return doc


def dumps(doc):
    return json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode()


R_DEEP = "the JSON nests more than 32 levels deep"
R_NUL = "the body contains a NUL character"
R_UTF8 = "the body is not valid UTF-8"
R_BIG = ("a JSON number is out of range (integers beyond 64 bits, reals beyond "
         "a double)")
R_SYNTAX = "the body is not valid JSON"
R_DUP = "a JSON object has the same key twice"
R_TOO_LARGE = "the body is larger than K2NotifyMaxBody (1048576 bytes)"

ROWS = [  # (name, body, status, reason or outcome)
    ("nesting 33 deep", b'{"a":' * 33 + b'1' + b'}' * 33, 400, R_DEEP),
    ("nesting 32 deep", b'{"topic":"x","id":"deep32","a":' + b'[' * 30 + b']' * 30 + b'}',
     200, "accepted"),
    ("100,000 opening brackets", b'[' * 100000, 400, R_DEEP),
    ("brackets inside a string do not count",
     dumps(event(note="[" * 5000 + "{" * 5000)), 200, "accepted"),
    ("integer of 400 digits", b'{"n":' + b'9' * 400 + b'}', 400, R_BIG),
    ("real beyond a double", b'{"n":1e400}', 400, R_BIG),
    ("integer one past 64 bits", b'{"n":18446744073709551616}', 400, R_BIG),
    ("largest 64-bit integer", dumps(event(n=9223372036854775807)), 200, "accepted"),
    ("escaped NUL in a value", b'{"id":"a\\u0000b"}', 400, R_NUL),
    ("escaped NUL in a key", b'{"a\\u0000":1}', 400, R_NUL),
    ("raw NUL byte", b'{"id":"a\x00b"}', 400, R_NUL),
    ("overlong UTF-8", b'{"id":"\xc0\xaf"}', 400, R_UTF8),
    ("encoded surrogate", b'{"id":"\xed\xa0\x80"}', 400, R_UTF8),
    ("lone escaped surrogate", b'{"id":"\\ud800"}', 400, R_SYNTAX),
    ("truncated UTF-8 at the end", b'{"id":"\xe2\x82"', 400, R_UTF8),
    ("duplicate key deep inside", b'{"event":{"resource":{"a":1,"a":2}}}', 400, R_DUP),
    ("a 1 MB string value", dumps(event(note="x" * 1000000)), 200, "accepted"),
    ("a 1 MB key", dumps(event(**{"k" * 1000000: 1})), 200, "accepted"),
    ("a body over the cap", dumps(event(note="x" * 1048576)), 413, R_TOO_LARGE),
    ("CR LF and a forged line in the id", dumps(event(id="x\r\n" + FORGED)),
     200, "accepted"),
    ("CR LF in the topic", dumps(event(topic="x\r\n" + FORGED)), 200, "accepted"),
    ("a control character raw in a string", b'{"id":"a\x01b"}', 400, R_SYNTAX),
    ("BOM before the object", b'\xef\xbb\xbf{"id":"x"}', 400, R_SYNTAX),
    ("10,000 keys", dumps(event(**{f"k{i}": i for i in range(10000)})), 200, "accepted"),
    ("an amount that is a number", dumps(event(event={"resource": {"amount": 100.5}})),
     200, "accepted"),
]


@pytest.mark.parametrize("name,body,status,want", ROWS, ids=[r[0] for r in ROWS])
def test_hostile_webhook_body(hostile, name, body, status, want):
    s = hostile
    log_off = s.log_offset()
    con = sqlite3.connect(s.db, timeout=10)
    before = con.execute("SELECT count(*) FROM k2_events").fetchone()[0]
    con.close()
    sig = hmac.new(KEY, body, hashlib.sha256).hexdigest()
    r = requests.post(s.base + "/k2/webhook", data=body, timeout=60,
                      headers={"Content-Type": "application/json",
                               "X-KopoKopo-Signature": sig, "Connection": "close"})
    assert r.status_code == status, (name, r.status_code, r.text[:300])
    assert r.headers["Content-Type"] == "application/json"
    con = sqlite3.connect(s.db, timeout=10)
    after = con.execute("SELECT count(*) FROM k2_events").fetchone()[0]
    if status == 200:
        assert r.json() == {"description": "OK", "outcome": want}
        doc = json.loads(body)
        stored = con.execute("SELECT raw_body, amount FROM k2_events WHERE "
                             "event_id = ?", (doc["id"],)).fetchall()
        assert [row[0].encode() for row in stored] == [body]
        amount = doc.get("event", {}).get("resource", {}).get("amount")
        assert stored[0][1] == (None if amount is None else
                                amount if isinstance(amount, str) else repr(amount))
        assert after == before + 1
    else:
        assert r.json()["reason"] == want
        assert after == before
    con.close()
    # mod_dbd's race of children setting up the WAL index at child init
    # (the harness tolerates it, and so does this check)
    lines = [l for l in s.error_lines_since(log_off)
             if not any(re.search(p, l) for p in CHILD_INIT_LOCKED)]
    assert not [l for l in lines if BAD_LOG.search(l)], lines
    assert all(REAL_TS.match(l) for l in lines), lines
    assert not any(l.startswith(FORGED) for l in lines)
    with open(os.path.join(s.dir, "webhooks.log"), errors="replace") as f:
        audit = f.read().splitlines()
    assert all(re.match(r"^\d{3} ", l) for l in audit), audit[-3:]
