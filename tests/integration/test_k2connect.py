"""K2 Connect webhooks through a real Apache (issue 12): K2NotifyFormat
k2connect, the signature of the bytes received, JSON pointers as FIELDs,
K2NotifyTopics, and the shipped sample conf-samples/k2notify-k2connect.conf
on its own schema.

The SDKs' published fixtures (tests/fixtures/k2connect, see SOURCES) are
replayed byte for byte with their published signatures: the PHP SDK's
customer_created in three versions under three keys (signed over the file's
bytes), and the Node SDK's events (signed over their compact serialisation,
which is what node-stringified/ holds).  No body here was written for the
module: what K2's SDKs signed is what it must accept.
"""
import collections
import hashlib
import hmac
import json
import os
import re
import sqlite3
import subprocess
import uuid

import pytest
import requests

from conftest import ACCOUNT, AUTH, TOP, Httpd, notification, served, wait_access

FIXTURES = os.path.join(TOP, "tests", "fixtures", "k2connect")
SAMPLE = os.path.join(TOP, "conf-samples", "k2notify-k2connect.conf")
SCHEMA = os.path.join(TOP, "conf-samples", "schema-k2connect-sqlite.sql")
NODE_KEY = b"8463vr8472a2372763787b7dec3dbe49879323gg32"

# The audit trail of webhooks: the sample's variables, one line each.
AUDIT = ('LogFormat "%>s %{K2_FORMAT}e|%{K2_TOPIC}e|%{K2_TRANSACTION_ID}e|'
         '%{K2_REFERENCE}e|%{K2_AMOUNT}e|%{K2_CURRENCY}e|%{K2_OUTCOME}e|%r" '
         'webhooks\nCustomLog "@DIR@/webhooks.log" webhooks\n')

RECORD_ALL = None       # the sample's /k2/webhook statement, read below


def signed_rows(kind):
    """(file, key, signature) of SOURCES' rows of one set ("bytes" or
    "stringified")."""
    rows = []
    with open(os.path.join(FIXTURES, "SOURCES")) as f:
        for line in f:
            if line.startswith(kind + "\t"):
                _, path, key, sig = line.split("\t")[:4]
                rows.append((path, key.encode(), sig))
    assert rows
    return rows


def fixture(path):
    with open(os.path.join(FIXTURES, path), "rb") as f:
        return f.read()


def sign(body, key=NODE_KEY):
    return hmac.new(key, body, hashlib.sha256).hexdigest()


def escape(text):
    """Text for Httpd's body.format(): braces doubled, @DIR@ for {dir}."""
    return text.replace("{", "{{").replace("}", "}}").replace("@DIR@", "{dir}")


def sample_locations(keys):
    """The shipped sample, its paths replaced, plus /k2/all: its webhook
    statement without K2NotifyTopics (every topic recorded), and one
    location per extra key."""
    with open(SAMPLE) as f:
        sample = f.read()
    sample = (sample.replace("/etc/apache2/k2connect.key", "@DIR@/node.key")
                    .replace("${APACHE_LOG_DIR}", "@DIR@"))
    body = re.search(r"<IfModule k2notify_module>(.*)</IfModule>", sample, re.S).group(1)
    body = re.sub(r"^\s*(DBDriver|DBDParams|DBDInitSQL) .*$", "", body, flags=re.M)
    webhook = re.search(r"<Location /k2/webhook>(.*?)</Location>", body, re.S).group(1)
    record = re.search(r"(K2NotifyRecordQuery .*?raw_body remote_user)", webhook,
                       re.S).group(1)
    extra = ""
    for name in keys:
        extra += f"""
<Location /k2/key-{name}>
    SetHandler k2notify
    K2NotifyFormat k2connect
    K2NotifySignatureKeyFile {{dir}}/{name}.key
    {record}
</Location>
"""
    body = body.replace("{dir}", "@DIR@")
    return escape(body) + f"""
<Location /k2/all>
    SetHandler k2notify
    K2NotifyFormat k2connect
    K2NotifySignatureKeyFile {{dir}}/node.key
    {record}
    K2NotifyDuplicateQuery "SELECT amount FROM k2_events WHERE event_id = %s"
</Location>
<Location /k2/known>
    SetHandler k2notify
    K2NotifyFormat k2connect
    K2NotifySignatureKeyFile {{dir}}/node.key
    {record}
    K2NotifyAccountQuery "SELECT ac_no FROM accounts WHERE ac_no = %s" /data/attributes/metadata/customer_id
</Location>
""" + extra + escape(AUDIT).replace("@DIR@", "{dir}")


KEYS = {"php": b"your_api_key", "auth": b"10af7ad062a21d9c841877f87b7dec3dbe51aeb3",
        "secret": b"my_webhook_secret"}


def write_key(server, name, key):
    path = os.path.join(server.dir, f"{name}.key")
    with open(path, "wb") as f:
        f.write(key + b"\n")
    os.chmod(path, 0o600)


def k2connect_server(name, accounts=(ACCOUNT, "123456789")):
    with open(SCHEMA) as f:
        schema = f.read()
    s = Httpd(name, sample_locations(KEYS), extra_sql=schema, accounts=accounts)
    for kname, key in list(KEYS.items()) + [("node", NODE_KEY)]:
        write_key(s, kname, key)
    return s


@pytest.fixture(scope="module")
def k2c():
    yield from served(k2connect_server("k2connect"))


def post(server, body, sig=None, path="/k2/webhook", ctype="application/json",
         headers=None):
    h = {"Connection": "close"}
    if ctype:
        h["Content-Type"] = ctype
    if sig:
        h["X-KopoKopo-Signature"] = sig
    h.update(headers or {})
    return requests.post(server.base + path, data=body, headers=h, timeout=30)


def events(server, event_id):
    con = sqlite3.connect(server.db, timeout=10)
    con.row_factory = sqlite3.Row
    try:
        return [dict(r) for r in con.execute(
            "SELECT * FROM k2_events WHERE event_id = ?", (event_id,))]
    finally:
        con.close()


def audit(server, event_id, n=1):
    """The webhooks.log entries of one event id (format, topic, id,
    reference, amount, currency, outcome, request line), after the replies."""
    import time
    deadline = time.time() + 5
    while True:
        out = []
        try:
            with open(os.path.join(server.dir, "webhooks.log")) as f:
                for line in f:
                    status, rest = line.rstrip("\n").split(" ", 1)
                    p = rest.split("|")
                    if p[2] == event_id:
                        out.append([status] + p)
        except FileNotFoundError:
            pass
        if len(out) >= n or time.time() > deadline:
            return out
        time.sleep(0.05)


def reply(outcome):
    return json.dumps({"description": "OK", "outcome": outcome},
                      separators=(",", ":"))


def fresh(body, **changes):
    """A fixture's JSON with its event id replaced (and pointers set), in
    K2's compact form."""
    doc = json.loads(body)
    for pointer, value in changes.items():
        cur = doc
        parts = pointer.split("/")[1:]
        for p in parts[:-1]:
            cur = cur[p]
        cur[parts[-1]] = value
    return json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode()


# -- the SDKs' fixtures, byte for byte ----------------------------------------------

@pytest.mark.parametrize("path,key,sig", signed_rows("bytes"),
                         ids=lambda v: v if isinstance(v, str) and "/" in v else None)
def test_php_sdk_fixture_with_its_published_signature_is_recorded_byte_for_byte(
        k2c, path, key, sig):
    """kopokopo/k2-connect-php tests/Mocks/hooks/customercreated.json (three
    versions), signed over its exact bytes (tabs, newlines) with the keys of
    the SDK's own tests."""
    body = fixture(path)
    name = {v: k for k, v in KEYS.items()}[key]
    r = post(k2c, body, sig, path=f"/k2/key-{name}")
    assert r.status_code == 200, r.text
    assert r.json()["outcome"] in ("accepted", "duplicate")
    rows = events(k2c, json.loads(body)["id"])
    assert len(rows) == 1
    assert rows[0]["topic"] == "customer_created"
    # raw_body is the signed bytes of one of the versions of this event
    assert rows[0]["raw_body"].encode() in {fixture(p) for p, _, _ in signed_rows("bytes")}


def test_a_published_body_re_serialised_fails_its_signature(k2c):
    """The signature is over the bytes received: the same event with other
    spacing or key order is another body, and the SDKs that hash a
    re-serialised body get this wrong."""
    path, key, sig = signed_rows("bytes")[0]
    doc = json.loads(fixture(path))
    for other in (json.dumps(doc).encode(),                       # spacing
                  json.dumps(dict(reversed(list(doc.items())))).encode()):
        r = post(k2c, other, sig, path="/k2/key-php")
        assert r.status_code == 401
        assert r.json() == {"description": "Unauthorized",
                            "reason": "missing or invalid signature"}
        # signed anew, the same bytes are accepted
        r = post(k2c, other, sign(other, key), path="/k2/key-php")
        assert r.status_code == 200


@pytest.mark.parametrize("path,key,sig", signed_rows("stringified"),
                         ids=lambda v: v if isinstance(v, str) and "/" in v else None)
def test_node_sdk_fixture_with_its_published_signature_is_answered_200(k2c, path, key, sig):
    body = fixture(path)
    doc = json.loads(body)
    daraja = "TransID" in doc
    r = post(k2c, body, sig, path="/k2/webhook-daraja" if daraja else "/k2/all")
    assert r.status_code == 200, r.text
    assert r.json()["outcome"] in ("accepted", "duplicate")


# -- each kind of event, on the sample's statement -------------------------------

def test_buygoods_payment_is_recorded_with_every_column(k2c):
    body = fresh(fixture("node-stringified/buygoodsreceivedhook.json"),
                 **{"/id": str(uuid.uuid4())})
    eid = json.loads(body)["id"]
    r = post(k2c, body, sign(body))
    assert (r.status_code, r.text) == (200, reply("accepted"))
    row = events(k2c, eid)[0]
    assert row.pop("received_at")
    assert row == {
        "event_id": eid, "topic": "buygoods_transaction_received",
        "reference": "OJM6Q1W84K", "amount": "100.0", "currency": "KES",
        "status": "Received", "till_number": "514459",
        "sender_phone": "+254999999999", "sender_first_name": "Jane",
        "sender_last_name": "Doe", "origination_time": "2020-10-22T10:43:19+03:00",
        "k2_created_at": "2020-10-22T10:43:20+03:00",
        "raw_body": body.decode(), "remote_user": None}
    assert audit(k2c, eid)[0][:8] == ["200", "k2connect", "buygoods_transaction_received",
                                      eid, "OJM6Q1W84K", "100.0", "KES", "accepted"]
    line = k2c.wait_log(r"\[k2notify:info\] .* webhook topic=buygoods_transaction_received "
                        f"id={eid} reference=OJM6Q1W84K amount=100.0 outcome=accepted$")
    assert line


def test_resend_is_a_duplicate_and_recorded_once(k2c):
    body = fresh(fixture("node-stringified/b2breceived.json"), **{"/id": str(uuid.uuid4())})
    eid = json.loads(body)["id"]
    assert post(k2c, body, sign(body)).text == reply("accepted")
    assert post(k2c, body, sign(body)).text == reply("duplicate")
    assert len(events(k2c, eid)) == 1
    # (each line is written after its reply: the second may come first)
    assert sorted(e[7] for e in audit(k2c, eid, n=2)) == ["accepted", "duplicate"]


def test_reversal_is_an_event_of_its_own_naming_the_reversed_payment(k2c):
    paid = fresh(fixture("node-stringified/buygoodsreceivedhook.json"),
                 **{"/id": str(uuid.uuid4()), "/event/resource/reference": "REV1234567"})
    back = fresh(fixture("node-stringified/buygoodsreversedhook.json"),
                 **{"/id": str(uuid.uuid4()), "/event/resource/reference": "REV1234567"})
    for body in (paid, back):
        assert post(k2c, body, sign(body)).text == reply("accepted")
    con = sqlite3.connect(k2c.db)
    rows = con.execute("SELECT topic, status FROM k2_events WHERE reference = "
                       "'REV1234567' ORDER BY topic").fetchall()
    con.close()
    assert rows == [("buygoods_transaction_received", "Received"),
                    ("buygoods_transaction_reversed", "Reversed")]


@pytest.mark.parametrize("name,status,amount", [
    ("stksuccessresult", "Success", "100.0"),
    ("stkunsuccessfulresult", "Failed", None),
])
def test_stk_push_result_is_recorded_by_its_data_id(k2c, name, status, amount):
    body = fresh(fixture(f"node-stringified/{name}.json"), **{"/data/id": str(uuid.uuid4())})
    eid = json.loads(body)["data"]["id"]
    assert post(k2c, body, sign(body)).text == reply("accepted")
    row = events(k2c, eid)[0]
    assert (row["topic"], row["status"], row["amount"]) == ("incoming_payment", status, amount)
    assert audit(k2c, eid)[0][2] == "incoming_payment"


def test_daraja_shaped_payload_is_recorded_by_its_m_pesa_reference(k2c):
    ref = "D" + uuid.uuid4().hex[:9].upper()
    body = fresh(fixture("node-stringified/darajabuygoods.json"), **{"/TransID": ref})
    r = post(k2c, body, sign(body), path="/k2/webhook-daraja")
    assert (r.status_code, r.text) == (200, reply("accepted"))
    row = events(k2c, ref)[0]
    assert (row["topic"], row["reference"], row["amount"], row["sender_phone"]) == (
        "daraja", ref, "100.0", "+254999999999")


def test_topic_not_listed_is_answered_200_ignored_and_not_recorded(k2c):
    body = fresh(fixture("node-stringified/customercreatedhook.json"),
                 **{"/id": str(uuid.uuid4())})
    eid = json.loads(body)["id"]
    r = post(k2c, body, sign(body))
    assert (r.status_code, r.text) == (200, reply("ignored"))
    assert events(k2c, eid) == []
    assert audit(k2c, eid)[0][7] == "ignored"
    assert k2c.wait_log(r"webhook topic=customer_created id=" + eid
                        + r" .*outcome=ignored: topic 'customer_created' is not "
                        r"in K2NotifyTopics$")


def test_unknown_account_is_recorded_and_flagged_account_not_found(k2c):
    known = fresh(fixture("node-stringified/stksuccessresult.json"),
                  **{"/data/id": str(uuid.uuid4())})
    unknown = fresh(known, **{"/data/id": str(uuid.uuid4()),
                              "/data/attributes/metadata/customer_id": "NOBODY"})
    assert post(k2c, known, sign(known), path="/k2/known").text == reply("accepted")
    r = post(k2c, unknown, sign(unknown), path="/k2/known")
    assert (r.status_code, r.text) == (200, reply("account_not_found"))
    eid = json.loads(unknown)["data"]["id"]
    assert len(events(k2c, eid)) == 1
    assert k2c.wait_log(r"\[k2notify:warn\] .* webhook topic=incoming_payment id="
                        + eid + r" .*outcome=account_not_found: recorded, but "
                        r"K2NotifyAccountQuery finds no such account$")


def test_same_event_id_with_another_amount_is_a_conflict_answered_200(k2c):
    first = fresh(fixture("node-stringified/buygoodsreceivedhook.json"),
                  **{"/id": str(uuid.uuid4())})
    other = fresh(first, **{"/event/resource/amount": "999.0"})
    eid = json.loads(first)["id"]
    assert post(k2c, first, sign(first), path="/k2/all").text == reply("accepted")
    assert post(k2c, first, sign(first), path="/k2/all").text == reply("duplicate")
    k2c.expect_error(r"\[k2notify:error\] .* webhook topic=buygoods_transaction_received "
                     r"id=\S+ .*outcome=conflict: this event id is already recorded "
                     r"with amount=100\.0$")
    r = post(k2c, other, sign(other), path="/k2/all")
    assert (r.status_code, r.text) == (200, reply("conflict"))
    assert [row["amount"] for row in events(k2c, eid)] == ["100.0"]


def test_event_stored_without_amount_then_resent_with_one_is_a_conflict(k2c):
    """A failed STK push has no amount (its resource is null: NULL stored);
    the same event id then arriving with an amount is not that event."""
    eid = str(uuid.uuid4())
    failed = fresh(fixture("node-stringified/stkunsuccessfulresult.json"),
                   **{"/data/id": eid})
    paid = fresh(fixture("node-stringified/stksuccessresult.json"), **{"/data/id": eid})
    assert post(k2c, failed, sign(failed), path="/k2/all").text == reply("accepted")
    assert [row["amount"] for row in events(k2c, eid)] == [None]
    assert post(k2c, failed, sign(failed), path="/k2/all").text == reply("duplicate")
    k2c.expect_error(r"\[k2notify:error\] .* webhook topic=incoming_payment id="
                     + eid + r" .*outcome=conflict: this event id is already "
                     r"recorded with amount=NULL$")
    off = k2c.log_offset()
    r = post(k2c, paid, sign(paid), path="/k2/all")
    assert (r.status_code, r.text) == (200, reply("conflict"))
    assert k2c.wait_log(r"\[k2notify:error\] .* webhook topic=incoming_payment id="
                        + eid + r" .*outcome=conflict: this event id is already "
                        r"recorded with amount=NULL$", off)
    assert [(row["amount"], row["status"]) for row in events(k2c, eid)] == [(None, "Failed")]
    assert [e[7] for e in audit(k2c, eid, n=3)] == ["accepted", "duplicate", "conflict"]


# -- every refusal ---------------------------------------------------------------

def refused(r, status, description, reason=None):
    want = {"description": description}
    if reason:
        want["reason"] = reason
    assert (r.status_code, r.headers["Content-Type"], r.json()) == (
        status, "application/json", want)


@pytest.mark.parametrize("how", ["missing", "wrong key", "one digit", "short"])
def test_missing_or_wrong_signature_is_401_and_nothing_is_recorded(k2c, how):
    body = fresh(fixture("node-stringified/buygoodsreceivedhook.json"),
                 **{"/id": str(uuid.uuid4())})
    good = sign(body)
    sig = {"missing": None, "wrong key": sign(body, b"another key"),
           "one digit": good[:-1] + ("0" if good[-1] != "0" else "1"),
           "short": good[:40]}[how]
    off = k2c.log_offset()
    r = post(k2c, body, sig)
    refused(r, 401, "Unauthorized", "missing or invalid signature")
    assert events(k2c, json.loads(body)["id"]) == []
    lines = k2c.wait_log(r"\[k2notify:warn\] .*outcome=bad_signature: ", off)
    assert lines and good not in "".join(lines)


def test_signature_in_uppercase_hex_is_accepted(k2c):
    body = fresh(fixture("node-stringified/m2mreceived.json"), **{"/id": str(uuid.uuid4())})
    assert post(k2c, body, sign(body).upper()).text == reply("accepted")


@pytest.mark.parametrize("ctype", [None, "text/plain", "application/x-www-form-urlencoded",
                                   "application/jsonx"])
def test_body_that_is_not_application_json_is_415(k2c, ctype):
    body = fresh(fixture("node-stringified/m2mreceived.json"), **{"/id": str(uuid.uuid4())})
    refused(post(k2c, body, sign(body), ctype=ctype), 415, "Unsupported Media Type",
            "the body must be application/json")


def test_json_content_type_with_parameters_is_accepted(k2c):
    body = fresh(fixture("node-stringified/m2mreceived.json"), **{"/id": str(uuid.uuid4())})
    r = post(k2c, body, sign(body), ctype="application/json; charset=utf-8")
    assert r.text == reply("accepted")


@pytest.mark.parametrize("body,reason", [
    (b'{"id":"a","id":"b"}', "a JSON object has the same key twice"),
    (b'["an", "array"]', "the body is not a JSON object"),
    (b'{"id": "x"} trailing', "the body has data after the JSON value"),
    (b'{"id": "x"', "the body is not valid JSON"),
    (b'{"id": "\\u0000"}', "the body contains a NUL character"),
    (b'{"id": "\x00"}', "the body contains a NUL character"),
    (b'{"id": "\xff"}', "the body is not valid UTF-8"),
    (b'[' * 40 + b']' * 40, "the JSON nests more than 32 levels deep"),
    (b'{"amount": 123456789012345678901234567890}',
     "a JSON number is out of range (integers beyond 64 bits, reals beyond a "
     "double)"),
    (b'', "the body is empty"),
])
def test_signed_body_that_is_not_a_json_object_is_400_and_records_nothing(k2c, body, reason):
    before = sqlite3.connect(k2c.db).execute("SELECT count(*) FROM k2_events").fetchone()
    off = k2c.log_offset()
    refused(post(k2c, body, sign(body)), 400, "Bad Request", reason)
    assert sqlite3.connect(k2c.db).execute("SELECT count(*) FROM k2_events").fetchone() == before
    assert k2c.wait_log(r"\[k2notify:info\] .* webhook topic=- id=- .*"
                        r"outcome=bad_request: " + re.escape(reason), off)


def test_unsigned_malformed_body_is_401_before_it_is_parsed(k2c):
    refused(post(k2c, b"not json at all", None), 401, "Unauthorized",
            "missing or invalid signature")


def test_body_over_max_body_is_413(k2c):
    body = b'{"topic":"x","pad":"' + b"x" * 70000 + b'"}'
    refused(post(k2c, body, sign(body)), 413, "Request Entity Too Large",
            "the body is larger than K2NotifyMaxBody (65536 bytes)")


def test_get_is_405(k2c):
    r = requests.get(k2c.base + "/k2/webhook", timeout=10)
    assert r.status_code == 405 and r.headers["Allow"] == "POST"


def test_database_failure_is_500_never_200_and_a_resend_is_accepted_after(make_httpd):
    s = k2connect_server("k2connect-dbfail")
    s.expect_error(r"\[k2notify:error\] .* webhook .*outcome=error: "
                   r"K2NotifyRecordQuery failed \(\d+\): (no such table: k2_events"
                   r"|not an error)$")
    s.start()
    try:
        con = sqlite3.connect(s.db)
        con.execute("ALTER TABLE k2_events RENAME TO k2_events_away")
        con.commit()
        con.close()
        body = fresh(fixture("node-stringified/buygoodsreceivedhook.json"),
                     **{"/id": str(uuid.uuid4())})
        r = post(s, body, sign(body))
        refused(r, 500, "Internal Server Error")
        con = sqlite3.connect(s.db)
        con.execute("ALTER TABLE k2_events_away RENAME TO k2_events")
        con.commit()
        con.close()
        assert post(s, body, sign(body)).text == reply("accepted")
        assert len(events(s, json.loads(body)["id"])) == 1
        s.expect_error(r"\[k2notify:error\] .*cannot prepare the K2Notify\w+ "
                       r"statement again \(1\): no such table: k2_events")
        # a connection mod_dbd opens meanwhile cannot prepare them either,
        # and the request that needed it has none
        s.expect_error(r"\[dbd:error\] .*AH0063[23]: ")
        s.expect_error(r"\[k2notify:error\] .* webhook .*outcome=error: no "
                       r"database connection")
    finally:
        s.stop()
        bad = s.unexpected_errors()
        s.cleanup()
    assert not bad, bad


def test_k2send_signs_and_sends_a_webhook(k2c):
    out = subprocess.run([os.path.join(TOP, "tools", "k2send"), k2c.base + "/k2/webhook",
                          "--format", "k2connect", "--key-file",
                          os.path.join(k2c.dir, "node.key")],
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stdout + out.stderr
    assert out.stdout.splitlines()[:2] == ["200 OK", reply("accepted")]


# -- the configuration ----------------------------------------------------------

def location(*lines, path="/k2/hook"):
    return (f"<Location {path}>\n    SetHandler k2notify\n"
            + "".join(f"    {l}\n" for l in lines) + "</Location>\n")


RECORD = ('K2NotifyRecordQuery "INSERT INTO k2_events (event_id, topic, raw_body) '
          'VALUES (%s, %s, %s) ON CONFLICT (event_id) DO NOTHING" /id /topic raw_body')


def configtest(make_httpd, body):
    s = make_httpd("k2c-conf", body, extra_sql=open(SCHEMA).read())
    write_key(s, "node", NODE_KEY)
    return s.configtest()


def test_sample_passes_configtest(make_httpd):
    s = make_httpd("k2c-sample", sample_locations({}), extra_sql=open(SCHEMA).read())
    write_key(s, "node", NODE_KEY)
    assert s.configtest() == (0, "Syntax OK\n")


def test_k2connect_without_a_key_fails_configtest_naming_both_directives(make_httpd):
    rc, out = configtest(make_httpd, location("K2NotifyFormat k2connect", RECORD))
    assert rc != 0
    assert ("<Location /k2/hook> has K2NotifyFormat k2connect but no "
            "K2NotifySignatureKeyFile") in out, out


@pytest.mark.parametrize("pointer", ["id", "/a~2b", "/a~"])
def test_field_that_is_no_json_pointer_fails_configtest(make_httpd, pointer):
    rc, out = configtest(make_httpd, location(
        "K2NotifyFormat k2connect", "K2NotifySignatureKeyFile {dir}/node.key",
        f'K2NotifyRecordQuery "INSERT INTO k2_events (event_id) VALUES (%s)" {pointer}'))
    assert rc != 0
    assert re.search(r"K2NotifyRecordQuery: (unknown field 'id'|'" + re.escape(pointer)
                     + r"' is not a JSON pointer \(RFC 6901\))", out), out


def test_form_field_in_a_k2connect_location_fails_configtest(make_httpd):
    rc, out = configtest(make_httpd, location(
        "K2NotifyFormat k2connect", "K2NotifySignatureKeyFile {dir}/node.key",
        'K2NotifyRecordQuery "INSERT INTO k2_events (event_id, topic, raw_body) '
        'VALUES (%s, %s, %s)" k2_transaction_id transaction_type remote_user'))
    assert rc != 0
    assert re.search(r"K2NotifyRecordQuery \(line \d+ of \S+\): 'k2_transaction_id' "
                     r"is a form field, but <Location /k2/hook> has K2NotifyFormat "
                     r"k2connect", out), out


def test_json_pointer_in_a_form_location_fails_configtest(make_httpd):
    rc, out = configtest(make_httpd, location(
        'K2NotifyAccountQuery "SELECT ac_no FROM accounts WHERE ac_no = %s"',
        RECORD))
    assert rc != 0
    assert re.search(r"K2NotifyRecordQuery \(line \d+ of \S+\): '/id' is a FIELD of "
                     r"K2 Connect webhooks, but <Location /k2/hook> receives K2's form "
                     r"\(K2NotifyFormat form, the default\)", out), out


def test_inner_location_inherits_the_format_of_the_outer_one(make_httpd):
    """The format of an enclosing location counts: form fields in an inner
    location of a k2connect one are refused; pointers are fine."""
    outer = ("<Location /k2>\n    K2NotifyFormat k2connect\n"
             "    K2NotifySignatureKeyFile {dir}/node.key\n</Location>\n")
    rc, out = configtest(make_httpd, outer + location(RECORD, path="/k2/inner"))
    assert (rc, out) == (0, "Syntax OK\n")
    rc, out = configtest(make_httpd, outer + location(
        'K2NotifyRecordQuery "INSERT INTO k2_events (event_id) VALUES (%s)" ac_no',
        path="/k2/inner"))
    assert rc != 0 and "'ac_no' is a form field" in out, out


K2CONNECT_OUTER = ("<Location /k2>\n    K2NotifyFormat k2connect\n"
                   "    K2NotifySignatureKeyFile {dir}/node.key\n</Location>\n")
FORM_RECORD = ('K2NotifyRecordQuery "INSERT INTO k2_transactions (k2_transaction_id, '
               'ac_no, amount, currency) VALUES (%s, %s, %s, %s) ON CONFLICT '
               '(k2_transaction_id) DO NOTHING" k2_transaction_id ac_no amount currency')


def test_outer_location_does_not_reach_a_sibling_that_only_starts_with_its_path(make_httpd):
    """httpd applies <Location /k2> to /k2 and /k2/..., not to /k2form (its
    match stops at a '/' boundary): /k2form receives K2's form, and its form
    fields are accepted by configtest, then by the running server."""
    body = K2CONNECT_OUTER + location(
        AUTH.strip(), 'K2NotifyAccountQuery "SELECT ac_no FROM accounts WHERE ac_no = %s"',
        FORM_RECORD, path="/k2form")
    s = make_httpd("k2c-sibling", body, extra_sql=open(SCHEMA).read())
    write_key(s, "node", NODE_KEY)
    assert s.configtest() == (0, "Syntax OK\n")
    s.start()
    n = notification()
    r = s.post(n, path="/k2form")
    assert (r.status_code, r.text) == (200, '{"status":"01","description":"Accepted"}')
    assert len(s.rows(n["k2_transaction_id"])) == 1


def test_json_pointers_in_a_sibling_that_only_starts_with_the_outer_path_fail_configtest(make_httpd):
    """<Location /k2> with K2NotifyFormat k2connect does not make /k2hook a
    webhook location: its pointers are refused (else it would answer every
    notification with an error)."""
    rc, out = configtest(make_httpd, K2CONNECT_OUTER + location(RECORD, path="/k2hook"))
    assert rc != 0
    assert re.search(r"K2NotifyRecordQuery \(line \d+ of \S+\): '/id' is a FIELD of "
                     r"K2 Connect webhooks, but <Location /k2hook> receives K2's form", out), out


def test_raw_body_in_a_form_location_fails_configtest(make_httpd):
    """raw_body is the webhook's body: K2's form location has none to bind,
    whether or not it is the only FIELD of the statement."""
    rc, out = configtest(make_httpd, location(
        'K2NotifyAccountQuery "SELECT ac_no FROM accounts WHERE ac_no = %s"',
        'K2NotifyRecordQuery "INSERT INTO k2_events (raw_body, remote_user) VALUES '
        '(%s, %s)" raw_body remote_user'))
    assert rc != 0
    assert re.search(r"K2NotifyRecordQuery \(line \d+ of \S+\): 'raw_body' is a FIELD of "
                     r"K2 Connect webhooks, but <Location /k2/hook> receives K2's form", out), out
    rc, out = configtest(make_httpd, location(
        'K2NotifyRecordQuery "INSERT INTO k2_events (event_id, raw_body) VALUES '
        '(%s, %s)" k2_transaction_id raw_body'))
    assert rc != 0 and "K2NotifyRecordQuery: the FIELDs mix form fields and JSON " \
        "pointers (or raw_body)" in out, out


def test_topics_in_a_form_location_fail_configtest(make_httpd):
    rc, out = configtest(make_httpd, location(
        'K2NotifyAccountQuery "SELECT ac_no FROM accounts WHERE ac_no = %s"',
        "K2NotifyTopics buygoods_transaction_received"))
    assert rc != 0 and "K2NotifyTopics (line" in out and "which has no topics" in out, out


def test_unknown_format_fails_configtest(make_httpd):
    rc, out = configtest(make_httpd, location("K2NotifyFormat json"))
    assert rc != 0 and "K2NotifyFormat: 'json' is not a format: form or k2connect" in out


def test_account_query_without_field_in_a_k2connect_location_fails_configtest(make_httpd):
    rc, out = configtest(make_httpd, location(
        "K2NotifyFormat k2connect", "K2NotifySignatureKeyFile {dir}/node.key", RECORD,
        'K2NotifyAccountQuery "SELECT ac_no FROM accounts WHERE ac_no = %s"'))
    assert rc != 0 and "it needs its FIELD, a JSON pointer" in out, out
