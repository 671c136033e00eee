"""The Security section's samples, through a real Apache.

- fail2ban: conf-samples/fail2ban's filter, run by fail2ban-regex on the
  audit log (the samples' LogFormat) and the error log that a real server
  wrote, counts each failed authentication exactly once, with the address
  that sent it, and none of the other requests; the jail, in a real
  fail2ban-server, bans the addresses that failed 5 times and no other.
- Source addresses: the commented <RequireAll> of k2notify-ssl.conf, once
  uncommented as its comment says, refuses other addresses with 403 before
  asking for the password.
- Slow clients: the sample's RequestReadTimeout cuts a body that trickles in.

The clients use loopback addresses (Linux routes all of 127/8 to lo), one per
role, so that every log line can be told apart by its address.
"""
import http.client
import os
import re
import shutil
import socket
import subprocess
import tempfile
import time

import pytest

from conftest import (AUTH, MODULES, PASSWORD, SPEC_BODY, TOP, USER, Httpd,
                      form, notification, wait_access, wait_lines)
from test_signature import signed, write_key

SAMPLES = os.path.join(TOP, "conf-samples")
SSL_SAMPLE = os.path.join(SAMPLES, "k2notify-ssl.conf")
FAIL2BAN = os.path.join(SAMPLES, "fail2ban")
FILTER = os.path.join(FAIL2BAN, "filter.d", "k2notify.conf")
JAIL = os.path.join(FAIL2BAN, "jail.d", "k2notify.conf")

GOOD = "127.0.0.2"              # K2: every request authenticated
BAD_PASSWORD = "127.0.0.3"      # 5 wrong or missing passwords
BAD_SIGNATURE = "127.0.0.4"     # 5 refused signatures
BELOW_LIMIT = "127.0.0.5"       # 2 wrong passwords and 2 refused signatures

ACCEPTED = '{"status":"01","description":"Accepted"}'
ACCOUNT_SQL = 'K2NotifyAccountQuery "SELECT ac_no FROM accounts WHERE ac_no = %s"'
RECORD_SQL = ('K2NotifyRecordQuery "INSERT INTO k2_transactions (k2_transaction_id, '
              'ac_no, amount, currency) VALUES (%s, %s, %s, %s) ON CONFLICT '
              '(k2_transaction_id) DO NOTHING" k2_transaction_id ac_no amount currency')


def escape_braces(text):
    """Configuration text for Httpd's body, which is a str.format template."""
    return text.replace("{", "{{").replace("}", "}}")


def audit_logformat():
    """The audit LogFormat of the samples: the one the manual tells users to
    use (docs/operations.md) and the filter is written for.  Every sample has the same."""
    formats = set()
    for name in sorted(os.listdir(SAMPLES)):
        if name.endswith(".conf"):
            with open(os.path.join(SAMPLES, name)) as f:
                formats.update(l.strip() for l in f
                               if re.match(r"\s*LogFormat .* k2notify$", l))
    assert len(formats) == 1, formats
    return formats.pop()


def post_from(server, source, body, auth=(USER, PASSWORD), path="/k2/notify"):
    """POST a form (dict) from a loopback source address: (status, headers,
    body)."""
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30,
                                      source_address=(source, 0))
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    if auth:
        headers["Authorization"] = Httpd.basic(*auth)
    try:
        conn.request("POST", path, body=form(body), headers=headers)
        r = conn.getresponse()
        return r.status, dict(r.getheaders()), r.read().decode()
    finally:
        conn.close()


# -- fail2ban -----------------------------------------------------------------

FAIL2BAN_SERVER = """
{logformat}
CustomLog "{{dir}}/k2notify.log" k2notify

<Location /k2/notify>
    SetHandler k2notify
{auth}
    K2NotifySignatureKeyFile k2.key
    {account}
    {record}
</Location>
"""


def fail2ban_regex(log, *options):
    """fail2ban-regex [OPTIONS] LOG FILTER (the shipped filter file)."""
    p = subprocess.run(["fail2ban-regex", "--raw", *options, log, FILTER],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stdout + p.stderr
    return p.stdout


def matched_addresses(log):
    """The address of every line the filter matches, in the log's order."""
    return fail2ban_regex(log, "--out", "ip").split()


def line_counts(log):
    """fail2ban-regex's summary: (lines, matched), and its whole report."""
    out = fail2ban_regex(log)
    m = re.search(r"^Lines: (\d+) lines, \d+ ignored, (\d+) matched, \d+ missed",
                  out, re.M)
    assert m, out
    return (int(m.group(1)), int(m.group(2))), out


@pytest.fixture(scope="module")
def attacked():
    """A real server with the samples' audit log, after failed
    authentications from three addresses and good requests of every other
    outcome from a fourth.  Yields (server, audit log path)."""
    s = Httpd("fail2ban", FAIL2BAN_SERVER.format(
        logformat=escape_braces(audit_logformat()), auth=AUTH,
        account=ACCOUNT_SQL, record=RECORD_SQL))
    write_key(s)
    s.expect_error(r"\[auth_basic:error\] \[pid \d+:tid \d+\] \[client 127\.0\.0"
                   r"\.[35]:\d+\] AH01617: user k2login: authentication failure "
                   r"for \"/k2/notify\": Password Mismatch$")
    s.start()
    try:
        def bad_password(source, password):
            auth = (USER, password) if password else None
            r = post_from(s, source, signed(notification()), auth=auth)
            assert r[0] == 401 and "WWW-Authenticate" in r[1], r

        def bad_signature(source, n):
            r = post_from(s, source, n)
            assert r[0] == 401 and "signature" in r[2], r

        # Wrong passwords, and none at all: refused by mod_auth_basic.
        for password in ("wrong-1", "wrong-2", "wrong-3", "wrong-4", None):
            bad_password(BAD_PASSWORD, password)
        # The right password, no or a wrong signature: refused by the module.
        for n in (notification(), dict(notification(), signature="A" * 28),
                  dict(signed(notification()), amount="99"),
                  dict(signed(notification()), promo="1"),
                  dict(notification(), signature="")):
            bad_signature(BAD_SIGNATURE, n)
        bad_password(BELOW_LIMIT, "wrong-5")
        bad_signature(BELOW_LIMIT, notification())
        bad_password(BELOW_LIMIT, None)
        bad_signature(BELOW_LIMIT, dict(notification(), signature="B" * 28))
        # K2: accepted, duplicate, 02, 03, 400, accepted.
        n = notification()
        assert post_from(s, GOOD, signed(n))[::2] == (200, ACCEPTED)
        assert post_from(s, GOOD, signed(n))[::2] == (200, ACCEPTED)
        for n, status in ((notification(ac_no="NOPE"), 200),
                          (notification(amount="1.234"), 200),
                          (notification(currency=None), 400),
                          (notification(), 200)):
            assert post_from(s, GOOD, signed(n))[0] == status
        # The last audit line is written after its reply.
        wait_access(s, n["k2_transaction_id"])
        audit = os.path.join(s.dir, "k2notify.log")
        wait_lines(audit, 5 + 5 + 4 + 6)
        yield s, audit
    finally:
        s.stop()
        bad = s.unexpected_errors()
        s.cleanup()
        assert not bad, "unexpected error-log lines:\n" + "\n".join(bad)


def test_fail2ban_filter_counts_each_refused_password_once_from_the_audit_log(attacked):
    s, audit = attacked
    (lines, matched), report = line_counts(audit)
    assert (lines, matched) == (20, 7), report
    # Exactly the 401s of mod_auth_basic, with their senders' address; not
    # the 401s of refused signatures (counted in the error log), nor K2's.
    assert matched_addresses(audit) == [BAD_PASSWORD] * 5 + [BELOW_LIMIT] * 2


def test_fail2ban_filter_counts_each_refused_signature_once_from_the_error_log(attacked):
    s, audit = attacked
    (lines, matched), report = line_counts(s.error_log)
    assert matched == 7, report
    # Not the auth_basic error lines (counted in the audit log), nor the
    # info lines of K2's notifications.
    assert matched_addresses(s.error_log) == [BAD_SIGNATURE] * 5 + [BELOW_LIMIT] * 2
    with open(s.error_log) as f:
        text = f.read()
    assert len(re.findall(r"\[k2notify:info\] .*\[client 127\.0\.0\.2:", text)) == 6
    assert text.count("AH01617") == 4 + 1


def test_fail2ban_jail_bans_an_address_after_5_failures_in_either_log_and_no_other(attacked):
    """The shipped filter and jail in a real fail2ban-server (its own
    configuration directory, socket and database; the dummy action records
    the bans in a file instead of the firewall)."""
    s, audit = attacked
    conf = tempfile.mkdtemp(prefix="k2notify-fail2ban-")
    try:
        shutil.copytree("/etc/fail2ban", conf, dirs_exist_ok=True)
        for name in os.listdir(os.path.join(conf, "jail.d")):
            os.remove(os.path.join(conf, "jail.d", name))   # Debian's sshd jail
        shutil.copy(FILTER, os.path.join(conf, "filter.d"))
        shutil.copy(JAIL, os.path.join(conf, "jail.d"))
        sock, bans = os.path.join(conf, "fail2ban.sock"), os.path.join(conf, "bans")
        with open(os.path.join(conf, "fail2ban.local"), "w") as f:
            f.write(f"[Definition]\nlogtarget = {conf}/fail2ban.log\n"
                    f"socket = {sock}\npidfile = {conf}/fail2ban.pid\n"
                    "dbfile = :memory:\n")
        # Only the paths change: the test's logs, and no firewall.
        with open(os.path.join(conf, "jail.d", "k2notify.local"), "w") as f:
            f.write(f"[k2notify]\nlogpath = {audit}\n          {s.error_log}\n"
                    f"action = dummy[target={bans}]\nbackend = polling\n")
        client = ["fail2ban-client", "-c", conf, "-s", sock]
        p = subprocess.run(client + ["-t"], capture_output=True, text=True, timeout=60)
        assert p.returncode == 0 and "OK: configuration test is successful" in (
            p.stdout + p.stderr), p.stdout + p.stderr
        p = subprocess.run(client + ["-x", "start"], capture_output=True,
                           text=True, timeout=60)
        assert p.returncode == 0, p.stdout + p.stderr
        try:
            # fail2ban reads both logs from their start, then bans (a
            # separate thread, a fraction of a second later).
            deadline = time.time() + 30
            while True:
                st = subprocess.run(client + ["status", "k2notify"],
                                    capture_output=True, text=True, timeout=30)
                failed = re.search(r"Total failed:\s+(\d+)", st.stdout)
                banned = re.search(r"Banned IP list:[ \t]*(.*)$", st.stdout, re.M)
                banned = sorted(banned.group(1).split()) if banned else []
                if len(banned) >= 2 or time.time() > deadline:
                    break
                time.sleep(0.2)
            assert failed and int(failed.group(1)) == 5 + 5 + 4, st.stdout + st.stderr
            # 127.0.0.5's 4 failures (2 in each log) stay below maxretry.
            assert banned == [BAD_PASSWORD, BAD_SIGNATURE], st.stdout
            with open(bans) as f:
                assert sorted(l for l in f.read().split() if l.startswith("+")) == [
                    "+" + BAD_PASSWORD, "+" + BAD_SIGNATURE]
        finally:
            subprocess.run(client + ["stop"], capture_output=True, timeout=60)
    finally:
        shutil.rmtree(conf, ignore_errors=True)


# -- source addresses ---------------------------------------------------------

def source_address_location(both_outside=False):
    """The sample's <Location> authorization as its comment says to change it:
    "Require valid-user" commented out, the <RequireAll> block uncommented,
    its placeholder addresses replaced by GOOD's (or, with both_outside, the
    block uncommented but "Require valid-user" left: the mistake the comment
    warns about)."""
    with open(SSL_SAMPLE) as f:
        sample = f.read()
    block = re.search(r"^( *)Require valid-user\n((?:\1#.*\n)+)", sample, re.M)
    assert block, "no commented <RequireAll> after Require valid-user"
    indent, commented = block.group(1), block.group(2)
    lines = [l.strip()[1:] for l in commented.splitlines()]
    assert lines[0] == "<RequireAll>" and lines[-1] == "</RequireAll>", lines
    assert "    Require ip 192.0.2.10 198.51.100.0/24" in lines, lines
    lines = [l.replace("192.0.2.10 198.51.100.0/24", GOOD) for l in lines]
    if both_outside:
        lines.insert(0, "Require valid-user")
    return ("<Location /k2/notify>\n    SetHandler k2notify\n"
            + AUTH.replace("    Require valid-user\n", "")
            + "\n".join("    " + l for l in lines)
            + f"\n    {ACCOUNT_SQL}\n    {RECORD_SQL}\n</Location>\n")


def test_sample_requireall_refuses_other_addresses_with_403_before_the_password(make_httpd):
    s = make_httpd("source-address", source_address_location(),
                   modules=MODULES + ["authz_host"])
    s.expect_error(r"\[authz_core:error\] .* \[client 127\.0\.0\.3:\d+\] AH01630: "
                   r"client denied by server configuration: ")
    s.start()
    # Another address: 403 with or without the right password, never a
    # challenge, nothing recorded.
    for auth in ((USER, PASSWORD), None):
        n = notification()
        status, headers, _ = post_from(s, BAD_PASSWORD, n, auth=auth)
        assert (status, "WWW-Authenticate" in headers) == (403, False)
        assert s.rows(n["k2_transaction_id"]) == []
    # K2's address: the password is still required, and then it works.
    status, headers, _ = post_from(s, GOOD, notification(), auth=None)
    assert (status, headers.get("WWW-Authenticate")) == (
        401, 'Basic realm="K2 notifications"')
    n = notification()
    assert post_from(s, GOOD, n)[::2] == (200, ACCEPTED)
    assert len(s.rows(n["k2_transaction_id"])) == 1


def test_require_lines_side_by_side_mean_any_so_the_sample_keeps_them_in_requireall(make_httpd):
    """What the sample's comment warns about: "Require valid-user" left
    beside the block lets every address in with the password."""
    s = make_httpd("source-address-mistake", source_address_location(both_outside=True),
                   modules=MODULES + ["authz_host"])
    s.start()
    n = notification()
    assert post_from(s, BAD_PASSWORD, n)[::2] == (200, ACCEPTED)


# -- slow clients ---------------------------------------------------------------

def test_sample_request_read_timeout_cuts_a_body_sent_a_byte_a_second(make_httpd):
    with open(SSL_SAMPLE) as f:
        timeouts = [l.strip() for l in f if l.strip().startswith("RequestReadTimeout")]
    assert len(timeouts) == 1, timeouts
    s = make_httpd("slow-body", f"{timeouts[0]}\n<Location /k2/notify>\n"
                   f"    SetHandler k2notify\n{AUTH}    {ACCOUNT_SQL}\n"
                   f"    {RECORD_SQL}\n</Location>\n",
                   modules=MODULES + ["reqtimeout"])
    s.start()
    body = SPEC_BODY.replace("k2_transaction_id=15", "k2_transaction_id=SLOW-1").encode()
    head = (f"POST /k2/notify HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            f"Authorization: {Httpd.basic()}\r\n"
            "Content-Type: application/x-www-form-urlencoded\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode()
    sent, reply = 0, b""
    with socket.create_connection(("127.0.0.1", s.port), 30) as c:
        c.sendall(head)
        c.settimeout(1)
        # One byte a second, for 40 s at most (the whole body would take over
        # 5 minutes): the reply must come while the client is still sending,
        # so that httpd's Timeout (5 s without a byte) never plays a part.
        deadline = time.time() + 40
        while not reply and time.time() < deadline:
            try:
                reply = c.recv(65536)
                if not reply:
                    break                       # closed without a reply
            except socket.timeout:
                try:
                    c.sendall(body[sent:sent + 1])
                    sent += 1
                except OSError:                 # closed: read what it said
                    reply = c.recv(65536)
    assert reply.startswith(b"HTTP/1.1 408 "), (sent, reply)
    assert sent < len(body)
    assert s.count() == 0
    # The body was never read whole: the line names no transaction.
    assert wait_access(s, "-") == [["408", "-", "-", "-", "-", "", "bad_request",
                                    USER, "POST /k2/notify HTTP/1.1"]]
