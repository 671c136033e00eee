"""Hostile input (issue 5): a table of malformed, oversized, truncated and
lying requests sent byte for byte over raw sockets to a real Apache with
mod_k2notify (`requests` re-quotes URLs and frames bodies itself, so it
cannot send most of these).

Every row is one request (a few are two: a Content-Length lie leaves bytes
that httpd reads as a pipelined second request).  For every row the test
asserts:

- the exact status of every reply, and for the module's replies the exact
  JSON body; httpd's own answers (400 for malformed requests, 413 from
  LimitRequestBody or a chunk size, 414, 408) are its HTML page;
- that the connection was closed, and when: at once, or (for a body or a
  header that stops halfway) by httpd's `Timeout` (5 s in the harness), never
  later than Timeout + 2 s;
- that nothing was recorded: the row count is unchanged and there is no row
  for the row's k2_transaction_id (three positive controls record exactly
  one row: a small chunked body, and 10,000 unknown parameters around a valid
  notification under a 1 MiB cap, with a Content-Length and chunked);
- that the error log got no error/crit/alert/emerg or crash line, that the
  module logged exactly one k2notify decision line when it ran (with the
  expected k2_transaction_id, outcome and reason) and none when httpd
  answered before it, and nothing else;
- that the access log got exactly the expected lines (one per request httpd
  logged), found by a unique `probe` query parameter in the request line,
  with the K2_* variables the module set (or none);
- that no value can forge a log line: after every CR/LF the rows put a fake
  error-log line starting "[Mon Jan 01 00:00:00.000000 2024] ... FORGED<probe>";
  no error-log or access-log line may start with it, every new error-log
  line starts with a real timestamp and every access-log line with a status.

Rows run on the session server `k2` (the contract's /k2/notify, K2NotifyMaxBody
8192 by default) unless they say server="big": this file's own server, the
contract's location with a 1 MiB K2NotifyMaxBody (/k2/big) and with httpd's
LimitRequestBody 100 (/k2/limited); module-scoped (make_httpd would start one
per row) and checked on teardown as make_httpd checks its servers.

Templates in a row's bytes: @ID@ is the row's k2_transaction_id, @P@ its
probe, @FORGE@ / @FORGE%@ the fake log line raw / percent-encoded.
"""
import re
import socket
import threading
import time
import urllib.parse
import uuid
from dataclasses import dataclass, field
from typing import Optional

import pytest

from conftest import CONTRACT_LOCATION, SPEC_BODY, Httpd, new_id, served
from test_spec_rules import (ACCEPTED, DECISION, INVALID, NOT_FOUND, R_AMOUNT,
                             R_CONFLICT, R_CONTROL, R_CURRENCY, R_EMPTY_NAME,
                             R_ESCAPE, R_FORM, R_MISSING, R_NUL, R_UTF8,
                             RawReply, error_body)

MB = 1 << 20
CAP = 8192                       # K2NotifyMaxBody's default (/k2/notify)
BIG_CAP = 1048576                # /k2/big
FORM = b"application/x-www-form-urlencoded"
NOSUCH = b"NOSUCH9"              # an account that does not exist: answers 02

R_UNREAD = "the request body could not be read"
R_FILTER = "the request body was refused by an input filter"

FAKE_TS = "[Mon Jan 01 00:00:00.000000 2024]"
BAD_LOG = re.compile(r":error\]|:crit\]|:alert\]|:emerg\]|Segmentation fault|"
                     r"exit signal|AddressSanitizer|runtime error:")
REAL_TS = re.compile(r"^\[(Mon|Tue|Wed|Thu|Fri|Sat|Sun) [A-Z][a-z]{2} [ 0-9]\d "
                     r"\d\d:\d\d:\d\d\.\d{6} \d{4}\] \[")

# The dedicated server: a 1 MiB body cap, and httpd's own LimitRequestBody.
BIG_LOCATIONS = (
    CONTRACT_LOCATION.replace("<Location /k2/notify>", "<Location /k2/big>")
    .replace("</Location>", "    K2NotifyMaxBody 1048576\n</Location>")
    + CONTRACT_LOCATION.replace("<Location /k2/notify>", "<Location /k2/limited>")
    .replace("</Location>", "    LimitRequestBody 100\n</Location>"))


@pytest.fixture(scope="module")
def big():
    """This file's own server (the other caps), checked like make_httpd's."""
    yield from served(Httpd("hostile", BIG_LOCATIONS))


# -- building requests --------------------------------------------------------

# The spec's notification with k2_transaction_id first, so that a refusal
# later in the form logs the row's id.
_SPEC = [p.split("=", 1) for p in SPEC_BODY.split("&")]
_SPEC = ([["k2_transaction_id", "@ID@"]]
         + [p for p in _SPEC if p[0] != "k2_transaction_id"])


def note(*extra, **fields):
    """The spec's form (k2_transaction_id=@ID@ first), fields replaced by raw
    bytes (None drops one), then the raw extra segments, joined by '&'."""
    parts = []
    for name, value in _SPEC:
        if name in fields:
            if fields[name] is None:
                continue
            value = fields[name]
        parts.append(name.encode() + b"=" + (value if isinstance(value, bytes)
                                             else value.encode()))
    return b"&".join(parts + list(extra))


def minimal(**fields):
    """Only what a valid notification needs, for rows that need room."""
    base = {"k2_transaction_id": b"@ID@", "ac_no": b"A123333",
            "amount": b"1500", "currency": b"KES", "biller_number": b"888555"}
    base.update(fields)
    return b"&".join(k.encode() + b"=" + v for k, v in base.items() if v is not None)


ID_LEN = len(new_id())


def sent_len(body):
    """The length of body once @ID@ is replaced by the row's id."""
    return len(body) + body.count(b"@ID@") * (ID_LEN - len(b"@ID@"))


def pad(size, body, end=b""):
    """body, then an unknown parameter padding it to exactly size bytes (as
    sent), then end."""
    head = body + b"&pad="
    n = size - sent_len(head) - len(end)
    assert n >= 0
    return head + b"x" * n + end


def chunked(body, size):
    out = b""
    for i in range(0, len(body), size):
        c = body[i:i + size]
        out += b"%x\r\n" % len(c) + c + b"\r\n"
    return out + b"0\r\n\r\n"


AUTO = object()


@dataclass
class Req:
    """One raw request on a fresh connection (fields are bytes templates)."""
    body: bytes = b""
    query: bytes = b""             # after probe=@P@& in the request target
    method: bytes = b"POST"
    path: bytes = b"/k2/notify"
    ctype: Optional[bytes] = FORM  # None: no Content-Type header
    length: object = AUTO          # AUTO: len(body); None: no header; bytes: as is,
                                   # @LEN@ / @LEN+1@ the body's length (+1)
    chunks: object = None          # int: chunk the body; bytes: raw chunked body
    headers: tuple = ()            # more raw header lines (@LEN@ as above)
    auth: bool = True
    keepalive: bool = False        # no "Connection: close" (the server must close)
    tail: bytes = b""              # sent after the body, outside Content-Length
    raw: Optional[bytes] = None    # the whole request, verbatim
    stall: bool = False            # then wait: only httpd's Timeout ends it
    half_close: bool = False       # then shut down our writing side
    server: str = "k2"

    def encode(self, sub, port):
        if self.raw is not None:
            return sub(self.raw)
        target = self.path + b"?probe=@P@" + (b"&" + self.query if self.query else b"")
        head = [self.method + b" " + target + b" HTTP/1.1",
                b"Host: 127.0.0.1:%d" % port]
        if self.auth:
            head.append(b"Authorization: " + Httpd.basic().encode())
        if self.ctype is not None:
            head.append(b"Content-Type: " + self.ctype)
        body = sub(self.body)
        if self.chunks is not None:
            head.append(b"Transfer-Encoding: chunked")
            body = (chunked(body, self.chunks) if isinstance(self.chunks, int)
                    else sub(self.chunks))
        if self.length is AUTO:
            if self.chunks is None:
                head.append(b"Content-Length: @LEN@")
        elif self.length is not None:
            head.append(b"Content-Length: " + self.length)
        head += list(self.headers)
        if not self.keepalive:
            head.append(b"Connection: close")
        head = (b"\r\n".join(head) + b"\r\n\r\n").replace(
            b"@LEN@", b"%d" % len(body)).replace(b"@LEN+1@", b"%d" % (len(body) + 1))
        return sub(head) + body + sub(self.tail)


@dataclass
class Want:
    """What must happen."""
    status: Optional[int]          # of the first reply; None: no reply at all
    body: Optional[bytes] = None   # exact body of a module reply; None: httpd's page
    outcome: Optional[str] = None  # the module's decision; None: it did not run
    detail: Optional[str] = None   # the decision's reason
    logged: str = "@ID@"           # k2_transaction_id in the decision and access log
    k2status: str = ""
    then: list = field(default_factory=list)    # statuses of pipelined replies
    access: Optional[list] = None  # statuses of the new access-log lines
    probe_logged: bool = True      # the request line httpd logged has the probe
    records: int = 0
    by_timeout: bool = False       # closed by httpd's Timeout, not at once
    page_type: str = "text/html; charset=iso-8859-1"


DESCRIPTIONS = {400: "Bad Request", 405: "Method Not Allowed", 408: "Request Timeout",
                413: "Request Entity Too Large", 415: "Unsupported Media Type"}


def bad(reason, logged="@ID@", **kw):
    """The module's 400 with this reason."""
    return Want(400, error_body("Bad Request", reason), "bad_request", reason, logged, **kw)


def refused(status, reason, logged="-", **kw):
    """Another refusal of the module (405, 408, 413, 415)."""
    return Want(status, error_body(DESCRIPTIONS[status], reason), "bad_request",
                reason, logged, **kw)


def too_large(cap=CAP):
    return refused(413, f"the body is larger than K2NotifyMaxBody ({cap} bytes)")


def timed_out():
    return refused(408, R_UNREAD, by_timeout=True)


def not_allowed(m):
    return refused(405, f"method {m} not allowed: K2 notifications are POSTed")


def answered(status, detail=None, logged="@ID@", **kw):
    """A 200 reply with a K2 status: 01 accepted (one row), 02 or 03."""
    body, outcome = {"01": (ACCEPTED, "accepted"), "02": (NOT_FOUND, "account_not_found"),
                     "03": (INVALID, "invalid_payment")}[status]
    return Want(200, body, outcome, detail, logged, k2status=status,
                records=1 if status == "01" else 0, **kw)


def httpd(status, filter_error=False, **kw):
    """httpd's own answer; with filter_error the module ran, read the body,
    and an input filter refused it (the module logs that and writes nothing)."""
    if filter_error:
        return Want(status, None, "bad_request", R_FILTER, "-", **kw)
    return Want(status, None, None, None, "-", **kw)


def row(id, req, want):
    return pytest.param(req, want, id=id)


# -- the table -----------------------------------------------------------------

TENK = b"&".join(b"p%d=%d" % (i, i) for i in range(10000))
LONG = 7000                     # a long name that fits in the default cap

ROWS = [
    # -- megabyte values and the body cap (/k2/notify: K2NotifyMaxBody 8192) --
    row("mb_value_with_content_length_is_413",
        Req(note(first_name=b"a" * MB), keepalive=True), too_large()),
    row("mb_value_chunked_64k_is_413",
        Req(note(first_name=b"a" * MB), chunks=65536, keepalive=True), too_large()),
    row("mb_value_in_one_chunk_is_413",
        Req(note(first_name=b"a" * MB), chunks=2 * MB, keepalive=True), too_large()),
    row("mb_content_length_declared_nothing_sent_is_413_at_once",
        Req(b"", length=b"1048576", keepalive=True), too_large()),
    row("body_exactly_at_cap_is_read_to_its_last_byte",
        Req(pad(CAP, note(), b"%FF")), bad(R_UTF8)),
    row("body_one_byte_over_cap_is_413",
        Req(pad(CAP + 1, note()), keepalive=True), too_large()),
    row("chunked_body_one_byte_over_cap_is_413",
        Req(pad(CAP + 1, note()), chunks=1000, keepalive=True), too_large()),
    row("mb_value_in_query_is_httpd_414",
        Req(note(), query=b"first_name=" + b"a" * MB), httpd(414)),
    row("mb_header_is_httpd_400",
        Req(note(), headers=(b"X-Big: " + b"a" * MB,)), httpd(400)),
    row("mb_body_of_another_content_type_is_415_before_413",
        Req(note(first_name=b"a" * MB), ctype=b"application/json"), refused(415, R_FORM)),

    # -- megabyte values under a 1 MiB cap (/k2/big) -------------------------
    row("big_mb_value_bad_utf8_at_its_end_is_400",
        Req(note(first_name=b"a" * 1000000 + b"%FF"), path=b"/k2/big", server="big"),
        bad(R_UTF8)),
    row("big_mb_value_nul_at_its_end_is_400",
        Req(note(first_name=b"a" * 1000000 + b"%00"), path=b"/k2/big", server="big"),
        bad(R_NUL)),
    row("big_mb_value_lf_at_its_end_is_400",
        Req(note(first_name=b"a" * 1000000 + b"%0A@FORGE%@"), path=b"/k2/big",
            server="big"), bad(R_CONTROL)),
    row("big_mb_unknown_name_is_ignored_02",
        Req(note(b"n" * 1000000 + b"=1", ac_no=NOSUCH), path=b"/k2/big", server="big"),
        answered("02")),
    row("big_body_one_byte_over_cap_is_413",
        Req(pad(BIG_CAP + 1, note()), path=b"/k2/big", server="big", keepalive=True),
        too_large(BIG_CAP)),
    row("big_chunked_body_one_byte_over_cap_is_413",
        Req(pad(BIG_CAP + 1, note()), chunks=65536, path=b"/k2/big", server="big",
            keepalive=True), too_large(BIG_CAP)),

    # -- values echoed in the decision line: it must keep its outcome --------
    # httpd cuts an error-log message at 8 KB (and escapes non-ASCII bytes as
    # \xNN, four times their size): a long value must not push the outcome
    # out of the one line that records the decision.
    row("long_ac_no_at_cap_decision_keeps_outcome_02",
        Req(minimal(ac_no=b"Z" * (CAP - sent_len(minimal(ac_no=b""))))), answered("02")),
    row("utf8_ac_no_escaped_fourfold_decision_keeps_outcome_02",
        Req(minimal(ac_no="é".encode() * 2500)), answered("02")),
    row("big_mb_ac_no_decision_keeps_outcome_02",
        Req(note(ac_no=b"Z" * 1000000), path=b"/k2/big", server="big"), answered("02")),
    row("big_mb_amount_decision_keeps_outcome_03",
        Req(note(amount=b"1" * 1000000), path=b"/k2/big", server="big"),
        answered("03", R_AMOUNT)),

    # -- httpd's LimitRequestBody under the module's cap (/k2/limited: 100) --
    row("limit_request_body_content_length_is_httpd_413",
        Req(note(), path=b"/k2/limited", server="big", keepalive=True),
        httpd(413, filter_error=True)),
    row("limit_request_body_chunked_is_httpd_413",
        Req(note(), chunks=50, path=b"/k2/limited", server="big", keepalive=True),
        httpd(413, filter_error=True)),

    # -- 10,000 parameters ----------------------------------------------------
    row("10k_params_over_default_cap_is_413",
        Req(TENK + b"&" + note(), keepalive=True), too_large()),
    row("10k_params_chunked_over_default_cap_is_413",
        Req(TENK + b"&" + note(), chunks=4096, keepalive=True), too_large()),
    row("10k_params_in_query_is_httpd_414",
        Req(note(), query=TENK), httpd(414)),
    # Under /k2/big's 1 MiB cap every parameter is parsed: 01 only if valid.
    row("big_10k_unknown_params_and_valid_notification_gets_01",
        Req(TENK + b"&" + note(), path=b"/k2/big", server="big"), answered("01")),
    row("big_10k_params_then_chunked_valid_gets_01",
        Req(note(TENK), chunks=8000, path=b"/k2/big", server="big"), answered("01")),
    row("big_10k_repeats_of_the_same_value_02",
        Req(note(*[b"ac_no=" + NOSUCH] * 10000, ac_no=NOSUCH), path=b"/k2/big",
            server="big"), answered("02")),
    row("big_10k_params_last_one_conflicts_400",
        Req(note(TENK, b"amount=1501"), path=b"/k2/big", server="big"),
        bad(R_CONFLICT.format("amount"))),
    row("big_10k_params_currency_missing_400",
        Req(note(TENK, currency=None), path=b"/k2/big", server="big"),
        bad(R_MISSING.format("currency"))),
    row("big_10k_empty_names_400",
        Req(note(*[b"=x"] * 10000), path=b"/k2/big", server="big"), bad(R_EMPTY_NAME)),
    row("big_10k_empty_segments_are_skipped_02",
        Req(note(ac_no=NOSUCH) + b"&" * 10000, path=b"/k2/big", server="big"),
        answered("02")),
    row("big_10k_names_without_value_03",
        Req(note(b"&".join(b"f%d" % i for i in range(10000)), amount=b"0"),
            path=b"/k2/big", server="big"), answered("03", R_AMOUNT)),
    row("big_10k_params_last_one_bad_utf8_400",
        Req(note(TENK, b"p=%C0%80"), path=b"/k2/big", server="big"), bad(R_UTF8)),

    # -- empty names ----------------------------------------------------------
    row("empty_name_at_end_400", Req(note(b"=x")), bad(R_EMPTY_NAME)),
    row("empty_name_between_ampersands_400",
        Req(note(b"=", b"last=1")), bad(R_EMPTY_NAME)),
    row("empty_name_and_value_400", Req(note(b"=")), bad(R_EMPTY_NAME)),
    row("empty_name_encoded_value_400", Req(note(b"=%41")), bad(R_EMPTY_NAME)),
    row("empty_name_first_in_body_400", Req(b"=x&" + note()), bad(R_EMPTY_NAME, "-")),
    row("empty_name_in_query_400", Req(note(), query=b"=x"), bad(R_EMPTY_NAME, "-")),
    row("empty_segments_are_skipped_02",
        Req(b"&&" + note(ac_no=NOSUCH).replace(b"&", b"&&&") + b"&&"), answered("02")),
    row("name_of_one_space_is_unknown_02", Req(note(b"+=x", ac_no=NOSUCH)), answered("02")),

    # -- %3D and %26 in names; names that decode to a known name -------------
    row("eq_in_name_does_not_split_amount_400",
        Req(note(b"amount%3D1500=1500", amount=None)), bad(R_MISSING.format("amount"))),
    row("eq_in_name_without_value_400",
        Req(note(b"amount%3D1500", amount=None)), bad(R_MISSING.format("amount"))),
    row("eq_in_name_ac_no_400",
        Req(note(b"ac_no%3DA123333=x", ac_no=None)), bad(R_MISSING.format("ac_no"))),
    row("eq_alone_as_name_is_unknown_02", Req(note(b"%3D=x", ac_no=NOSUCH)), answered("02")),
    row("eq_in_value_is_kept_02", Req(note(ac_no=b"A123333%3Dx")), answered("02")),
    row("amp_in_value_does_not_split_02",
        Req(note(ac_no=b"A123333%26amount%3D0")), answered("02")),
    row("amp_in_name_does_not_split_400",
        Req(note(b"amount%26x=1500", amount=None)), bad(R_MISSING.format("amount"))),
    row("encoded_name_ac_no_is_ac_no_02",
        Req(note(b"ac%5Fno=" + NOSUCH, ac_no=None)), answered("02")),
    row("encoded_name_ac_no_conflicts_with_plain_400",
        Req(note(b"ac%5Fno=B999")), bad(R_CONFLICT.format("ac_no"))),
    row("fully_encoded_name_amount_is_amount_03",
        Req(note(b"%61%6D%6F%75%6E%74=0", amount=None)), answered("03", R_AMOUNT)),
    row("encoded_name_k2_transaction_id_conflict_400",
        Req(b"k2%5Ftransaction%5Fid=@ID@X&" + note()),
        bad(R_CONFLICT.format("k2_transaction_id"), "@ID@X")),
    row("upper_case_name_is_unknown_400",
        Req(note(b"AC_NO=A123333", ac_no=None)), bad(R_MISSING.format("ac_no"))),
    row("name_with_trailing_plus_is_unknown_400",
        Req(note(b"ac_no+=A123333", ac_no=None)), bad(R_MISSING.format("ac_no"))),
    row("name_with_trailing_encoded_space_is_unknown_400",
        Req(note(b"ac_no%20=A123333", ac_no=None)), bad(R_MISSING.format("ac_no"))),
]

# -- overlong, surrogate, out-of-range and truncated UTF-8 ----------------------
UTF8 = [("overlong_c0_80", b"\xc0\x80"), ("overlong_e0_80_80", b"\xe0\x80\x80"),
        ("overlong_f0_80_80_80", b"\xf0\x80\x80\x80"),
        ("surrogate_ed_a0_80", b"\xed\xa0\x80"),
        ("past_10ffff_f4_90_80_80", b"\xf4\x90\x80\x80"),
        ("lone_continuation_80", b"\x80"), ("latin1_e9", b"\xe9"), ("ff", b"\xff")]
TRUNC = b"\xe2\x82"                      # the first two bytes of U+20AC


def enc(b):
    return "".join("%%%02X" % c for c in b).encode()


for name, seq in UTF8:
    ROWS += [
        row(f"utf8_{name}_in_value_encoded_400", Req(note(first_name=b"Jo" + enc(seq))),
            bad(R_UTF8)),
        row(f"utf8_{name}_in_value_raw_400", Req(note(first_name=b"Jo" + seq)), bad(R_UTF8)),
        row(f"utf8_{name}_in_name_encoded_400", Req(note(b"x" + enc(seq) + b"=1")),
            bad(R_UTF8)),
        row(f"utf8_{name}_in_name_raw_400", Req(note(b"x" + seq + b"=1")), bad(R_UTF8)),
        row(f"utf8_{name}_in_query_encoded_400",
            Req(note(), query=b"first_name=Jo" + enc(seq)), bad(R_UTF8, "-")),
    ]
ROWS += [
    # raw bytes >= 0x80 in the request line are obs-text to httpd: the module judges
    row("utf8_overlong_c0_80_in_query_raw_400",
        Req(note(), query=b"first_name=Jo\xc0\x80"), bad(R_UTF8, "-")),
    row("utf8_surrogate_in_query_raw_400",
        Req(note(), query=b"first_name=\xed\xa0\x80"), bad(R_UTF8, "-")),
    # truncated E2 82: at the very end of the body, and before '&'
    row("utf8_truncated_e2_82_value_at_end_encoded_400",
        Req(note(first_name=None) + b"&first_name=" + enc(TRUNC)), bad(R_UTF8)),
    row("utf8_truncated_e2_82_value_at_end_raw_400",
        Req(note(first_name=None) + b"&first_name=" + TRUNC), bad(R_UTF8)),
    row("utf8_truncated_e2_82_value_before_amp_encoded_400",
        Req(note(first_name=b"Jo" + enc(TRUNC))), bad(R_UTF8)),
    row("utf8_truncated_e2_82_value_before_amp_raw_400",
        Req(note(first_name=b"Jo" + TRUNC)), bad(R_UTF8)),
    row("utf8_truncated_e2_82_name_at_end_encoded_400",
        Req(note(b"x" + enc(TRUNC))), bad(R_UTF8)),
    row("utf8_truncated_e2_82_name_at_end_raw_400", Req(note(b"x" + TRUNC)), bad(R_UTF8)),
    row("utf8_truncated_e2_82_name_before_amp_encoded_400",
        Req(note(b"x" + enc(TRUNC), b"y=1")), bad(R_UTF8)),
    row("utf8_truncated_e2_82_name_before_amp_raw_400",
        Req(note(b"x" + TRUNC, b"y=1")), bad(R_UTF8)),
    row("utf8_truncated_e2_82_in_query_at_end_400",
        Req(note(), query=b"first_name=" + enc(TRUNC)), bad(R_UTF8, "-")),
    # the edges that are valid: accepted as values (here an unknown account)
    row("utf8_valid_u0080_02", Req(note(ac_no=b"A%C2%80")), answered("02")),
    row("utf8_valid_u0800_02", Req(note(ac_no=b"A%E0%A0%80")), answered("02")),
    row("utf8_valid_ud7ff_below_surrogates_02", Req(note(ac_no=b"A%ED%9F%BF")),
        answered("02")),
    row("utf8_valid_ue000_above_surrogates_02", Req(note(ac_no=b"A%EE%80%80")),
        answered("02")),
    row("utf8_valid_u10000_02", Req(note(ac_no=b"A%F0%90%80%80")), answered("02")),
    row("utf8_valid_u10ffff_02", Req(note(ac_no=b"A\xf4\x8f\xbf\xbf")), answered("02")),
    # C1 NEL and U+2028 are valid UTF-8, not line breaks: both logs escape them
    row("utf8_nel_and_line_separator_then_forge_02",
        Req(note(ac_no=b"A%C2%85@FORGE%@%E2%80%A8@FORGE%@")), answered("02")),
]

# -- control characters, raw and encoded, CR/LF followed by a forged line ----------
CTRL_ENCODED = [("crlf", b"%0D%0A@FORGE%@"), ("lf", b"%0A@FORGE%@"), ("cr", b"%0D@FORGE%@"),
                ("tab", b"%09"), ("esc", b"%1B%5B31m"), ("del", b"%7F"), ("soh", b"%01"),
                ("unit_separator", b"%1F"), ("backspace", b"%08"), ("vtab", b"%0B"),
                ("formfeed", b"%0C")]
CTRL_RAW = [("crlf", b"\r\n@FORGE@"), ("lf", b"\n@FORGE@"), ("cr", b"\r@FORGE@"),
            ("tab", b"\t"), ("esc", b"\x1b[31m"), ("del", b"\x7f"), ("vtab", b"\x0b")]
for name, c in CTRL_ENCODED:
    ROWS.append(row(f"control_{name}_in_value_encoded_400",
                    Req(note(first_name=b"John" + c)), bad(R_CONTROL)))
for name, c in CTRL_RAW:
    ROWS.append(row(f"control_{name}_in_value_raw_400",
                    Req(note(first_name=b"John" + c)), bad(R_CONTROL)))
for name, c in CTRL_ENCODED[:6]:
    ROWS.append(row(f"control_{name}_in_name_encoded_400",
                    Req(note(b"x" + c + b"=1")), bad(R_CONTROL)))
for name, c in CTRL_RAW[:4]:
    ROWS.append(row(f"control_{name}_in_name_raw_400",
                    Req(note(b"x" + c + b"=1")), bad(R_CONTROL)))
ROWS += [
    row("control_crlf_in_k2_transaction_id_400",
        Req(note(k2_transaction_id=b"@ID@%0D%0A@FORGE%@")), bad(R_CONTROL, "-")),
    row("control_crlf_in_ac_no_400",
        Req(note(ac_no=b"A123333%0D%0A@FORGE%@")), bad(R_CONTROL)),
    row("control_crlf_in_amount_400",
        Req(note(amount=b"1500%0D%0A@FORGE%@")), bad(R_CONTROL)),
    row("control_raw_crlf_ends_the_body_400",
        Req(note() + b"\r\n@FORGE@\r\n"), bad(R_CONTROL)),
    row("control_crlf_in_query_encoded_400",
        Req(note(), query=b"first_name=x%0D%0A@FORGE%@"), bad(R_CONTROL, "-")),
    row("control_tab_in_query_encoded_400",
        Req(note(), query=b"first_name=x%09y"), bad(R_CONTROL, "-")),
    # raw control characters in the request line: httpd refuses them
    row("request_line_raw_crlf_in_query_is_httpd_400",
        Req(note(), query=b"first_name=x\r\n@FORGE@ x"), httpd(400)),
    row("request_line_raw_lf_in_query_is_httpd_400",
        Req(note(), query=b"first_name=x\n@FORGE@ x"), httpd(400)),
    row("request_line_raw_tab_in_query_is_httpd_400",
        Req(note(), query=b"first_name=x\ty"), httpd(400)),
    row("request_line_raw_esc_in_query_is_httpd_400",
        Req(note(), query=b"first_name=x\x1b[31m"), httpd(400)),
    row("request_line_raw_del_in_query_is_httpd_400",
        Req(note(), query=b"first_name=x\x7f"), httpd(400)),
    row("request_line_raw_space_in_query_is_httpd_400",
        Req(note(), query=b"first_name=x y"), httpd(400)),
    row("request_line_fragment_is_httpd_400",
        Req(note(), query=b"first_name=x#frag"), httpd(400)),
    # header lines: CR/LF injection and other breakage
    row("header_cr_injection_is_httpd_400",
        Req(note(), headers=(b"X-Probe: a\r@FORGE@: b",)), httpd(400)),
    row("header_bare_lf_injection_is_httpd_400",
        Req(note(), headers=(b"X-Probe: a\n@FORGE@: b",)), httpd(400)),
    row("header_cr_in_content_type_is_httpd_400",
        Req(note(), ctype=FORM + b"\rX-Forged: 1"), httpd(400)),
    row("header_cr_in_authorization_is_httpd_400",
        Req(note(), auth=False, headers=(b"Authorization: " + Httpd.basic().encode()
                                         + b"\r@FORGE@",)), httpd(400)),
    row("header_nul_is_httpd_400", Req(note(), headers=(b"X-Probe: a\x00b",)), httpd(400)),
    row("header_control_in_name_is_httpd_400",
        Req(note(), headers=(b"X\x01Probe: a",)), httpd(400)),
    row("header_space_before_colon_is_httpd_400",
        Req(note(), headers=(b"X-Probe : a",)), httpd(400)),
    row("header_without_colon_is_httpd_400", Req(note(), headers=(b"X-Probe",)), httpd(400)),
    row("header_obs_fold_is_joined_02",
        Req(note(ac_no=NOSUCH), headers=(b"X-Probe: a\r\n @FORGE@",)), answered("02")),

    # -- NUL, raw and %00 --------------------------------------------------------
    row("nul_raw_in_value_400", Req(note(first_name=b"Jo\x00hn")), bad(R_NUL)),
    row("nul_raw_in_ac_no_400", Req(note(ac_no=b"A123333\x00junk")), bad(R_NUL)),
    row("nul_raw_in_name_400", Req(note(b"x\x00y=1")), bad(R_NUL)),
    row("nul_encoded_in_value_400", Req(note(first_name=b"Jo%00hn")), bad(R_NUL)),
    row("nul_encoded_in_ac_no_400", Req(note(ac_no=b"A123333%00junk")), bad(R_NUL)),
    row("nul_encoded_in_name_400", Req(note(b"x%00=1")), bad(R_NUL)),
    row("nul_encoded_at_end_of_body_400", Req(note() + b"%00"), bad(R_NUL)),
    row("nul_encoded_in_query_400", Req(note(), query=b"ac_no=A123333%00x"), bad(R_NUL, "-")),
    row("nul_raw_in_query_is_httpd_400", Req(note(), query=b"ac_no=A\x00x"), httpd(400)),

    # -- broken escapes -----------------------------------------------------------
    row("escape_lone_percent_at_end_of_body_400",
        Req(note(first_name=None) + b"&first_name=John%"), bad(R_ESCAPE)),
    row("escape_one_digit_at_end_of_body_400",
        Req(note(first_name=None) + b"&first_name=John%4"), bad(R_ESCAPE)),
    row("escape_lone_percent_before_amp_400", Req(note(first_name=b"John%")), bad(R_ESCAPE)),
    row("escape_one_digit_before_amp_400", Req(note(first_name=b"John%4")), bad(R_ESCAPE)),
    row("escape_non_hex_g0_400", Req(note(first_name=b"Jo%G0hn")), bad(R_ESCAPE)),
    row("escape_non_hex_second_digit_400", Req(note(first_name=b"Jo%4Ghn")), bad(R_ESCAPE)),
    row("escape_double_percent_400", Req(note(first_name=b"Jo%%hn")), bad(R_ESCAPE)),
    row("escape_double_percent_before_hex_400", Req(note(first_name=b"%%41")), bad(R_ESCAPE)),
    row("escape_percent_u_400", Req(note(first_name=b"%u0041")), bad(R_ESCAPE)),
    row("escape_percent_plus_400", Req(note(first_name=b"%+1")), bad(R_ESCAPE)),
    row("escape_lone_percent_in_name_400", Req(note(b"x%=1")), bad(R_ESCAPE)),
    row("escape_one_digit_in_name_400", Req(note(b"x%4=1")), bad(R_ESCAPE)),
    row("escape_non_hex_in_name_400", Req(note(b"x%G0=1")), bad(R_ESCAPE)),
    row("escape_double_percent_in_name_400", Req(note(b"x%%=1")), bad(R_ESCAPE)),
    row("escape_lone_percent_at_end_of_query_400",
        Req(note(), query=b"first_name=x%"), bad(R_ESCAPE, "-")),
    row("escape_non_hex_in_query_400", Req(note(), query=b"first_name=%G0"),
        bad(R_ESCAPE, "-")),

    # -- '+' is a space, '%2B' is a plus ------------------------------------------
    row("plus_inside_amount_is_a_space_03", Req(note(amount=b"1+500")),
        answered("03", R_AMOUNT)),
    row("plus_before_amount_is_a_space_03", Req(note(amount=b"+1500")),
        answered("03", R_AMOUNT)),
    row("plus_alone_as_amount_is_a_space_03", Req(note(amount=b"+")),
        answered("03", R_AMOUNT)),
    row("encoded_plus_before_amount_03", Req(note(amount=b"%2B1500")),
        answered("03", R_AMOUNT)),
    row("plus_after_ac_no_is_a_space_02", Req(note(ac_no=b"A123333+")), answered("02")),
    row("encoded_plus_after_ac_no_02", Req(note(ac_no=b"A123333%2B")), answered("02")),
    row("plus_after_currency_03", Req(note(currency=b"KES+")), answered("03", R_CURRENCY)),
    row("plus_inside_a_name_is_a_space_400",
        Req(note(b"cur+rency=KES", currency=None)), bad(R_MISSING.format("currency"))),
    row("plus_in_query_amount_03",
        Req(note(amount=None), query=b"amount=1+500"), answered("03", R_AMOUNT)),

    # -- duplicates with different values, across query and body ----------------
    row("dup_amount_query_vs_body_400", Req(note(), query=b"amount=2000"),
        bad(R_CONFLICT.format("amount"))),
    row("dup_ac_no_query_vs_body_400", Req(note(), query=b"ac_no=B999"),
        bad(R_CONFLICT.format("ac_no"))),
    row("dup_currency_query_vs_body_400", Req(note(), query=b"currency=USD"),
        bad(R_CONFLICT.format("currency"))),
    row("dup_k2_transaction_id_query_vs_body_400",
        Req(note(), query=b"k2_transaction_id=@ID@X"),
        bad(R_CONFLICT.format("k2_transaction_id"), "@ID@X")),
    row("dup_empty_amount_in_query_vs_body_400", Req(note(), query=b"amount="),
        bad(R_CONFLICT.format("amount"))),
    row("dup_amount_twice_in_query_400", Req(note(), query=b"amount=1500&amount=1"),
        bad(R_CONFLICT.format("amount"), "-")),
    row("dup_amount_same_number_other_spelling_400", Req(note(b"amount=1500.00")),
        bad(R_CONFLICT.format("amount"))),
    row("dup_amount_with_trailing_space_400", Req(note(b"amount=1500+")),
        bad(R_CONFLICT.format("amount"))),
    row("dup_ac_no_other_case_400", Req(note(b"ac_no=a123333")),
        bad(R_CONFLICT.format("ac_no"))),
    row("dup_same_value_differently_encoded_02",
        Req(note(ac_no=NOSUCH), query=b"amount=%31%35%30%30"), answered("02")),

    # -- very long parameter names --------------------------------------------------
    row("long_unknown_name_is_ignored_400",
        Req(note(b"n" * LONG + b"=1", currency=None)), bad(R_MISSING.format("currency"))),
    row("long_name_bad_utf8_at_its_end_400", Req(note(b"n" * LONG + b"%FF=1")), bad(R_UTF8)),
    row("long_encoded_name_is_unknown_03",
        Req(note(b"%61" * 2300 + b"=1", amount=b"0")), answered("03", R_AMOUNT)),
    row("long_name_starting_with_amount_is_unknown_400",
        Req(note(b"amount" + b"x" * LONG + b"=1500", amount=None)),
        bad(R_MISSING.format("amount"))),
    row("long_name_in_query_03",
        Req(note(amount=b"0"), query=b"n" * LONG + b"=1"), answered("03", R_AMOUNT)),
    row("long_name_in_query_over_request_line_limit_is_httpd_414",
        Req(note(), query=b"n" * 9000 + b"=1"), httpd(414)),

    # -- SQL and markup in values: bound as parameters, never interpreted --------------
    row("sql_or_1_eq_1_in_ac_no_02",
        Req(note(ac_no=b"A123333%27%20OR%20%271%27%3D%271")), answered("02")),
    row("sql_union_in_ac_no_02",
        Req(note(ac_no=urllib.parse.quote("x' UNION SELECT ac_no FROM accounts --").encode())),
        answered("02")),
    row("sql_comment_in_ac_no_02", Req(note(ac_no=b"A123333%27--")), answered("02")),
    row("sql_placeholder_in_ac_no_02", Req(note(ac_no=b"%25s")), answered("02")),
    row("sql_question_mark_in_ac_no_02", Req(note(ac_no=b"%3F")), answered("02")),
    row("sql_like_wildcard_in_ac_no_02", Req(note(ac_no=b"A%25")), answered("02")),
    row("sql_drop_table_in_amount_03",
        Req(note(amount=b"1500%3B%20DROP%20TABLE%20k2_transactions")),
        answered("03", R_AMOUNT)),
    row("markup_in_ac_no_02", Req(note(ac_no=b"%3Cscript%3Ex%3C%2Fscript%3E")),
        answered("02")),

    # -- chunked bodies ----------------------------------------------------------------
    row("chunked_valid_small_gets_01", Req(note(), chunks=50), answered("01")),
    row("chunked_one_byte_chunks_02", Req(note(ac_no=NOSUCH), chunks=1), answered("02")),
    row("chunked_with_chunk_extensions_02",
        Req(chunks=b"%x;ext=1;q=\"a\"\r\n" % sent_len(note(ac_no=NOSUCH)) + note(ac_no=NOSUCH)
            + b"\r\n0;last\r\n\r\n"), answered("02")),
    row("chunked_with_trailer_02",
        Req(chunks=b"%x\r\n" % sent_len(note(ac_no=NOSUCH)) + note(ac_no=NOSUCH)
            + b"\r\n0\r\nX-Trailer: 1\r\n\r\n"), answered("02")),
    row("chunked_and_content_length_reads_the_chunks_02",
        Req(note(ac_no=NOSUCH), chunks=64, length=b"10"), answered("02")),
    row("chunked_over_cap_in_many_chunks_is_413",
        Req(pad(10000, note()), chunks=100, keepalive=True), too_large()),
    row("chunked_over_cap_in_one_declared_chunk_is_413",
        Req(pad(9000, note()), chunks=9000, keepalive=True), too_large()),
    row("chunked_bad_utf8_400", Req(note(first_name=b"%C0%80"), chunks=50), bad(R_UTF8)),
    row("chunked_size_not_hex_is_httpd_400",
        Req(chunks=b"zz\r\nabc\r\n0\r\n\r\n", keepalive=True), httpd(400, filter_error=True)),
    row("chunked_size_negative_is_httpd_400",
        Req(chunks=b"-5\r\nabcde\r\n0\r\n\r\n", keepalive=True),
        httpd(400, filter_error=True)),
    row("chunked_size_empty_is_httpd_400",
        Req(chunks=b"\r\nabc\r\n0\r\n\r\n", keepalive=True), httpd(400, filter_error=True)),
    row("chunked_size_overflow_is_httpd_413",
        Req(chunks=b"ffffffffffffffffffff\r\nabc\r\n0\r\n\r\n", keepalive=True),
        httpd(413, filter_error=True)),
    row("chunked_data_longer_than_its_size_is_httpd_400",
        Req(chunks=b"3\r\nabcXX\r\n0\r\n\r\n", keepalive=True), httpd(400, filter_error=True)),
    row("transfer_encoding_gzip_is_httpd_400",
        Req(note(), length=None, headers=(b"Transfer-Encoding: gzip",)), httpd(400)),
    row("transfer_encoding_identity_is_httpd_400",
        Req(note(), length=None, headers=(b"Transfer-Encoding: identity",)), httpd(400)),
    row("chunked_stops_mid_chunk_is_408_by_timeout",
        Req(chunks=b"12c\r\nk2_transaction_id=@ID@&amount=1", stall=True, keepalive=True),
        timed_out()),
    row("chunked_without_last_chunk_is_408_by_timeout",
        Req(chunks=chunked(SPEC_BODY.encode(), 50)[:-len(b"0\r\n\r\n")], stall=True,
            keepalive=True), timed_out()),

    # -- bodies that stop, and Content-Length lies ---------------------------------------
    row("body_stops_halfway_cl300_sent100_is_408_by_timeout",
        Req(SPEC_BODY.encode()[:100], length=b"300", stall=True, keepalive=True),
        timed_out()),
    row("content_length_one_byte_longer_is_408_by_timeout",
        Req(note(), length=b"@LEN+1@", stall=True, keepalive=True),
        timed_out()),
    row("content_length_longer_then_client_half_closes_400",
        Req(SPEC_BODY.encode()[:100], length=b"300", half_close=True, keepalive=True),
        refused(400, R_UNREAD)),
    row("headers_stop_halfway_is_httpd_408_by_timeout",
        Req(raw=b"POST /k2/notify?probe=@P@ HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                b"Authorization: " + Httpd.basic().encode() + b"\r\n", stall=True),
        httpd(408, by_timeout=True)),
    row("request_line_stops_halfway_is_closed_by_timeout",
        Req(raw=b"POST /k2/notify?probe=@P@ HTT", stall=True),
        httpd(None, by_timeout=True, access=[408], probe_logged=False)),
    # Shorter: the first part is judged as sent.  After a 200 the connection is
    # kept and httpd reads the rest as a second request line, which it refuses;
    # after a 400 it closes and the rest is never read.
    row("content_length_shorter_first_part_02_rest_is_httpd_400",
        Req(note(ac_no=NOSUCH), keepalive=True, tail=b"&ac_no=A123333&x=@P@\r\n\r\n"),
        answered("02", then=[400], access=[200, 400])),
    row("content_length_shorter_rest_would_conflict_02_then_httpd_400",
        Req(note(ac_no=NOSUCH), keepalive=True, tail=b"&amount=1&x=@P@\r\n\r\n"),
        answered("02", then=[400], access=[200, 400])),
    row("content_length_shorter_first_part_400_rest_never_read",
        Req(note(currency=None), keepalive=True, tail=b"&currency=KES&x=@P@\r\n\r\n"),
        bad(R_MISSING.format("currency"))),
    row("content_length_shorter_cut_inside_an_escape_400",
        Req(note(first_name=None) + b"&first_name=%E2%8", keepalive=True,
            tail=b"2%AC&x=@P@\r\n\r\n"), bad(R_ESCAPE)),
    row("content_length_zero_with_a_body_400_body_never_read",
        Req(note() + b"\r\n\r\n", length=b"0", keepalive=True),
        bad(R_MISSING.format("k2_transaction_id"), "-")),
    row("no_content_length_http10_body_is_not_read_400",
        Req(raw=b"POST /k2/notify?probe=@P@ HTTP/1.0\r\nHost: 127.0.0.1\r\nAuthorization: "
                + Httpd.basic().encode() + b"\r\nContent-Type: " + FORM + b"\r\n\r\n"
                + note()), bad(R_MISSING.format("k2_transaction_id"), "-")),

    # -- invalid Content-Length values: httpd refuses them before the module -----------
    row("content_length_minus_one_is_httpd_400", Req(note(), length=b"-1"), httpd(400)),
    row("content_length_abc_is_httpd_400", Req(note(), length=b"abc"), httpd(400)),
    row("content_length_empty_is_httpd_400", Req(note(), length=b""), httpd(400)),
    row("content_length_exponent_is_httpd_400", Req(note(), length=b"3e2"), httpd(400)),
    row("content_length_plus_sign_is_httpd_400",
        Req(note(), length=b"+@LEN@"), httpd(400)),
    row("content_length_hex_is_httpd_400", Req(note(), length=b"0x12C"), httpd(400)),
    row("content_length_overflow_is_httpd_400",
        Req(note(), length=b"99999999999999999999999"), httpd(400)),
    row("content_length_list_in_one_header_is_httpd_400",
        Req(note(), length=b"@LEN@, @LEN@"), httpd(400)),
    row("content_length_twice_same_value_is_httpd_400",
        Req(note(), headers=(b"Content-Length: @LEN@",)), httpd(400)),
    row("content_length_twice_different_values_is_httpd_400",
        Req(note(), headers=(b"Content-Length: 5",)), httpd(400)),
    row("content_length_trailing_space_is_trimmed_02",
        Req(note(ac_no=NOSUCH), length=b"@LEN@ "), answered("02")),

    # -- Content-Types -------------------------------------------------------------------
    row("ctype_json_is_415", Req(note(), ctype=b"application/json"), refused(415, R_FORM)),
    row("ctype_text_plain_is_415", Req(note(), ctype=b"text/plain"), refused(415, R_FORM)),
    row("ctype_multipart_is_415",
        Req(b"--x\r\nContent-Disposition: form-data; name=\"ac_no\"\r\n\r\n"
            b"A123333\r\n--x--\r\n", ctype=b"multipart/form-data; boundary=x"),
        refused(415, R_FORM)),
    row("ctype_form_with_suffix_is_415", Req(note(), ctype=FORM + b"x"), refused(415, R_FORM)),
    row("ctype_form_then_comma_is_415", Req(note(), ctype=FORM + b", text/plain"),
        refused(415, R_FORM)),
    row("ctype_two_headers_form_and_json_is_415",
        Req(note(), headers=(b"Content-Type: application/json",)), refused(415, R_FORM)),
    row("ctype_empty_is_415", Req(note(), ctype=None, headers=(b"Content-Type:",)),
        refused(415, R_FORM)),
    # the charset parameter is ignored: values are UTF-8 whatever it says
    row("ctype_form_charset_latin1_ascii_body_02",
        Req(note(ac_no=NOSUCH), ctype=FORM + b";charset=latin1"), answered("02")),
    row("ctype_form_charset_latin1_encoded_e9_400",
        Req(note(first_name=b"Ren%E9"), ctype=FORM + b";charset=latin1"), bad(R_UTF8)),
    row("ctype_form_charset_latin1_raw_e9_400",
        Req(note(first_name=b"Ren\xe9"), ctype=FORM + b";charset=latin1"), bad(R_UTF8)),
    row("ctype_form_upper_case_02",
        Req(note(ac_no=NOSUCH), ctype=FORM.upper()), answered("02")),
    row("ctype_json_without_body_is_not_checked_02",
        Req(b"", ctype=b"application/json", query=note(ac_no=NOSUCH)), answered("02")),

    # -- methods -------------------------------------------------------------------------
    row("method_get_with_notification_in_query_405",
        Req(method=b"GET", ctype=None, length=None, query=note()), not_allowed("GET")),
    row("method_put_405", Req(note(), method=b"PUT"), not_allowed("PUT")),
    row("method_delete_405", Req(b"", method=b"DELETE", query=note()), not_allowed("DELETE")),
    row("method_options_405", Req(note(), method=b"OPTIONS"), not_allowed("OPTIONS")),
    row("method_patch_405", Req(note(), method=b"PATCH"), not_allowed("PATCH")),
    row("method_head_405_without_body", Req(b"", method=b"HEAD", query=note()),
        not_allowed("HEAD")),
    row("method_unknown_405", Req(note(), method=b"K2POST"), not_allowed("K2POST")),
    row("method_lower_case_post_405", Req(note(), method=b"post"), not_allowed("post")),
    # TRACE is answered by httpd's core before authentication (TraceEnable on
    # by default), echoing the request's headers: the module never runs
    row("method_trace_is_httpd_200_echo",
        Req(b"", method=b"TRACE", query=note()), httpd(200, page_type="message/http")),
    row("method_trace_with_body_is_httpd_413", Req(note(), method=b"TRACE"), httpd(413)),
    row("method_invalid_token_is_httpd_400", Req(note(), method=b"P@ST"), httpd(400)),
    row("method_connect_is_httpd_400", Req(note(), method=b"CONNECT"), httpd(400)),
]


# -- sending ----------------------------------------------------------------------

def split_replies(data, head_request=False):
    """The replies on one connection, framed by their Content-Length (a
    reply without one runs to the end)."""
    replies = []
    while data:
        head, sep, rest = data.partition(b"\r\n\r\n")
        assert sep and head.startswith(b"HTTP/1.1 "), data[:300]
        m = re.search(rb"\r\nContent-Length: (\d+)", head)
        n = 0 if head_request else int(m.group(1)) if m else len(rest)
        replies.append(RawReply(head + b"\r\n\r\n" + rest[:n]))
        data = rest[n:]
    return replies


def exchange(server, data, req, wait):
    """Send data on a fresh connection (from a thread, so that a server that
    answers before reading everything cannot deadlock us), read until the
    server closes.  Returns (bytes received, closed, seconds from the end of
    sending to the close)."""
    sock = socket.create_connection(("127.0.0.1", server.port), 10)
    sent_at = []

    def send():
        try:
            sock.sendall(data)
            if req.half_close:
                sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass                # the server answered and closed first
        sent_at.append(time.monotonic())

    sender = threading.Thread(target=send)
    sender.start()
    got, closed = [], False
    deadline = time.monotonic() + wait
    try:
        while time.monotonic() < deadline:
            sock.settimeout(max(0.05, deadline - time.monotonic()))
            try:
                chunk = sock.recv(65536)
            except socket.timeout:
                break
            except ConnectionResetError:
                closed = True
                break
            if not chunk:
                closed = True
                break
            got.append(chunk)
        end = time.monotonic()
    finally:
        sender.join(30)
        sock.close()
    return b"".join(got), closed, end - (sent_at[0] if sent_at else end)


def log_bytes(path):
    try:
        with open(path, "rb") as f:
            return f.read()
    except FileNotFoundError:
        return b""


def new_lines(path, offset):
    return log_bytes(path)[offset:].split(b"\n")[:-1]


def httpd_timeout(server):
    with open(server.conf) as f:
        return int(re.search(r"^Timeout (\d+)$", f.read(), re.M).group(1))


# -- the test -------------------------------------------------------------------------

@pytest.mark.parametrize("req,want", ROWS)
def test_hostile_request(request, k2, req, want):
    server = request.getfixturevalue("big") if req.server == "big" else k2
    txid, probe = new_id(), uuid.uuid4().hex
    marker = "FORGED" + probe
    forge = f"{FAKE_TS} [k2notify:info] {marker}"
    subs = {b"@ID@": txid.encode(), b"@P@": probe.encode(), b"@FORGE@": forge.encode(),
            b"@FORGE%@": urllib.parse.quote(forge).encode()}

    def sub(b):
        for k, v in subs.items():
            b = b.replace(k, v)
        return b

    logged = sub(want.logged.encode()).decode()
    server.wait_log(r"resuming normal operations")     # startup lines are not ours
    timeout = httpd_timeout(server)
    count_before = server.count()
    err_offset = len(log_bytes(server.error_log))
    acc_offset = len(log_bytes(server.access_log))

    data, closed, elapsed = exchange(server, req.encode(sub, server.port), req,
                                     timeout + 3)

    # -- the connection: closed, at once or by httpd's Timeout
    assert closed, f"connection still open after {elapsed:.1f} s"
    if want.by_timeout:
        assert timeout - 1 <= elapsed <= timeout + 2, elapsed
    else:
        assert elapsed < timeout - 1, elapsed

    # -- the replies
    replies = split_replies(data, head_request=req.method == b"HEAD")
    expected = ([] if want.status is None else [want.status]) + want.then
    assert [r.status_code for r in replies] == expected, data[:500]
    if replies:
        first = replies[0]
        if want.body is not None:           # the module's reply, byte for byte
            assert first.headers["Content-Type"] == "application/json"
            if req.method == b"HEAD":
                assert first.content == b""
                assert first.headers["Content-Length"] == str(len(want.body))
            else:
                assert first.content == want.body
        else:                               # httpd's own page
            assert first.headers["Content-Type"] == want.page_type
            assert b'"status"' not in first.content
        if want.status == 405:
            assert first.headers["Allow"] == "POST"
        assert replies[-1].headers["Connection"] == "close"
        for r in replies[:-1]:
            assert "Connection" not in r.headers       # kept alive for the next one

    # -- the database: nothing recorded (or the one row of a positive control)
    assert server.count() == count_before + want.records
    rows = server.rows(txid)
    assert len(rows) == want.records, rows
    if want.records:
        assert (rows[0]["ac_no"], rows[0]["amount"]) == ("A123333", "1500")

    # -- the error log: no error or crash, one decision when the module ran
    errors = new_lines(server.error_log, err_offset)
    text = [l.decode("utf-8", "replace") for l in errors]
    assert not [l for l in text if BAD_LOG.search(l)], text
    for l in text:
        assert REAL_TS.match(l) and not l.startswith(FAKE_TS), l
        if want.outcome in (None, "bad_request"):
            assert marker not in l, l                   # a refused value is not echoed
        assert "\r" not in l, l
    decisions = [l for l in text if DECISION.search(l)]
    assert decisions == text, text                      # nothing else was logged
    if want.outcome is None:
        assert decisions == []
    else:
        assert len(decisions) == 1, decisions
        line = decisions[0]
        assert ("notification k2_transaction_id=" + logged + " ") in line, line[:300]
        tail = " outcome=" + want.outcome + (": " + want.detail if want.detail else "")
        assert line.endswith(tail), ("decision line lost its outcome", len(line),
                                     line[:200], line[-200:], tail)

    # -- the access log: exactly the expected lines, with the K2_* variables
    access_expected = want.access if want.access is not None else expected
    deadline = time.time() + 5
    while True:
        acc = new_lines(server.access_log, acc_offset)
        if len(acc) >= len(access_expected) or time.time() > deadline:
            break
        time.sleep(0.05)
    acc = [l.decode("latin-1") for l in acc]
    for l in acc:
        assert re.match(r"\d{3} ", l) and not l.startswith(FAKE_TS), l[:300]
        assert not l.startswith("FORGED") and "\r" not in l, l[:300]
    assert [int(l[:3]) for l in acc] == access_expected, [l[:300] for l in acc]
    if want.probe_logged:
        assert all(probe in l for l in acc), [l[:300] for l in acc]
    if acc:
        status, rest = acc[0].split(" ", 1)
        fields = rest.split("|", 7)
        if want.outcome is None:
            assert fields[:6] == ["-"] * 6, fields[:7]      # the module set nothing
        else:
            assert fields[0] == logged, fields[0][:100]
            assert fields[4:7] == [want.k2status, want.outcome, "k2login"], fields[4:7]
