"""The rules of K2's notification spec and of issue 2, proved through a real
Apache with mod_k2notify and a real SQLite file (the session server `k2` of
conftest.py).

Every test checks the exact HTTP status, the exact body, the rows recorded
for its transaction id, the k2notify:info decision line in the error log and
the K2_* variables in the access log.  Each request carries an unknown
`probe=<hex>` query parameter (ignored by the module) so that its access-log
line can be found even when it has no k2_transaction_id.
"""
import json
import re
import subprocess
import time
import urllib.parse
import uuid

import pytest
import requests

from conftest import PASSWORD, SPEC_BODY, USER, Httpd, form, new_id, notification

ACCEPTED = b'{"status":"01","description":"Accepted"}'
NOT_FOUND = b'{"status":"02","description":"Account not Found"}'
INVALID = b'{"status":"03","description":"Invalid Payment"}'

# The reasons the module gives in 400 bodies and in its decision line.
R_ESCAPE = "broken percent-encoding"
R_NUL = "NUL byte in a parameter"
R_CONTROL = "control character in a parameter"
R_UTF8 = "parameter is not valid UTF-8"
R_EMPTY_NAME = "parameter with an empty name"
R_CONFLICT = "parameter given twice with different values: {}"
R_MISSING = "required parameter missing or empty: {}"
R_DATE = "transaction_date is not D/M/YY or D/M/YYYY"
R_TIME = "transaction_time is not H:MM AM|PM"
R_AMOUNT = "amount is not a positive decimal with at most two decimals"
R_CURRENCY = "currency not accepted"
R_BILLER = "biller_number not accepted"
R_FORM = "the body must be application/x-www-form-urlencoded"

# One k2notify decision line in the error log.
DECISION = re.compile(r"\[k2notify:info\].*notification k2_transaction_id=")


# -- helpers ----------------------------------------------------------------

def error_body(description, reason):
    """The exact JSON body of a non-200 reply."""
    return json.dumps({"description": description, "reason": reason},
                      separators=(",", ":"), ensure_ascii=False).encode()


def access_by_probe(server, probe, n=1, timeout=5):
    """Access-log entries whose request line carries probe, split like
    Httpd.access_entry: [status, id, ac_no, amount, currency, k2 status,
    outcome, user, request line].  Waits: the line follows the reply."""
    deadline = time.time() + timeout
    while True:
        out = []
        for line in server.access_lines():
            status, rest = line.split(" ", 1)
            parts = rest.split("|", 7)
            if probe in parts[-1]:
                out.append([status] + parts)
        if len(out) >= n or time.time() > deadline:
            return out
        time.sleep(0.05)


FORM_TYPE = "application/x-www-form-urlencoded"


class RawReply:
    """The parts of a raw HTTP/1.1 reply the tests look at, named as in
    requests.Response."""

    def __init__(self, data):
        head, _, self.content = data.partition(b"\r\n\r\n")
        lines = head.decode("iso-8859-1").split("\r\n")
        self.status_line = lines[0]
        self.status_code = int(lines[0].split(" ")[1])
        self.headers = requests.structures.CaseInsensitiveDict(
            l.split(": ", 1) for l in lines[1:])


def raw_request(server, target, body, content_type=None):
    """POST body to target exactly as given, with Basic credentials and a
    Content-Length; content_type None sends no Content-Type header."""
    ctype = f"Content-Type: {content_type}\r\n" if content_type else ""
    return RawReply(server.raw(
        f"POST {target} HTTP/1.1\r\n"
        f"Host: 127.0.0.1:{server.port}\r\n"
        f"Authorization: {Httpd.basic()}\r\n"
        f"{ctype}Content-Length: {len(body)}\r\n"
        "Connection: close\r\n\r\n".encode() + body))


class Exchange:
    """One request to the server, with what is needed to check its effects:
    the error-log offset and row count before it, and a probe for its
    access-log line."""

    def __init__(self, k2, body=None, query=None, path="/k2/notify",
                 exact_query=None, **kw):
        self.k2 = k2
        self.probe = uuid.uuid4().hex
        self.offset = k2.log_offset()
        self.count_before = k2.count()
        q = "probe=" + self.probe + ("&" + query if query else "")
        if exact_query is None:
            self.reply = k2.post(body, path=path, query=q, **kw)
        else:
            # requests and urllib3 re-quote a URL ("%G1" becomes "%25G1"):
            # send the request line byte for byte instead.
            self.reply = raw_request(k2, f"{path}?{q}&{exact_query}",
                                     body.encode(), FORM_TYPE)

    def access(self):
        entries = access_by_probe(self.k2, self.probe)
        assert len(entries) == 1, entries
        return entries[0]

    def decision(self, pattern):
        """The single k2notify decision line this request logged; it must
        match pattern."""
        found = self.k2.wait_log(pattern, self.offset)
        assert len(found) == 1, (pattern, self.k2.error_lines_since(self.offset))
        decisions = [l for l in self.k2.error_lines_since(self.offset)
                     if DECISION.search(l)]
        assert decisions == found, decisions
        return found[0]


def decision_rx(txid, ac_no, amount, outcome, detail=None):
    """The decision line: id, account, amount and outcome (and its reason)."""
    rx = (r"notification k2_transaction_id=" + re.escape(txid) + r" ac_no="
          + re.escape(ac_no) + r" amount=" + re.escape(amount) + r" outcome="
          + re.escape(outcome))
    if detail is not None:
        rx += re.escape(": " + detail)
    return rx + r"$"


def assert_answered(ex, body, outcome, k2status, fields):
    """A 200 reply with a K2 status: exact body, JSON content type, one
    decision line, the K2_* variables in the access log."""
    r = ex.reply
    assert r.status_code == 200
    assert r.headers["Content-Type"] == "application/json"
    assert r.content == body
    detail = "already recorded" if outcome == "duplicate" else None
    ex.decision(decision_rx(fields["k2_transaction_id"], fields["ac_no"],
                            fields["amount"], outcome, detail))
    assert ex.access()[:7] == ["200", fields["k2_transaction_id"], fields["ac_no"],
                               fields["amount"], fields["currency"], k2status,
                               outcome]


def assert_recorded_once(k2, ex, fields, **expect):
    rows = k2.rows(fields["k2_transaction_id"])
    assert len(rows) == 1, rows
    for k, v in expect.items():
        assert rows[0][k] == v, (k, rows[0][k], v)
    return rows[0]


def assert_nothing_recorded(k2, ex, txid=None):
    assert k2.count() == ex.count_before
    if txid is not None:
        assert k2.rows(txid) == []


def assert_refused(ex, status, description, reason, txid=None, logged_id=None):
    """A non-200 refusal: exact status, exact JSON body, nothing recorded, one
    bad_request decision line with its reason (and logged_id, by default
    txid, as its k2_transaction_id), K2_OUTCOME in the access log."""
    r = ex.reply
    assert r.status_code == status, r.text
    assert r.headers["Content-Type"] == "application/json"
    assert r.content == error_body(description, reason)
    assert_nothing_recorded(ex.k2, ex, txid)
    line = ex.decision(r"notification k2_transaction_id=\S* ac_no=\S* amount=.* "
                       r"outcome=bad_request: " + re.escape(reason) + r"$")
    logged_id = txid if logged_id is None else logged_id
    if logged_id is not None:
        assert "notification k2_transaction_id=" + logged_id + " " in line
    entry = ex.access()
    assert entry[0] == str(status)
    assert entry[5:7] == ["", "bad_request"]


def assert_bad_request(ex, reason, txid=None, logged_id=None):
    assert_refused(ex, 400, "Bad Request", reason, txid, logged_id)


def assert_invalid_payment(k2, ex, fields, reason):
    r = ex.reply
    assert r.status_code == 200
    assert r.headers["Content-Type"] == "application/json"
    assert r.content == INVALID
    assert_nothing_recorded(k2, ex, fields["k2_transaction_id"])
    ex.decision(decision_rx(fields["k2_transaction_id"], fields["ac_no"],
                            fields["amount"], "invalid_payment", reason))
    assert ex.access()[:7] == ["200", fields["k2_transaction_id"], fields["ac_no"],
                               fields["amount"], fields["currency"], "03",
                               "invalid_payment"]


# -- the spec's own curl line -----------------------------------------------

# Section 2 of the spec, verbatim but for "¤cy" (a rendering artifact of
# "&currency") and the URL, passed as its own argument.
SPEC_CURL_DATA = ("k2_account_id=12&k2_transaction_id=15&mm_system_id=M-PESA"
                  "&mp_transaction_id=54445&biller_number=888555"
                  "&transaction_date=26%2F4%2F11&transaction_time=1%3A03%20PM"
                  "&transaction_type=Paybill&ac_no=A123333&sender=0723456789"
                  "&first_name=John&last_name=Doe&middle_name=K.&amount=1500"
                  "&currency=KES")


def test_spec_curl_line_verbatim_gets_01(k2):
    # This test owns k2_transaction_id 15 (the spec's).  Another test of the
    # session may post the spec's body too: then this is a duplicate, which
    # must still be 01 with a single row.
    assert SPEC_CURL_DATA == SPEC_BODY      # conftest's copy is the same text
    url = f"http://k2login:K2Password@127.0.0.1:{k2.port}/k2/notify"
    p = subprocess.run(["curl", "-d", SPEC_CURL_DATA, url],
                       capture_output=True, timeout=30)
    assert p.returncode == 0, p.stderr
    assert p.stdout == ACCEPTED
    assert json.loads(p.stdout) == {"status": "01", "description": "Accepted"}
    rows = k2.rows("15")
    assert len(rows) == 1, rows
    assert {k: rows[0][k] for k in ("ac_no", "amount", "currency",
                                    "transaction_timestamp")} == {
        "ac_no": "A123333", "amount": "1500", "currency": "KES",
        "transaction_timestamp": "2011-04-26T13:03:00"}
    assert [e[6] for e in k2.access_entry("15")][-1] in ("accepted", "duplicate")


# -- parameters in the query string, the body, or both ----------------------

def test_query_string_form_with_empty_body_gets_01(k2):
    # The spec's "actual POST call": every parameter in the URL.
    n = notification()
    ex = Exchange(k2, None, query=form(n))
    assert_answered(ex, ACCEPTED, "accepted", "01", n)
    assert_recorded_once(k2, ex, n, ac_no="A123333", amount="1500",
                         currency="KES",
                         transaction_timestamp="2011-04-26T13:03:00")


def test_parameters_split_between_query_and_body_get_01(k2):
    n = notification()
    items = list(n.items())
    ex = Exchange(k2, form(dict(items[8:])), query=form(dict(items[:8])))
    assert_answered(ex, ACCEPTED, "accepted", "01", n)
    assert_recorded_once(k2, ex, n, ac_no="A123333", amount="1500",
                         currency="KES",
                         transaction_timestamp="2011-04-26T13:03:00")


def test_same_parameter_in_query_and_body_with_same_value_gets_01(k2):
    n = notification()
    ex = Exchange(k2, form(n), query=form({"ac_no": n["ac_no"],
                                           "amount": n["amount"]}))
    assert_answered(ex, ACCEPTED, "accepted", "01", n)
    assert_recorded_once(k2, ex, n, ac_no="A123333", amount="1500")


def test_same_parameter_in_query_and_body_with_different_value_is_400(k2):
    n = notification()
    ex = Exchange(k2, form(n), query="amount=2000")
    assert_bad_request(ex, R_CONFLICT.format("amount"), n["k2_transaction_id"])


# -- reply format ------------------------------------------------------------

@pytest.mark.parametrize("overrides,body,status", [
    ({}, ACCEPTED, "01"),
    ({"ac_no": "NOSUCH1"}, NOT_FOUND, "02"),
    ({"amount": "0"}, INVALID, "03"),
], ids=["01", "02", "03"])
def test_reply_is_byte_exact_json_with_string_status(k2, overrides, body, status):
    n = notification(**overrides)
    ex = Exchange(k2, n)
    r = ex.reply
    assert r.status_code == 200
    assert r.headers["Content-Type"] == "application/json"
    assert r.headers["Content-Length"] == str(len(body))
    assert r.content == body
    assert isinstance(r.json()["status"], str) and r.json()["status"] == status
    assert ex.access()[5] == status
    assert len(k2.rows(n["k2_transaction_id"])) == (1 if status == "01" else 0)
    assert k2.count() == ex.count_before + (1 if status == "01" else 0)


# -- duplicates: a resend never posts twice nor is refused ------------------

def test_duplicate_notification_gets_01_twice_and_one_row(k2):
    n = notification()
    first = Exchange(k2, n)
    assert_answered(first, ACCEPTED, "accepted", "01", n)
    second = Exchange(k2, n)
    assert_answered(second, ACCEPTED, "duplicate", "01", n)
    assert k2.count() == first.count_before + 1
    assert_recorded_once(k2, second, n, amount="1500")
    assert [e[6] for e in k2.access_entry(n["k2_transaction_id"])] == [
        "accepted", "duplicate"]


def test_duplicate_with_a_different_non_key_field_keeps_the_first_row(k2):
    n = notification()
    first = Exchange(k2, n)
    assert_answered(first, ACCEPTED, "accepted", "01", n)
    resend = dict(n, amount="2000", sender="0700000000")
    second = Exchange(k2, resend)
    assert_answered(second, ACCEPTED, "duplicate", "01", resend)
    assert k2.count() == first.count_before + 1
    assert_recorded_once(k2, second, n, amount="1500")


# -- 02 Account not Found ---------------------------------------------------

@pytest.mark.parametrize("ac_no", ["A999999", "a123333", "A123333 ", "A12333"],
                         ids=["unknown", "lower_case", "trailing_space", "prefix"])
def test_unknown_account_gets_02_and_exact_matching(k2, ac_no):
    n = notification(ac_no=ac_no)
    ex = Exchange(k2, n)
    assert_answered(ex, NOT_FOUND, "account_not_found", "02", n)
    assert_nothing_recorded(k2, ex, n["k2_transaction_id"])


# -- 03 Invalid Payment -----------------------------------------------------

BAD_AMOUNTS = ["0", "0.00", "-5", "1e3", "1,500", "1.234", " 1500", "1500 ",
               ".5", "5.", "abc", "+5", "0x10", "1500.5.0"]


@pytest.mark.parametrize("amount", BAD_AMOUNTS)
def test_invalid_amount_gets_03(k2, amount):
    n = notification(amount=amount)
    ex = Exchange(k2, n)
    assert_invalid_payment(k2, ex, n, R_AMOUNT)


@pytest.mark.parametrize("amount", ["1500", "1500.5", "1500.50", "0.01"])
def test_plain_positive_amount_with_two_decimals_gets_01(k2, amount):
    n = notification(amount=amount)
    ex = Exchange(k2, n)
    assert_answered(ex, ACCEPTED, "accepted", "01", n)
    assert_recorded_once(k2, ex, n, amount=amount)


def test_currency_not_accepted_gets_03(k2):
    n = notification(currency="USD")
    ex = Exchange(k2, n)
    assert_invalid_payment(k2, ex, n, R_CURRENCY)


def test_currency_accepted_where_configured_gets_01(k2):
    n = notification(currency="USD")
    ex = Exchange(k2, n, path="/k2/all")
    assert_answered(ex, ACCEPTED, "accepted", "01", n)
    assert_recorded_once(k2, ex, n, currency="USD")


@pytest.mark.parametrize("biller", ["999999", None, "888555 "],
                         ids=["other", "absent", "trailing_space"])
def test_biller_number_not_accepted_gets_03(k2, biller):
    n = notification(biller_number=biller)
    ex = Exchange(k2, n)
    assert_invalid_payment(k2, ex, n, R_BILLER)


@pytest.mark.parametrize("biller", ["999999", None], ids=["other", "absent"])
def test_any_biller_accepted_without_biller_numbers_gets_01(k2, biller):
    n = notification(biller_number=biller)
    ex = Exchange(k2, n, path="/k2/all")
    assert_answered(ex, ACCEPTED, "accepted", "01", n)
    assert_recorded_once(k2, ex, n, biller_number=biller)


# -- 400 Bad Request --------------------------------------------------------

REQUIRED = ["k2_transaction_id", "ac_no", "amount", "currency"]


@pytest.mark.parametrize("field", REQUIRED)
@pytest.mark.parametrize("how", ["missing", "empty"])
def test_required_parameter_missing_or_empty_is_400(k2, field, how):
    n = notification(**{field: None if how == "missing" else ""})
    txid = n.get("k2_transaction_id") or None
    ex = Exchange(k2, n)
    assert_bad_request(ex, R_MISSING.format(field), txid)
    if field == "k2_transaction_id":    # logged as absent (-) or empty
        shown = "-" if how == "missing" else ""
        assert ("k2_transaction_id=" + shown + " ac_no=A123333 "
                in ex.decision(r"outcome=bad_request"))


def with_raw(field, raw, **overrides):
    """A form body whose field (moved to the end) has a raw, unencoded value."""
    n = notification(**{field: None}, **overrides)
    return n, form(n) + "&" + field + "=" + raw


# (raw value of first_name as sent, reason)
BAD_VALUES = [
    ("Jo%G1hn", R_ESCAPE),
    ("John%", R_ESCAPE),
    ("John%4", R_ESCAPE),
    ("%zz", R_ESCAPE),
    ("Jo%00hn", R_NUL),
    ("John%0D%0AForged", R_CONTROL),
    ("John%0AForged", R_CONTROL),
    ("John%0DForged", R_CONTROL),
    ("John\r\nForged", R_CONTROL),
    ("John%09", R_CONTROL),
    ("John%7F", R_CONTROL),
    ("%C0%AF", R_UTF8),
    ("%FF", R_UTF8),
    ("%ED%A0%80", R_UTF8),
    ("%E2%82", R_UTF8),
    ("%E2%82John", R_UTF8),
    ("%F4%90%80%80", R_UTF8),
]


@pytest.mark.parametrize("raw,reason", BAD_VALUES,
                         ids=[repr(v[0]) for v in BAD_VALUES])
def test_undecodable_value_is_400(k2, raw, reason):
    n, body = with_raw("first_name", raw)
    ex = Exchange(k2, body)
    assert_bad_request(ex, reason, n["k2_transaction_id"])


@pytest.mark.parametrize("raw,reason", [("%G1", R_ESCAPE), ("%", R_ESCAPE),
                                        ("%00", R_NUL), ("%FF", R_UTF8)],
                         ids=["bad_hex", "trailing_percent", "nul", "bad_utf8"])
def test_undecodable_parameter_name_is_400(k2, raw, reason):
    n = notification()
    ex = Exchange(k2, form(n) + "&x" + raw + "=1")
    assert_bad_request(ex, reason, n["k2_transaction_id"])


@pytest.mark.parametrize("raw,reason", [("Jo%G1hn", R_ESCAPE), ("%00", R_NUL),
                                        ("%0D%0A", R_CONTROL), ("%C0%AF", R_UTF8)],
                         ids=["bad_hex", "nul", "crlf", "bad_utf8"])
def test_undecodable_value_in_query_string_is_400(k2, raw, reason):
    # The query string is read first: the id comes before the bad value.
    n = notification()
    ex = Exchange(k2, form(n), exact_query="k2_transaction_id="
                  + n["k2_transaction_id"] + "&first_name=" + raw)
    assert_bad_request(ex, reason, n["k2_transaction_id"])


def test_empty_parameter_name_is_400(k2):
    n = notification()
    ex = Exchange(k2, form(n) + "&=x")
    assert_bad_request(ex, R_EMPTY_NAME, n["k2_transaction_id"])


@pytest.mark.parametrize("field,other", [("amount", "2000"), ("ac_no", "B1"),
                                         ("currency", "USD"),
                                         ("first_name", "Jane")])
def test_same_parameter_twice_with_different_values_is_400(k2, field, other):
    n = notification()
    ex = Exchange(k2, form(n) + "&" + field + "=" + other)
    assert_bad_request(ex, R_CONFLICT.format(field), n["k2_transaction_id"])


def test_same_parameter_twice_with_same_value_gets_01(k2):
    n = notification()
    ex = Exchange(k2, form(n) + "&amount=1500&ac_no=A123333")
    assert_answered(ex, ACCEPTED, "accepted", "01", n)
    assert_recorded_once(k2, ex, n, amount="1500")


@pytest.mark.parametrize("field,value,reason", [
    ("transaction_date", "31/4/11", R_DATE),
    ("transaction_date", "26-4-11", R_DATE),
    ("transaction_date", "29/2/11", R_DATE),
    ("transaction_date", "26/13/11", R_DATE),
    ("transaction_date", "26/4/011", R_DATE),
    ("transaction_time", "13:03 PM", R_TIME),
    ("transaction_time", "1:03PM", R_TIME),
    ("transaction_time", "1:3 PM", R_TIME),
    ("transaction_time", "0:03 AM", R_TIME),
    ("transaction_time", "13:03", R_TIME),
])
def test_unparseable_date_or_time_is_400(k2, field, value, reason):
    n = notification(**{field: value})
    ex = Exchange(k2, n)
    assert_bad_request(ex, reason, n["k2_transaction_id"])


def test_absent_date_and_time_get_01_with_null_timestamp(k2):
    n = notification(transaction_date=None, transaction_time=None)
    ex = Exchange(k2, n)
    assert_answered(ex, ACCEPTED, "accepted", "01", n)
    assert_recorded_once(k2, ex, n, transaction_timestamp=None)


@pytest.mark.parametrize("field", ["middle_name", "first_name", "sender",
                                   "mp_transaction_id", "transaction_type"])
def test_empty_optional_field_gets_01(k2, field):
    n = notification(**{field: ""})
    ex = Exchange(k2, n)
    assert_answered(ex, ACCEPTED, "accepted", "01", n)
    assert_recorded_once(k2, ex, n, ac_no="A123333", amount="1500")


# -- decoding: '+' is a space, UTF-8 stored exactly, unknown ignored --------

def test_plus_is_space_and_utf8_values_are_stored_exactly(k2):
    n = notification(first_name=None, last_name=None)
    body = (form(n) + "&first_name=Wanjiru+Njeri&last_name="
            + urllib.parse.quote("Kamau-Wanjirũ"))
    ex = Exchange(k2, body, path="/k2/all")
    assert_answered(ex, ACCEPTED, "accepted", "01", n)
    assert_recorded_once(
        k2, ex, n, first_name="Wanjiru Njeri", last_name="Kamau-Wanjirũ",
        k2_account_id="12", mm_system_id="M-PESA", mp_transaction_id="54445",
        biller_number="888555", transaction_date="26/4/11",
        transaction_time="1:03 PM", transaction_type="Paybill", ac_no="A123333",
        sender="0723456789", middle_name="K.", amount="1500", currency="KES",
        transaction_timestamp="2011-04-26T13:03:00", remote_user="k2login")


def test_unknown_parameters_are_ignored(k2):
    n = notification()
    ex = Exchange(k2, form(n) + "&foo=bar&k2_extra=1&AC_NO=zzz&flag")
    assert_answered(ex, ACCEPTED, "accepted", "01", n)
    assert_recorded_once(k2, ex, n, ac_no="A123333", amount="1500")


def test_remote_user_is_the_authenticated_user(k2):
    n = notification()
    ex = Exchange(k2, n, path="/k2/all")
    assert_answered(ex, ACCEPTED, "accepted", "01", n)
    assert_recorded_once(k2, ex, n, remote_user="k2login")
    assert ex.access()[7] == "k2login"


@pytest.mark.parametrize("date,time_,stamp", [
    ("26/4/2011", "12:05 AM", "2011-04-26T00:05:00"),
    ("26/4/11", "12:05 PM", "2011-04-26T12:05:00"),
    ("1/1/99", "11:59 pm", "2099-01-01T23:59:00"),
    ("29/2/2012", "9:00 AM", "2012-02-29T09:00:00"),
])
def test_timestamp_is_built_from_date_and_time(k2, date, time_, stamp):
    n = notification(transaction_date=date, transaction_time=time_)
    ex = Exchange(k2, n, path="/k2/all")
    assert_answered(ex, ACCEPTED, "accepted", "01", n)
    assert_recorded_once(k2, ex, n, transaction_timestamp=stamp,
                         transaction_date=date, transaction_time=time_)


# -- methods: only POST -----------------------------------------------------

@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE"])
def test_other_methods_are_405_with_allow_post(k2, method):
    n = notification()
    ex = Exchange(k2, form(n) if method == "PUT" else None,
                  query=form(n) if method != "PUT" else None, method=method)
    assert ex.reply.headers["Allow"] == "POST"
    assert_refused(ex, 405, "Method Not Allowed",
                   f"method {method} not allowed: K2 notifications are POSTed")
    assert k2.rows(n["k2_transaction_id"]) == []


def test_head_is_405_without_body(k2):
    n = notification()
    probe = uuid.uuid4().hex
    before = k2.count()
    offset = k2.log_offset()
    r = requests.head(f"{k2.base}/k2/notify?probe={probe}&{form(n)}",
                      auth=(USER, PASSWORD), timeout=30)
    assert r.status_code == 405
    assert r.headers["Allow"] == "POST"
    assert r.content == b""
    assert k2.rows(n["k2_transaction_id"]) == [] and k2.count() == before
    entry = access_by_probe(k2, probe)
    assert [e[0] for e in entry] == ["405"] and entry[0][5:7] == ["", "bad_request"]
    assert len(k2.wait_log(r"outcome=bad_request: method HEAD not allowed: "
                           r"K2 notifications are POSTed$", offset)) == 1


# -- 413: the body cap ------------------------------------------------------

def padded(n, size):
    """n form-encoded, padded with an unknown parameter to exactly size bytes."""
    body = form(n) + "&pad="
    assert len(body) <= size
    return body + "x" * (size - len(body))


def test_body_over_max_body_is_413(k2):
    n = notification()
    ex = Exchange(k2, padded(n, 400), path="/k2/small")
    assert ex.reply.request.headers["Content-Length"] == "400"
    assert_refused(ex, 413, "Request Entity Too Large",
                   "the body is larger than K2NotifyMaxBody (200 bytes)",
                   n["k2_transaction_id"], logged_id="-")


def test_chunked_body_over_max_body_is_413(k2):
    n = notification()
    body = padded(n, 400).encode()
    ex = Exchange(k2, (body[i:i + 100] for i in range(0, 400, 100)),
                  path="/k2/small")
    assert ex.reply.request.headers["Transfer-Encoding"] == "chunked"
    assert_refused(ex, 413, "Request Entity Too Large",
                   "the body is larger than K2NotifyMaxBody (200 bytes)",
                   n["k2_transaction_id"], logged_id="-")


def test_chunked_body_under_max_body_gets_01(k2):
    n = notification()
    body = form(n).encode()
    ex = Exchange(k2, (body[i:i + 50] for i in range(0, len(body), 50)))
    assert ex.reply.request.headers["Transfer-Encoding"] == "chunked"
    assert_answered(ex, ACCEPTED, "accepted", "01", n)
    assert_recorded_once(k2, ex, n, ac_no="A123333", amount="1500")


# -- 415: a body that is not a form -----------------------------------------

@pytest.mark.parametrize("ctype", ["application/json", "text/plain",
                                   "multipart/form-data; boundary=x",
                                   "application/x-www-form-urlencodedx"])
def test_body_of_another_content_type_is_415(k2, ctype):
    n = notification()
    ex = Exchange(k2, form(n), headers={"Content-Type": ctype})
    assert_refused(ex, 415, "Unsupported Media Type", R_FORM,
                   n["k2_transaction_id"], logged_id="-")


def test_body_without_content_type_is_read_as_a_form(k2):
    n = notification()
    probe = uuid.uuid4().hex
    before = k2.count()
    offset = k2.log_offset()
    r = raw_request(k2, f"/k2/notify?probe={probe}", form(n).encode())
    assert r.status_line == "HTTP/1.1 200 OK"
    assert r.headers["Content-Type"] == "application/json"
    assert r.content == ACCEPTED
    assert k2.count() == before + 1
    assert len(k2.rows(n["k2_transaction_id"])) == 1
    assert len(k2.wait_log(decision_rx(n["k2_transaction_id"], "A123333",
                                       "1500", "accepted"), offset)) == 1
    assert access_by_probe(k2, probe)[0][5:7] == ["01", "accepted"]


@pytest.mark.parametrize("ctype", ["application/x-www-form-urlencoded; charset=UTF-8",
                                   "Application/X-WWW-Form-Urlencoded"])
def test_form_content_type_with_parameters_gets_01(k2, ctype):
    n = notification()
    ex = Exchange(k2, form(n), headers={"Content-Type": ctype})
    assert_answered(ex, ACCEPTED, "accepted", "01", n)
    assert_recorded_once(k2, ex, n, ac_no="A123333")


# -- 401 from mod_auth_basic: the handler never runs ------------------------

@pytest.mark.parametrize("auth", [None, ("k2login", "wrong"), ("intruder", "K2Password")],
                         ids=["no_credentials", "wrong_password", "unknown_user"])
def test_bad_credentials_are_401_from_mod_auth_basic(k2, auth):
    # mod_auth_basic logs a refused user at error level: expected here.
    k2.expect_error(r"\[auth_basic:error\].*AH0161[78]: user (k2login|intruder)")
    n = notification()
    ex = Exchange(k2, n, auth=auth)
    r = ex.reply
    assert r.status_code == 401
    assert r.headers["WWW-Authenticate"] == 'Basic realm="K2 notifications"'
    assert r.headers["Content-Type"].startswith("text/html")   # Apache's page
    assert b'"status"' not in r.content
    assert_nothing_recorded(k2, ex, n["k2_transaction_id"])
    entry = ex.access()
    assert entry[0] == "401"
    assert entry[1:7] == ["-"] * 6          # no K2_* variable: no k2notify outcome
    assert not [l for l in k2.error_lines_since(ex.offset) if DECISION.search(l)]


# -- logging: one decision line, K2_* variables in the access log -----------

@pytest.mark.parametrize("outcome", ["accepted", "duplicate", "account_not_found",
                                     "invalid_payment", "bad_request"])
def test_each_notification_logs_one_decision_and_k2_variables(k2, outcome):
    overrides, status, k2status, detail = {
        "accepted": ({}, 200, "01", None),
        "duplicate": ({}, 200, "01", "already recorded"),
        "account_not_found": ({"ac_no": "Z000001"}, 200, "02", None),
        "invalid_payment": ({"amount": "1.234"}, 200, "03", R_AMOUNT),
        "bad_request": ({"transaction_date": "31/4/11"}, 400, "", R_DATE),
    }[outcome]
    n = notification(**overrides)
    txid = n["k2_transaction_id"]
    if outcome == "duplicate":
        assert Exchange(k2, n).reply.content == ACCEPTED
    ex = Exchange(k2, n)
    assert ex.reply.status_code == status
    assert ex.reply.content == {
        "accepted": ACCEPTED, "duplicate": ACCEPTED,
        "account_not_found": NOT_FOUND, "invalid_payment": INVALID,
        "bad_request": error_body("Bad Request", R_DATE)}[outcome]
    line = ex.decision(decision_rx(txid, n["ac_no"], n["amount"], outcome, detail))
    assert "[k2notify:info]" in line
    # Over the whole log: one decision per request carrying this id.
    expected = 2 if outcome == "duplicate" else 1
    assert len([l for l in k2.errors_text().splitlines()
                if "k2_transaction_id=" + txid + " " in l]) == expected
    assert ex.access()[:7] == [str(status), txid, n["ac_no"], n["amount"],
                               n["currency"], k2status, outcome]
    assert len(k2.rows(txid)) == (1 if outcome in ("accepted", "duplicate") else 0)


# -- CR/LF cannot forge log lines -------------------------------------------

@pytest.mark.parametrize("field", ["k2_transaction_id", "ac_no", "amount",
                                   "first_name"])
def test_crlf_in_a_value_is_400_and_forges_no_log_line(k2, field):
    forged = "FORGED" + uuid.uuid4().hex
    fake_error = f"[Mon Jan 01 00:00:00.000000 2024] [k2notify:info] {forged}"
    fake_access = f"200 {forged}|A123333|1500|KES|01|accepted|k2login|POST / HTTP/1.1"
    txid = new_id()
    n = notification(**{field: None})
    if field != "k2_transaction_id":
        n["k2_transaction_id"] = txid
    raw = (urllib.parse.quote("A123333" if field == "ac_no" else "x")
           + "%0D%0A" + urllib.parse.quote(fake_error)
           + "%0D%0A" + urllib.parse.quote(fake_access))
    ex = Exchange(k2, form(n) + "&" + field + "=" + raw)
    if field == "k2_transaction_id":        # refused before it is set
        assert_bad_request(ex, R_CONTROL, logged_id="-")
    else:
        assert_bad_request(ex, R_CONTROL, txid)
    assert k2.rows(txid) == []
    for line in k2.errors_text().splitlines() + k2.access_lines():
        assert not line.startswith("[Mon Jan 01 00:00:00.000000 2024]"), line
        assert not line.startswith("200 " + forged), line
        assert forged not in line, line

