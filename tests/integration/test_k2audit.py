"""tools/k2audit (issue 18) on the audit logs a real Apache wrote.

One server runs the samples' audit logging as shipped (the LogFormat and
CustomLog lines of k2notify-sqlite.conf and k2notify-k2connect.conf) and
their locations (/k2/notify, /k2/webhook, /k2/webhook-daraja), with a
duplicate query each, a nested location whose record statement fails, and
another virtual host's format written to the same file.  It is sent a
notification of every outcome in two batches, one second apart; between
them the logs are rotated as logrotate's copytruncate does, into .gz files.
Then the server is stopped, the last audit line is copied cut short (as a
full disk leaves it), and tools/k2audit runs as a subprocess on those files
and on the server's SQLite database, after a row was deleted from each table
and one inserted into each.
"""
import datetime
import gzip
import json
import os
import re
import shutil
import sqlite3
import subprocess
import time
import uuid

import pytest
import requests

from conftest import (ACCOUNT, AUTH, FAILING_SQL, PASSWORD, TOP, USER, Httpd,
                      notification, wait_lines)
from test_k2connect import NODE_KEY, fixture, fresh, sign
from test_signature import write_key

K2AUDIT = os.path.join(TOP, "tools", "k2audit")
SAMPLES = os.path.join(TOP, "conf-samples")
FORM_SAMPLE = os.path.join(SAMPLES, "k2notify-sqlite.conf")
WEBHOOK_SAMPLE = os.path.join(SAMPLES, "k2notify-k2connect.conf")
WEBHOOK_SCHEMA = os.path.join(SAMPLES, "schema-k2connect-sqlite.sql")

FORM_DUPLICATE = ('K2NotifyDuplicateQuery "SELECT ac_no, amount FROM '
                  'k2_transactions WHERE k2_transaction_id = %s"')
WEBHOOK_DUPLICATE = ('K2NotifyDuplicateQuery "SELECT amount FROM k2_events '
                     'WHERE event_id = %s"')


def sample(path):
    with open(path) as f:
        return f.read()


def sample_logging(path):
    """A sample's LogFormat and CustomLog lines, as shipped."""
    lines = [l.strip() for l in sample(path).splitlines()
             if re.match(r"\s*(LogFormat|CustomLog) ", l)]
    assert len(lines) == 2, lines
    return "\n".join(lines)


def sample_location(path, name, extra):
    """A sample's <Location name> block, with extra lines at its end."""
    m = re.search(rf"^ *<Location {name}>\n.*?^ *</Location>", sample(path),
                  re.S | re.M)
    assert m, name
    return m.group(0).replace("</Location>", f"    {extra}\n    </Location>")


def template(text):
    """Configuration text for Httpd's body (a str.format template)."""
    return (text.replace("{", "{{").replace("}", "}}")
            .replace("/etc/apache2/k2.htpasswd", "{htpasswd}")
            .replace("/etc/apache2/k2connect.key", "{dir}/k2connect.key")
            .replace("@DIR@", "{dir}"))


SERVER = template("\n".join([
    # what Debian's /etc/apache2/envvars defines; the samples' lines use it
    "Define APACHE_LOG_DIR @DIR@",
    sample_logging(FORM_SAMPLE),
    sample_logging(WEBHOOK_SAMPLE),
    # another virtual host's lines in the same file, in its own format
    'CustomLog "${APACHE_LOG_DIR}/k2notify.log" "%h %l %u %t \\"%r\\" %>s %b '
    '\\"%{User-agent}i\\"" "expr=%{REQUEST_URI} =~ m#^/elsewhere#"',
    sample_location(FORM_SAMPLE, "/k2/notify", FORM_DUPLICATE),
    """<Location /k2/notify/failing>
    K2NotifyRecordQuery "INSERT INTO k2_refused (k2_transaction_id, ac_no) VALUES (%s, %s)" k2_transaction_id ac_no
</Location>""",
    sample_location(WEBHOOK_SAMPLE, "/k2/webhook", WEBHOOK_DUPLICATE),
    sample_location(WEBHOOK_SAMPLE, "/k2/webhook-daraja", ""),
    # the sample's optional account query, uncommented as its comment says
    sample_location(WEBHOOK_SAMPLE, "/k2/webhook", "")
    .replace("<Location /k2/webhook>", "<Location /k2/webhook-stk>")
    .replace("# K2NotifyAccountQuery", "K2NotifyAccountQuery")
    .replace("#     /data/attributes/metadata/customer_id",
             "    /data/attributes/metadata/customer_id"),
]))


def lineno(lines, *needles):
    """The line number of the one line that holds every needle (requests
    answered one after the other may be logged in another order)."""
    found = [i for i, l in enumerate(lines, 1) if all(n in l for n in needles)]
    assert len(found) == 1, (needles, lines)
    return found[0]


def copytruncate(path):
    """logrotate's copytruncate then compress: path.1.gz holds what path
    held, path is emptied (httpd appends to it: O_APPEND)."""
    with open(path, "rb") as f, gzip.open(path + ".1.gz", "wb") as z:
        shutil.copyfileobj(f, z)
    os.truncate(path, 0)
    return path + ".1.gz"


def webhook(s, body, sig=None, path="/k2/webhook"):
    r = requests.post(s.base + path, data=body, timeout=30, headers={
        "Content-Type": "application/json",
        "X-KopoKopo-Signature": sig or sign(body)})
    return r.status_code, (r.json().get("outcome") if r.status_code == 200 else None)


def event(name, **changes):
    """A Node SDK fixture with a fresh event id (and changes), and its id."""
    changes.setdefault("/id", str(uuid.uuid4()))
    body = fresh(fixture(f"node-stringified/{name}.json"), **changes)
    return body, json.loads(body)["id"]


class Logs:
    """What the server wrote and the test knows of it."""


@pytest.fixture(scope="module")
def logs():
    with open(WEBHOOK_SCHEMA) as f:
        schema = f.read()
    s = Httpd("k2audit", SERVER, extra_sql=schema + FAILING_SQL)
    write_key(s, NODE_KEY + b"\n", name="k2connect.key")
    for pattern in (r"\[k2notify:error\] .* outcome=conflict: ",
                    r"\[k2notify:error\] .* outcome=error: K2NotifyRecordQuery failed",
                    r"\[auth_basic:error\] .* AH01617: user k2login: "
                    r"authentication failure"):
        s.expect_error(pattern)
    s.start()
    L = Logs()
    L.server = s
    form_log = os.path.join(s.dir, "k2notify.log")
    webhook_log = os.path.join(s.dir, "k2connect.log")
    try:
        # -- batch 1: what the rotation takes
        L.a1, L.a2, L.e1 = (notification(), notification(), notification())
        for n, path in ((L.a1, "/k2/notify"), (L.a2, "/k2/notify"),
                        (L.e1, "/k2/notify/failing")):
            s.post(n, path=path)
        w1, L.w1 = event("buygoodsreceivedhook")
        assert webhook(s, w1) == (200, "accepted")
        L.form_old = wait_lines(form_log, 3)
        L.webhook_old = wait_lines(webhook_log, 1)
        L.form_gz = copytruncate(form_log)
        L.webhook_gz = copytruncate(webhook_log)

        # -- one second later: batch 2
        time.sleep(1.05 - time.time() % 1)
        L.boundary = datetime.datetime.fromtimestamp(
            int(time.time()), datetime.timezone.utc)
        L.a3 = notification()
        L.n1 = notification(ac_no="NOPE")
        L.p1 = notification(amount="1.234")
        L.b1 = notification(currency=None)
        L.f401 = notification()
        replies = [s.post(L.a3), s.post(L.a3), s.post(L.n1), s.post(L.p1),
                   s.post(dict(L.a1, amount="1501")), s.post(L.b1),
                   s.post(L.f401, auth=(USER, "wrong")),
                   s.post(None, method="GET", auth=None)]
        assert [(r.status_code, r.text[:14]) for r in replies] == [
            (200, '{"status":"01"'), (200, '{"status":"01"'),
            (200, '{"status":"02"'), (200, '{"status":"03"'),
            (200, '{"status":"03"'), (400, '{"description"'),
            (401, "<!DOCTYPE HTML"), (401, "<!DOCTYPE HTML")]
        for _ in range(2):
            assert requests.get(s.base + "/elsewhere", timeout=30).status_code == 404
        w2, L.w2 = event("b2breceived")
        w1_other = fresh(w1, **{"/event/resource/amount": "200.0"})
        ignored, L.i1 = event("customercreatedhook")
        L.d1 = "D" + uuid.uuid4().hex[:9].upper()
        daraja = fresh(fixture("node-stringified/darajabuygoods.json"),
                       **{"/TransID": L.d1})
        bad_sig, _ = event("buygoodsreceivedhook")
        # an STK push for customer_id 123456789, not in accounts
        stk = fresh(fixture("node-stringified/stksuccessresult.json"),
                    **{"/data/id": str(uuid.uuid4())})
        L.k1 = json.loads(stk)["data"]["id"]
        assert [webhook(s, w2), webhook(s, w2), webhook(s, w1_other),
                webhook(s, ignored),
                webhook(s, bad_sig, sig="0" * 64),
                webhook(s, b"{not json"),
                webhook(s, daraja, path="/k2/webhook-daraja"),
                webhook(s, stk, path="/k2/webhook-stk")] == [
            (200, "accepted"), (200, "duplicate"), (200, "conflict"),
            (200, "ignored"), (401, None), (400, None), (200, "accepted"),
            (200, "account_not_found")]
        L.form_new = wait_lines(form_log, 10)
        L.webhook_new = wait_lines(webhook_log, 8)
    finally:
        s.stop()
    # a3's audit line again, cut short (no newline: as a full disk leaves it)
    first = L.form_new[lineno(L.form_new, f"id={L.a3['k2_transaction_id']} ",
                              "outcome=accepted") - 1]
    L.cut = first[:first.index(" ac=") + len(" ac=A12")]
    with open(form_log, "a") as f:
        f.write(L.cut)
    L.form_log, L.webhook_log = form_log, webhook_log
    L.files = [form_log, webhook_log, L.form_gz, L.webhook_gz]
    L.day = L.boundary.astimezone().strftime("%Y-%m-%d")
    try:
        yield L
    finally:
        bad = s.unexpected_errors()
        s.cleanup()
        assert not bad, "unexpected error-log lines:\n" + "\n".join(bad)


def k2audit(*args, env=None, stdin=None):
    p = subprocess.run([K2AUDIT, *args], capture_output=True, timeout=60,
                       env=env, stdin=stdin)
    return p.returncode, p.stdout.decode(), p.stderr.decode()


def section(out, title):
    """The indented lines under the line that starts with title."""
    lines = out.splitlines()
    for i, line in enumerate(lines):
        if line.startswith(title):
            body = []
            for l in lines[i + 1:]:
                if not l.startswith("  "):
                    break
                body.append(l[2:])
            return line, body
    raise AssertionError(f"no {title!r} in:\n{out}")


def listing(out):
    """The groups to reconcile: [(outcome, [entry lines])], in order."""
    part = out.split("\nto reconcile: ", 1)[1].split("\ncounts:\n", 1)[0]
    groups = []
    for line in part.splitlines()[1:]:
        if line.startswith("  "):
            groups[-1][1].append(line[2:])
        elif line:
            name, n = line.split(": ")
            groups.append((name, []))
            assert int(n) > 0
    for name, entries in groups:
        assert int(re.search(rf"^{name}: (\d+)$", part, re.M).group(1)) == len(entries)
    return groups


def field(entry, name):
    m = re.search(rf" {name}=(\S*)", entry)
    return m and m.group(1)


def ids(entries):
    return [field(e, "id") for e in entries]


def counts(out):
    _, lines = section(out, "counts:")
    return {k: int(v) for k, v in (l.split() for l in lines)}


def where(path, line):
    return f"({path}:{line})"


def in_order(entries):
    """By time, then file name and line number (the order of the files on
    the command line makes no difference)."""
    keys = []
    for e in entries:
        m = re.search(r"\((.*):(\d+)\)$", e)
        keys.append((datetime.datetime.strptime(e[:25], "%Y-%m-%d %H:%M:%S %z"),
                     m.group(1), int(m.group(2))))
    return keys == sorted(keys)


def by_id(entries, ident):
    found = [e for e in entries if field(e, "id") == ident]
    assert len(found) == 1, (ident, entries)
    return found[0]


ALL_COUNTS = {"accepted": 6, "duplicate": 2, "account_not_found": 2,
              "invalid_payment": 1, "bad_request": 2, "bad_signature": 1,
              "conflict": 2, "error": 1, "ignored": 1, "unreached": 1,
              "total": 19}


# -- what K2 flags ----------------------------------------------------------------

def test_every_notification_to_reconcile_is_listed_under_its_outcome_conflicts_first(logs):
    L = logs
    rc, out, err = k2audit(*L.files)
    assert (rc, err) == (1, "")
    groups = listing(out)
    assert [g for g, _ in groups] == [
        "conflict", "account_not_found", "invalid_payment", "bad_request",
        "bad_signature", "error", "unreached"]
    g = dict(groups)
    for entries in g.values():
        assert in_order(entries)
    # the form's reuse of a1 with another amount, the webhook's of w1
    assert sorted(ids(g["conflict"])) == sorted([L.a1["k2_transaction_id"], L.w1])
    form = by_id(g["conflict"], L.a1["k2_transaction_id"])
    assert " form " in form and form.endswith(where(L.form_log, lineno(
        L.form_new, f"id={L.a1['k2_transaction_id']} ", "outcome=conflict")))
    assert (field(form, "amount"), field(form, "http"), field(form, "status")) == (
        "1501", "200", "03")
    hook = by_id(g["conflict"], L.w1)
    assert " k2connect topic=buygoods_transaction_received " in hook
    assert (field(hook, "amount"), field(hook, "http"), field(hook, "status")) == (
        "200.0", "200", None)
    assert hook.endswith(where(L.webhook_log, lineno(
        L.webhook_new, f"id={L.w1} ", "outcome=conflict")))
    # the form's 02, and the webhook recorded (200) for an unknown account
    assert sorted(ids(g["account_not_found"])) == sorted([L.n1["k2_transaction_id"], L.k1])
    form = by_id(g["account_not_found"], L.n1["k2_transaction_id"])
    assert (field(form, "ac"), field(form, "http"), field(form, "status")) == (
        "NOPE", "200", "02")
    hook = by_id(g["account_not_found"], L.k1)
    assert " k2connect topic=incoming_payment " in hook
    assert (field(hook, "ref"), field(hook, "http")) == ("OJJ1MPU40Z", "200")
    assert ids(g["invalid_payment"]) == [L.p1["k2_transaction_id"]]
    assert field(g["invalid_payment"][0], "amount") == "1.234"
    # the form without a currency (shown "-"), the webhook that is not JSON
    assert sorted(ids(g["bad_request"])) == sorted([L.b1["k2_transaction_id"], "-"])
    assert [field(e, "http") for e in g["bad_request"]] == ["400", "400"]
    assert " amount=1500 - http=400 status=- " in by_id(
        g["bad_request"], L.b1["k2_transaction_id"])
    assert " k2connect topic=- id=- " in by_id(g["bad_request"], "-")
    assert [field(e, "http") for e in g["bad_signature"]] == ["401"]
    assert ids(g["error"]) == [L.e1["k2_transaction_id"]]
    assert field(g["error"][0], "http") == "500"
    assert g["error"][0].endswith(where(L.form_gz, lineno(
        L.form_old, f"id={L.e1['k2_transaction_id']} ")))
    # mod_auth_basic's 401: the module never saw it; not the GET
    assert len(g["unreached"]) == 1
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d [+-]\d{4} 127\.0\.0\.1 "
                        r'user=k2login "POST /k2/notify HTTP/1\.1" http=401 '
                        + re.escape(where(L.form_log, lineno(
                            L.form_new, '"POST /k2/notify HTTP/1.1" 401'))),
                        g["unreached"][0])
    # nothing accepted, duplicate or ignored is to reconcile
    listed = {i for _, entries in groups for i in ids(entries)}
    for n in (L.a2, L.a3):
        assert n["k2_transaction_id"] not in listed
    assert not {L.w2, L.i1, L.d1} & listed


def test_counts_per_outcome_cover_every_notification_of_the_period(logs):
    rc, out, _ = k2audit(*logs.files)
    assert counts(out) == ALL_COUNTS
    assert out.splitlines()[:2] == [
        "period: every line read",
        "read: 4 files, 23 lines: 19 notifications (form 10, k2connect 9), "
        "0 outside the period, 1 other request, 3 skipped"]


def test_files_are_read_in_any_order_and_listed_by_time(logs):
    L = logs
    _, out, _ = k2audit(*L.files)
    _, reversed_out, _ = k2audit(*reversed(L.files))
    assert listing(reversed_out) == listing(out)


def test_a_rotated_gz_part_is_read_like_a_plain_file(logs, tmp_path):
    L = logs
    rc, out, _ = k2audit(L.form_gz, L.webhook_gz)
    assert rc == 1
    assert [(g, ids(e)) for g, e in listing(out)] == [
        ("error", [L.e1["k2_transaction_id"]])]
    assert counts(out) == dict({k: 0 for k in ALL_COUNTS if k != "unreached"},
                               accepted=3, error=1, total=4)
    # the same lines, uncompressed, give the same report but for the names
    plain = str(tmp_path / "k2notify.log.1")
    with gzip.open(L.form_gz) as z, open(plain, "wb") as f:
        f.write(z.read())
    _, out_plain, _ = k2audit(plain, L.webhook_gz)
    assert out_plain == out.replace(L.form_gz, plain)
    assert out_plain != out
    # "-" is standard input, compressed or not
    with open(L.form_gz, "rb") as f:
        _, out_stdin, _ = k2audit("-", L.webhook_gz, stdin=f)
    assert out_stdin == out.replace(L.form_gz, "-")


# -- the period -------------------------------------------------------------------

def test_from_leaves_out_the_lines_before_it(logs):
    L = logs
    rc, out, _ = k2audit("--from", L.boundary.isoformat(), *L.files)
    assert rc == 1
    assert out.splitlines()[:2] == [
        f"period: {L.boundary.strftime('%Y-%m-%d %H:%M:%S +0000')} to the last line",
        "read: 4 files, 23 lines: 15 notifications (form 7, k2connect 8), "
        "4 outside the period, 1 other request, 3 skipped"]
    assert "error" not in dict(listing(out))
    assert counts(out) == dict(ALL_COUNTS, accepted=3, error=0, total=15)


def test_until_leaves_out_the_lines_from_it_skipped_lines_included(logs):
    L = logs
    rc, out, _ = k2audit("--until", L.boundary.strftime("%d/%b/%Y:%H:%M:%S +0000"),
                         *L.files)
    assert rc == 1
    assert out.splitlines()[1] == (
        "read: 4 files, 23 lines: 4 notifications (form 3, k2connect 1), "
        "19 outside the period, 0 other requests, 0 skipped")
    assert [g for g, _ in listing(out)] == ["error"]
    assert "skipped lines" not in out


def test_date_is_a_day_in_local_time(logs):
    L = logs
    rc, out, _ = k2audit("--date", L.day, *L.files)
    assert rc == 1 and counts(out) == ALL_COUNTS
    day_before = (datetime.date.fromisoformat(L.day)
                  - datetime.timedelta(days=1)).isoformat()
    rc, out, _ = k2audit("--date", day_before, *L.files)
    assert rc == 0
    assert out.splitlines()[1:4] == [
        "read: 4 files, 23 lines: 0 notifications (form 0, k2connect 0), "
        "23 outside the period, 0 other requests, 0 skipped", "",
        "to reconcile: nothing"]
    # The same lines in two time zones 13 hours apart, chosen so that they
    # fall about noon in one and about 1:00 or 23:00 in the other: two
    # different local days.
    hour = L.boundary.hour + L.boundary.minute / 60
    near_noon = round(12 - hour)
    other = near_noon + 13 if near_noon <= 1 else near_noon - 13
    for offset in (near_noon, other):
        env = dict(os.environ, TZ=f"<{offset:+03d}>{-offset:+d}")
        day = L.boundary.astimezone(datetime.timezone(
            datetime.timedelta(hours=offset))).date()
        for d, total in ((day, 19), (day + datetime.timedelta(days=1), 0),
                         (day - datetime.timedelta(days=1), 0)):
            rc, out, _ = k2audit("--date", d.isoformat(), *L.files, env=env)
            assert counts(out)["total"] == total, (env["TZ"], d)


# -- lines that are not notifications -----------------------------------------------

def test_foreign_and_damaged_lines_are_counted_and_named_never_fatal(logs):
    L = logs
    rc, out, err = k2audit("--examples", "1", *L.files)
    assert (rc, err) == (1, "")
    head, lines = section(out, "skipped lines:")
    assert head == "skipped lines: 3"
    assert lines[0] == "damaged: 1 (an audit line cut short)"
    assert lines[1] == f"  {L.form_log}:11: {L.cut}"
    assert lines[2] == "foreign: 2 (not an audit LogFormat)"
    first_foreign = min(i for i, l in enumerate(L.form_new, 1) if "/elsewhere" in l)
    assert re.fullmatch(re.escape(f"  {L.form_log}:{first_foreign}: ") + r'127\.0\.0\.1 - - \[.*\] '
                        r'"GET /elsewhere HTTP/1\.1" 404 \d+ "python-requests/.*"',
                        lines[3])
    assert lines[4:] == ["  ... and 1 more"]
    # what can be read is reported all the same
    assert counts(out) == ALL_COUNTS


def test_a_clean_log_exits_0_a_damaged_line_1_and_foreign_lines_alone_0(logs, tmp_path):
    L = logs
    clean = tmp_path / "clean.log"
    accepted = [l for l in L.form_old + L.form_new if l.endswith(" outcome=accepted")]
    foreign = [l for l in L.form_new if "/elsewhere" in l]
    assert len(accepted) == 3 and len(foreign) == 2
    clean.write_text("\n".join(accepted) + "\n")
    rc, out, _ = k2audit(str(clean))
    assert rc == 0
    assert "\nto reconcile: nothing\n" in out
    clean.write_text("\n".join(accepted + foreign + [""]) + "\n")
    rc, out, _ = k2audit(str(clean))
    assert rc == 0 and section(out, "skipped lines:")[1][0] == (
        "foreign: 3 (not an audit LogFormat)")
    clean.write_text("\n".join(accepted) + "\n" + L.cut)
    rc, out, _ = k2audit(str(clean))
    assert rc == 1 and "\nto reconcile: nothing\n" in out
    assert section(out, "skipped lines:")[1][0] == "damaged: 1 (an audit line cut short)"


# -- the database --------------------------------------------------------------------

@pytest.fixture(scope="module")
def db(logs):
    """The server's database, with a row deleted from each table, a row
    nobody was answered for inserted into each (received at the boundary),
    and a1's row received at the boundary too (as a commit just after
    midnight is, for a notification logged the day before); and a row
    received an hour from now (a commit after k2audit started, whose line
    may not be written yet)."""
    L = logs
    at = L.boundary.strftime("%Y-%m-%dT%H:%M:%SZ")
    L.x1, L.x2, L.x3 = ("X" + uuid.uuid4().hex[:12], str(uuid.uuid4()),
                        "X" + uuid.uuid4().hex[:12])
    later = (datetime.datetime.now(datetime.timezone.utc)
             + datetime.timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    con = sqlite3.connect(L.server.db)
    con.execute("DELETE FROM k2_transactions WHERE k2_transaction_id = ?",
                (L.a2["k2_transaction_id"],))
    con.execute("DELETE FROM k2_events WHERE event_id = ?", (L.w2,))
    con.execute("INSERT INTO k2_transactions (k2_transaction_id, ac_no, amount, "
                "currency, received_at) VALUES (?, ?, '99', 'KES', ?)",
                (L.x1, ACCOUNT, at))
    con.execute("INSERT INTO k2_events (event_id, topic, reference, amount, "
                "currency, raw_body, received_at) VALUES (?, "
                "'buygoods_transaction_received', 'QX', '5.0', 'KES', '{}', ?)",
                (L.x2, at))
    con.execute("INSERT INTO k2_transactions (k2_transaction_id, ac_no, amount, "
                "currency, received_at) VALUES (?, ?, '98', 'KES', ?)",
                (L.x3, ACCOUNT, later))
    con.execute("UPDATE k2_transactions SET received_at = ? WHERE "
                "k2_transaction_id = ?", (at, L.a1["k2_transaction_id"]))
    con.commit()
    con.close()
    return L.server.db


def test_db_finds_the_01_whose_row_was_deleted_and_the_row_without_a_01(logs, db):
    L = logs
    rc, out, err = k2audit("--date", L.day, "--db", db, *L.files)
    assert (rc, err) == (1, "")
    text = out.split(f"\ndatabase {db}: ", 1)[1]
    at = L.boundary.strftime("%Y-%m-%dT%H:%M:%SZ")
    lines = text.splitlines()
    assert lines[0].startswith("rows received ")
    body = [l[2:] for l in lines[1:]]
    assert body[0] == "k2_transactions: 1 notification answered 01 with no row"
    assert field(body[1], "id") == L.a2["k2_transaction_id"]
    assert body[1].endswith(where(L.form_gz, lineno(
        L.form_old, f"id={L.a2['k2_transaction_id']} ")))
    assert body[2:4] == [
        "k2_transactions: 1 row with no 01 in the logs read",
        f"  k2_transaction_id={L.x1} received_at={at} ac_no={ACCOUNT} "
        "amount=99 currency=KES"]
    assert body[4] == ("k2_events: 2 notifications answered 200 (recorded) "
                       "with no row")
    assert ids(body[5:7]) == [L.w2, L.w2]
    assert body[7:] == [
        "k2_events: 1 row with no 200 (recorded) in the logs read",
        f"  event_id={L.x2} received_at={at} topic=buygoods_transaction_received "
        "reference=QX amount=5.0 currency=KES"]


def test_db_compares_only_the_rows_and_replies_of_the_period(logs, db):
    L = logs
    rc, out, _ = k2audit("--from", L.boundary.isoformat(), "--db", db, *L.files)
    assert rc == 1
    text = out.split(f"\ndatabase {db}: ", 1)[1]
    # a2 was answered before the period: not looked for; a1's row is in the
    # period, its 01 before it: found among every line read
    assert L.a2["k2_transaction_id"] not in text
    assert L.a1["k2_transaction_id"] not in text
    # the period ends when k2audit started: x3's row is not looked at yet
    assert re.match(r"rows received \S+ \S+ \+0000 to \d{4}-\d\d-\d\d "
                    r"\d\d:\d\d:\d\d [+-]\d{4}\n", text), text
    assert L.x3 not in text
    assert "k2_transactions: 1 row with no 01 in the logs read" in text
    assert "k2_transactions: 1 notification answered 01" not in text
    # until the boundary: a2 is, the rows received at it are not
    rc, out, _ = k2audit("--until", L.boundary.isoformat(), "--db", db, *L.files)
    text = out.split(f"\ndatabase {db}: ", 1)[1]
    assert L.a2["k2_transaction_id"] in text
    assert L.x1 not in text and L.x2 not in text
    assert "k2_events: every 200 (recorded) has its row, every row its 200 " \
           "(recorded)" in text


def test_db_mismatch_alone_exits_1(logs, db, tmp_path):
    L = logs
    clean = tmp_path / "accepted.log"
    clean.write_text("\n".join(l for l in L.form_old
                               if l.endswith(" outcome=accepted")) + "\n")
    rc, out, _ = k2audit(str(clean))
    assert rc == 0
    rc, out, _ = k2audit("--db", db, str(clean))
    assert rc == 1
    assert "\nto reconcile: nothing\n" in out
    assert "  k2_transactions: 1 notification answered 01 with no row\n" in out


def test_db_compares_a_table_only_when_its_format_was_read(logs, db):
    L = logs
    rc, out, _ = k2audit("--date", L.day, "--db", db, L.form_log, L.form_gz)
    assert "  k2_events: not compared (no K2 Connect line in the logs read)" in out
    assert L.x2 not in out and L.x1 in out
    # a table named that the database lacks: exit 2, no report
    rc, out, err = k2audit("--db", db, "--webhook-table", "nope", *L.files)
    assert (rc, out) == (2, "")
    assert err == f"k2audit: {db}: no table nope\n"
    rc, out, err = k2audit("--db", db, "--time-column", "nope", *L.files)
    assert (rc, out) == (2, "")
    assert err == f"k2audit: {db}: table k2_transactions has no column nope\n"


def test_db_is_opened_read_only_and_a_missing_one_is_not_created(logs, db, tmp_path):
    L = logs
    missing = tmp_path / "no.db"
    rc, out, err = k2audit("--db", str(missing), *L.files)
    assert (rc, out) == (2, "")
    assert err == f"k2audit: {missing}: unable to open database file\n"
    assert not missing.exists()
    before = sqlite3.connect(db).execute(
        "SELECT count(*) FROM k2_transactions").fetchone()
    with open(db, "rb") as f:
        content = f.read()
    k2audit("--db", db, *L.files)
    with open(db, "rb") as f:
        assert f.read() == content
    assert sqlite3.connect(db).execute(
        "SELECT count(*) FROM k2_transactions").fetchone() == before


@pytest.mark.skipif(os.geteuid() != 0, reason="runs k2audit as another user")
def test_db_a_wal_database_it_cannot_read_is_exit_2_with_the_reason(logs):
    """Read-only, SQLite reads a WAL database only with its -wal and -shm
    files, or where it may make them: a user who may read the database but
    not write its directory is told so (and nothing is made)."""
    L = logs
    d = os.path.join(L.server.dir, "ro")    # a directory the user can reach
    os.mkdir(d)
    copy = os.path.join(d, "k2.db")
    con = sqlite3.connect(L.server.db)
    con.execute(f"VACUUM INTO '{copy}'")
    con.close()
    con = sqlite3.connect(copy)
    assert con.execute("PRAGMA journal_mode = WAL").fetchone() == ("wal",)
    con.close()                         # the last connection: -wal, -shm gone
    os.chmod(d, 0o755)
    os.chmod(copy, 0o644)
    user = __import__("conftest").run_user()
    p = subprocess.run([K2AUDIT, "--db", str(copy), L.form_log], capture_output=True,
                       text=True, timeout=60, user=user.pw_uid, group=user.pw_gid)
    assert (p.returncode, p.stdout) == (2, "")
    assert p.stderr == (
        f"k2audit: {copy}: attempt to write a readonly database (a WAL database "
        "read-only needs its -wal and -shm files, which exist while httpd has "
        "it open, or a directory where they can be made: run k2audit as root "
        "or as the database's owner)\n")
    assert sorted(os.listdir(d)) == ["k2.db"]


def test_a_database_error_in_the_middle_of_the_report_prints_no_report(logs, tmp_path):
    """A table that fails only once the rows of the period are read (a view
    whose time column is computed from bad JSON): status 2, and nothing of
    the report already written reaches stdout."""
    L = logs
    view = tmp_path / "view.db"
    con = sqlite3.connect(view)
    con.executescript(
        "CREATE TABLE t (k2_transaction_id TEXT, at TEXT);"
        "INSERT INTO t VALUES ('x', 'not json');"
        "CREATE VIEW k2_transactions AS SELECT k2_transaction_id, "
        "json_extract(at, '$') AS received_at FROM t;")
    con.close()
    rc, out, err = k2audit("--db", str(view), L.form_gz)
    assert (rc, out) == (2, "")
    assert err == f"k2audit: {view}: k2_transactions: malformed JSON\n"


# -- the command --------------------------------------------------------------------------

def test_an_unreadable_log_or_broken_gz_is_exit_2_and_no_report(logs, tmp_path):
    L = logs
    rc, out, err = k2audit(L.form_log, str(tmp_path / "nope.log"))
    assert (rc, out) == (2, "")
    assert err == f"k2audit: {tmp_path / 'nope.log'}: No such file or directory\n"
    with open(L.form_gz, "rb") as f:
        data = f.read()
    cut = tmp_path / "cut.log.gz"
    cut.write_bytes(data[:len(data) // 2])
    rc, out, err = k2audit(L.form_log, str(cut))
    assert (rc, out) == (2, "")
    assert err.startswith(f"k2audit: {cut}: after line ")


def test_help_is_a_manual_and_usage_errors_exit_2(logs):
    rc, out, err = k2audit("--help")
    assert (rc, err) == (0, "")
    heads = [l for l in out.splitlines() if l and not l.startswith(" ")]
    assert heads == ["NAME", "SYNOPSIS", "DESCRIPTION", "OPTIONS", "EXIT STATUS",
                     "EXAMPLES"]
    for option in ("--date", "--from", "--until", "--db", "--table", "--id-column",
                   "--webhook-table", "--webhook-id-column", "--time-column",
                   "--examples"):
        assert re.search(rf"^    {option}\b", out, re.M), option
    for args, message in (
            ([], "no log file named"),
            (["--date", "2026-13-01", "x"], "--date '2026-13-01': expected YYYY-MM-DD"),
            (["--date", "2026-12-01", "--from", "2026-12-01", "x"],
             "--date or --from/--until, not both"),
            (["--from", "noon", "x"], "--from 'noon': expected "),
            (["--from", "2026-12-02", "--until", "2026-12-01", "x"],
             "--until must come after --from"),
            (["--bogus", "x"], "unknown option --bogus"),
            (["--db"], "--db needs a value")):
        rc, out, err = k2audit(*args)
        assert (rc, out) == (2, ""), args
        assert err.startswith(f"k2audit: {message}"), err
        assert "\nusage:\n    k2audit [--date" in err


def until_started(report):
    """A report, with the time its run started (where the database's rows
    compared end, for a period that is not over) left out."""
    return re.sub(r"^(database .*: rows received .*)\d\d:\d\d:\d\d(.*)$",
                  r"\1HH:MM:SS\2", report, flags=re.M)


def test_the_manual_s_cron_job_mails_the_report_only_when_there_is_something_to_do(
        logs, db, tmp_path):
    """docs/k2audit.md's /etc/cron.daily job, run as written but for its
    paths and its day, with a mail command that keeps what it is given."""
    L = logs
    with open(os.path.join(TOP, "docs", "k2audit.md")) as f:
        manual = f.read()
    part = manual.split("\n## Every day from cron\n", 1)[1]
    job = re.search(r"^```sh\n(.*?)^```$", part, re.M | re.S).group(1)
    assert "/var/log/apache2/k2notify.log*" in job
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    mail = bin_dir / "mail"
    mail.write_text('#!/bin/sh\necho "$@" > "$MAILED.args"\ncat > "$MAILED"\n')
    mail.chmod(0o755)
    day_before = (datetime.date.fromisoformat(L.day)
                  - datetime.timedelta(days=1)).isoformat()
    for day, mailed in ((L.day, True), (day_before, False)):
        script = tmp_path / f"job-{day}"
        script.write_text(job.replace("/usr/local/bin/k2audit", K2AUDIT)
                          .replace("/var/log/apache2", L.server.dir)
                          .replace("/var/lib/k2notify/k2.db", db)
                          .replace("$(date -d yesterday +%F)", day))
        out = tmp_path / f"mail-{day}"
        p = subprocess.run(["sh", str(script)], capture_output=True, text=True,
                           timeout=60, env=dict(os.environ, MAILED=str(out),
                           PATH=f"{bin_dir}:{os.environ['PATH']}"))
        assert (p.returncode, p.stderr) == (0, "")
        assert out.exists() == mailed
        if mailed:
            assert (tmp_path / f"mail-{day}.args").read_text() == (
                f"-s K2: to reconcile, {day} root\n")
            _, report, _ = k2audit("--date", day, "--db", db, *sorted(L.files))
            # the period of today's rows ends when each run started
            assert until_started(out.read_text()) == until_started(report)
