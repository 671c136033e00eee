"""The "K2 notifications" section of server-status (issue 11, item 3).

With mod_status loaded, /server-status shows for each section that says
`SetHandler k2notify` the count of each outcome since Apache started and the
time of the last accepted notification; /server-status?auto gives the same
as `K2Notify...: N` lines.  The counters live in shared memory: every child
of every MPM counts in them, and a graceful restart keeps them.

The reference for every counter is the access log, whose LogFormat has the
outcome (`%{K2_OUTCOME}e`): after concurrent load, each counter equals the
number of lines of its location with that outcome.
"""
import collections
import html
import os
import re
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from conftest import (ACCOUNT, AUTH, FAILING_SQL, HTTPD, MODULES, PASSWORD,
                      USER, form, notification)
from test_signature import signed, write_key

ACCEPTED = '{"status":"01","description":"Accepted"}'
INVALID = '{"status":"03","description":"Invalid Payment"}'
OUTCOMES = ["accepted", "duplicate", "account_not_found", "invalid_payment",
            "bad_request", "bad_signature", "conflict", "error", "ignored"]
# The ?auto key of each outcome: account_not_found -> AccountNotFound.
KEYS = {o: "".join(w.capitalize() for w in o.split("_")) for o in OUTCOMES}

STATUS_MODULES = MODULES + ["status", "authz_host"]
STATUS_LOCATION = """
<Location /server-status>
    SetHandler server-status
    Require local
</Location>
"""

ACCOUNT_SQL = 'K2NotifyAccountQuery "SELECT ac_no FROM accounts WHERE ac_no = %s"'
RECORD_SQL = ('K2NotifyRecordQuery "INSERT INTO k2_transactions (k2_transaction_id, '
              'ac_no, amount, currency) VALUES (%s, %s, %s, %s) ON CONFLICT '
              '(k2_transaction_id) DO NOTHING" k2_transaction_id ac_no amount currency')
DUPLICATE_SQL = ('K2NotifyDuplicateQuery "SELECT ac_no, amount FROM k2_transactions '
                 'WHERE k2_transaction_id = %s"')


def location(path, extra=""):
    """A complete notification location with Basic credentials."""
    return f"""
<Location {path}>
    SetHandler k2notify
{AUTH}
    {ACCOUNT_SQL}
    {RECORD_SQL}
    {DUPLICATE_SQL}
{extra}
</Location>
"""


# Every outcome the handler can decide, in three locations.
LOAD_LOCATIONS = STATUS_LOCATION + location("/k2/notify") + f"""
# The signature alone: a notification without a valid one is bad_signature.
<Location /k2/signed>
    SetHandler k2notify
    K2NotifySignatureKeyFile "{{dir}}/k2.key"
    {ACCOUNT_SQL}
    {RECORD_SQL}
</Location>

# A record statement that fails at run time: 500, outcome error.
<Location /k2/failing>
    SetHandler k2notify
{AUTH}
    {ACCOUNT_SQL}
    K2NotifyRecordQuery "INSERT INTO k2_refused (k2_transaction_id, ac_no) VALUES (%s, %s)" k2_transaction_id ac_no
</Location>
"""

# Several children, so that the counts of one location come from several
# processes (prefork) or several processes of threads (event).
MPMS = {
    "prefork": """
StartServers 4
MinSpareServers 4
MaxSpareServers 4
ServerLimit 4
MaxRequestWorkers 4
""",
    "event": """
StartServers 3
ServerLimit 3
ThreadsPerChild 8
MaxRequestWorkers 24
MinSpareThreads 8
MaxSpareThreads 24
""",
}


def status_server(make_httpd, name, body, mpm="event", **kw):
    s = make_httpd(name, MPMS[mpm] + body, mpm=mpm, modules=STATUS_MODULES, **kw)
    return s


def status_auto(server):
    """/server-status?auto as a dict (the first ': ' splits key and value)."""
    r = requests.get(server.base + "/server-status?auto", timeout=10)
    assert r.status_code == 200, r.text
    out = {}
    for line in r.text.splitlines():
        key, sep, value = line.partition(": ")
        if sep:
            out[key] = value
    return out


def rows(auto):
    """The per-location rows of ?auto: {(location, server): {outcome: n,
    "last": t}}, and the row count."""
    out = {}
    i = 0
    while f"K2Notify[{i}]Location" in auto:
        row = {o: int(auto[f"K2Notify[{i}]{KEYS[o]}"]) for o in OUTCOMES}
        row["last"] = int(auto[f"K2Notify[{i}]LastAccepted"])
        out[(auto[f"K2Notify[{i}]Location"], auto[f"K2Notify[{i}]Server"])] = row
        i += 1
    assert f"K2Notify[{i}]Accepted" not in auto
    return out


def counts(auto, where, server="*"):
    """The outcome counts of one row, without the zeros."""
    row = rows(auto)[(where, server)]
    return {o: row[o] for o in OUTCOMES if row[o]}


def totals(auto):
    return {o: int(auto[f"K2Notify{KEYS[o]}"]) for o in OUTCOMES}


def logged(server):
    """{path: Counter(outcome)} from the access log (lines with an outcome)."""
    out = collections.defaultdict(collections.Counter)
    for line in server.access_lines():
        status, rest = line.split(" ", 1)
        parts = rest.split("|")
        outcome, request = parts[5], parts[7]
        if outcome in ("", "-"):
            continue
        out[request.split(" ")[1].split("?")[0]][outcome] += 1
    return out


def wait_logged(server, n, timeout=20):
    """Access-log lines are written after the reply: wait for n of them with
    an outcome."""
    deadline = time.time() + timeout
    while True:
        got = sum(sum(c.values()) for c in logged(server).values())
        if got >= n or time.time() > deadline:
            return got
        time.sleep(0.05)


def post(server, path, fields, auth=(USER, PASSWORD)):
    r = requests.post(server.base + path, data=form(fields), auth=auth, timeout=60,
                      headers={"Content-Type": "application/x-www-form-urlencoded",
                               "Connection": "close"})
    return r.status_code, r.text


def post_all(server, jobs, workers=16):
    """POST every (path, fields, auth) at once from a pool of threads."""
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(lambda j: post(server, *j), jobs))


def accepted(server, path, n):
    """n new notifications to path, one after the other; their ids."""
    ids = []
    for _ in range(n):
        f = notification()
        assert post(server, path, f)[0] == 200
        ids.append(f["k2_transaction_id"])
    return ids


def graceful(server, action="graceful"):
    """apache2 -k graceful (or restart), then wait until the new generation
    answers server-status."""
    gen = int(status_auto(server)["ParentServerConfigGeneration"])
    subprocess.run([HTTPD, "-f", server.conf, "-k", action], check=True,
                   capture_output=True, env=server.httpd_env())
    deadline = time.time() + 10
    while time.time() < deadline:
        try:
            auto = status_auto(server)
            if int(auto["ParentServerConfigGeneration"]) > gen:
                return auto
        except (requests.ConnectionError, AssertionError):
            pass
        time.sleep(0.1)
    raise AssertionError(f"no new generation after -k {action}")


def rewrite(server, old, new):
    """Replace old by new in the configuration file ({htpasswd} in them is
    the server's)."""
    old = old.replace("{htpasswd}", server.htpasswd)
    new = new.replace("{htpasswd}", server.htpasswd)
    with open(server.conf) as f:
        text = f.read()
    assert old in text
    with open(server.conf, "w") as f:
        f.write(text.replace(old, new))


# -- every counter equals the access log, under load, per MPM -----------------

def mixed_load(server):
    """A few hundred notifications of every outcome, concurrently, in two
    waves (the resends and conflicts of the second wave need the first wave
    recorded).  Returns the number of requests that reach the handler."""
    first = [notification(amount=f"{i + 1}.00") for i in range(120)]
    jobs = [("/k2/notify", f, (USER, PASSWORD)) for f in first]
    # Credentials missing: mod_auth_basic answers 401, the module never runs.
    jobs += [("/k2/notify", notification(), None) for _ in range(10)]
    replies = post_all(server, jobs)
    assert collections.Counter(s for s, _ in replies) == {200: 120, 401: 10}

    auth = (USER, PASSWORD)
    jobs = [("/k2/notify", f, auth) for f in first[:60]]                    # duplicate
    jobs += [("/k2/notify", dict(f, amount="9.99"), auth) for f in first[60:90]]  # conflict
    jobs += [("/k2/notify", notification(), auth) for _ in range(40)]       # accepted
    jobs += [("/k2/notify", notification(ac_no="B999"), auth) for _ in range(25)]   # 02
    jobs += [("/k2/notify", notification(amount="1.234"), auth) for _ in range(25)]  # 03
    jobs += [("/k2/notify", notification(currency=None), auth) for _ in range(25)]   # 400
    jobs += [("/k2/signed", notification(), None) for _ in range(20)]       # no signature
    jobs += [("/k2/signed", dict(signed(notification()), amount="1"), None)
             for _ in range(10)]                                            # tampered
    jobs += [("/k2/signed", signed(notification()), None) for _ in range(15)]  # accepted
    jobs += [("/k2/failing", notification(), auth) for _ in range(20)]      # error
    replies = post_all(server, jobs)
    assert collections.Counter(s for s, _ in replies) == {
        200: 60 + 30 + 40 + 25 + 25 + 15, 400: 25, 401: 30, 500: 20}
    return 120 + len(jobs)


@pytest.mark.parametrize("mpm", ["prefork", "event"])
def test_each_counter_equals_the_access_log_after_concurrent_load(make_httpd, mpm):
    s = status_server(make_httpd, f"status-{mpm}", LOAD_LOCATIONS, mpm=mpm,
                      extra_sql=FAILING_SQL)
    write_key(s)
    s.expect_error(r"outcome=conflict: this transaction id is already recorded")
    s.expect_error(r"outcome=error: K2NotifyRecordQuery failed .*k2_refused "
                   r"accepts nothing")
    # 16 clients on a small server: every child busy, as intended (httpd
    # says so: prefork, event).
    s.expect_error(r"AH00161: server reached MaxRequestWorkers setting")
    s.expect_error(r"AH00484: server reached MaxRequestWorkers setting")
    s.expect_error(r"AH10159: server is within MinSpareThreads of MaxRequestWorkers")
    s.start()
    n = mixed_load(s)
    assert wait_logged(s, n) == n
    log = logged(s)
    auto = status_auto(s)

    # Several processes counted (each child has its own decision lines).
    pids = {re.search(r"\[pid (\d+)", l).group(1)
            for l in s.errors_text().splitlines() if "outcome=" in l}
    assert len(pids) > 1, pids

    assert set(rows(auto)) == {("/k2/notify", "*"), ("/k2/signed", "*"),
                               ("/k2/failing", "*")}
    for path in ("/k2/notify", "/k2/signed", "/k2/failing"):
        assert counts(auto, path) == dict(log[path]), path
    # Every outcome of the load happened (the test proves something), and
    # the totals add the rows up.
    assert dict(log["/k2/notify"]) == {
        "accepted": 160, "duplicate": 60, "conflict": 30,
        "account_not_found": 25, "invalid_payment": 25, "bad_request": 25}
    assert dict(log["/k2/signed"]) == {"bad_signature": 30, "accepted": 15}
    assert dict(log["/k2/failing"]) == {"error": 20}
    total = collections.Counter()
    for c in log.values():
        total.update(c)
    assert totals(auto) == {o: total[o] for o in OUTCOMES}

    # The time of the last accepted notification: within this test's run.
    last = rows(auto)[("/k2/notify", "*")]["last"]
    assert time.time() - 120 < last <= time.time()
    assert rows(auto)[("/k2/failing", "*")]["last"] == 0
    assert int(auto["K2NotifyLastAccepted"]) == max(
        r["last"] for r in rows(auto).values())


def test_the_html_page_shows_the_section_with_the_same_numbers(make_httpd):
    s = status_server(make_httpd, "status-html", STATUS_LOCATION
                      + location("/k2/notify") + location("/k2/other")).start()
    accepted(s, "/k2/notify", 3)
    f = notification(ac_no="B999")
    post(s, "/k2/other", f)
    post(s, "/k2/other", notification(currency=None))
    auto = status_auto(s)
    page = requests.get(s.base + "/server-status", timeout=10).text

    assert "<h2>K2 notifications</h2>" in page
    section = page.split("<h2>K2 notifications</h2>", 1)[1].split("</table>", 1)[0]
    header = re.findall(r"<th>([^<]*)</th>", section.split("</tr>", 1)[0])
    assert header == ["Location", "Server"] + OUTCOMES + ["last accepted"]
    table = {}
    for tr in re.findall(r"<tr>(.*?)</tr>", section, re.S)[1:]:
        cells = [html.unescape(c) for c in re.findall(r"<t[dh]>([^<]*)</t[dh]>", tr)]
        table[cells[0]] = cells
    assert set(table) == {"/k2/notify", "/k2/other", "Total"}
    for where in ("/k2/notify", "/k2/other"):
        row = rows(auto)[(where, "*")]
        assert table[where][1] == "*"
        assert [int(c) for c in table[where][2:-1]] == [row[o] for o in OUTCOMES]
    assert [int(c) for c in table["Total"][2:-1]] == [
        totals(auto)[o] for o in OUTCOMES]
    assert counts(auto, "/k2/notify") == {"accepted": 3}
    assert counts(auto, "/k2/other") == {"account_not_found": 1, "bad_request": 1}
    # The time of the last accepted notification, as mod_status writes its own.
    assert re.match(r"\w+day, \d\d-\w\w\w-\d{4} \d\d:\d\d:\d\d ", table["/k2/notify"][-1])
    assert table["/k2/other"][-1] == "never"


def test_two_locations_are_counted_apart(make_httpd):
    s = status_server(make_httpd, "status-two", STATUS_LOCATION
                      + location("/k2/a") + location("/k2/b")).start()
    accepted(s, "/k2/a", 3)
    accepted(s, "/k2/b", 5)
    post(s, "/k2/b", notification(amount="0"))
    auto = status_auto(s)
    assert counts(auto, "/k2/a") == {"accepted": 3}
    assert counts(auto, "/k2/b") == {"accepted": 5, "invalid_payment": 1}
    assert list(rows(auto)) == [("/k2/a", "*"), ("/k2/b", "*")]
    assert totals(auto)["accepted"] == 8


def test_last_accepted_moves_on_an_accepted_notification_only_not_on_a_duplicate(make_httpd):
    """LastAccepted is the time of the last payment recorded now: a resend
    (01 duplicate), a conflict or an invalid payment leaves it where it
    was.  Its unit is the second: each post waits for the next one."""
    s = status_server(make_httpd, "status-last", STATUS_LOCATION
                      + location("/k2/notify")).start()
    s.expect_error(r"outcome=conflict: this transaction id is already recorded")

    def last():
        auto = status_auto(s)
        return rows(auto)[("/k2/notify", "*")]["last"], int(auto["K2NotifyLastAccepted"])

    def next_second(t):
        while int(time.time()) <= t:
            time.sleep(0.05)

    assert last() == (0, 0)
    paid = notification()
    assert post(s, "/k2/notify", paid) == (200, ACCEPTED)
    then, _ = last()
    assert then > 0 and last() == (then, then)
    next_second(then)
    assert post(s, "/k2/notify", paid) == (200, ACCEPTED)               # duplicate
    assert post(s, "/k2/notify", dict(paid, amount="1.00"))[1] == INVALID  # conflict
    assert post(s, "/k2/notify", notification(amount="0"))[1] == INVALID   # 03
    assert counts(status_auto(s), "/k2/notify") == {
        "accepted": 1, "duplicate": 1, "conflict": 1, "invalid_payment": 1}
    assert last() == (then, then)
    # and a payment accepted now moves it
    next_second(then)
    assert post(s, "/k2/notify", notification()) == (200, ACCEPTED)
    now, _ = last()
    assert now > then and last() == (now, now)


# Nested sections: a row per section that says SetHandler k2notify, and a
# notification counts in the row of the last such section that applies to
# its URL (the one whose SetHandler Apache obeys).
NESTED = STATUS_LOCATION + f"""
# The outer section configures, the inner one handles: the inner one's row.
<Location /k2/nested>
    {ACCOUNT_SQL}
    {RECORD_SQL}
</Location>
<Location /k2/nested/inner>
    SetHandler k2notify
{AUTH}
</Location>
""" + location("/k2/outer") + """
# Changes a setting only: counts in /k2/outer's row.
<Location /k2/outer/usd>
    K2NotifyCurrencies USD
</Location>
# Says SetHandler k2notify again: a row of its own (and inherits the rest).
<Location /k2/outer/own>
    SetHandler k2notify
</Location>
"""


def test_nested_location_counts_in_the_innermost_section_that_sets_the_handler(make_httpd):
    s = status_server(make_httpd, "status-nested", NESTED).start()
    accepted(s, "/k2/nested/inner", 1)
    accepted(s, "/k2/outer", 2)
    for _ in range(3):
        assert post(s, "/k2/outer/usd", notification(currency="USD"))[0] == 200
    post(s, "/k2/outer/usd", notification(currency="KES"))     # 03 there
    accepted(s, "/k2/outer/own", 4)
    auto = status_auto(s)
    assert list(rows(auto)) == [("/k2/nested/inner", "*"), ("/k2/outer", "*"),
                                ("/k2/outer/own", "*")]
    assert counts(auto, "/k2/nested/inner") == {"accepted": 1}
    assert counts(auto, "/k2/outer") == {"accepted": 5, "invalid_payment": 1}
    assert counts(auto, "/k2/outer/own") == {"accepted": 4}


VHOSTS = STATUS_LOCATION + location("/k2/notify") + """
<VirtualHost 127.0.0.1:K2PORT>
    ServerName main.test
</VirtualHost>
<VirtualHost 127.0.0.1:K2PORT>
    ServerName other.test
""" + location("/k2/notify") + location("/k2/vhost-only") + """
</VirtualHost>
"""


def test_a_virtual_host_location_is_a_row_named_after_its_host_and_port(make_httpd):
    s = status_server(make_httpd, "status-vhost", VHOSTS)
    rewrite(s, "K2PORT", str(s.port))
    s.start()

    def to(host, path, n):
        for _ in range(n):
            r = requests.post(s.base + path, data=form(notification()),
                              auth=(USER, PASSWORD), headers={"Host": host,
                              "Content-Type": "application/x-www-form-urlencoded"},
                              timeout=10)
            assert r.status_code == 200

    to("main.test", "/k2/notify", 2)
    to("other.test", "/k2/notify", 3)
    to("other.test", "/k2/vhost-only", 1)
    auto = status_auto(s)
    other = f"other.test:{s.port}"
    # The main server's section applies to every virtual host: one row, "*".
    assert list(rows(auto)) == [("/k2/notify", "*"), ("/k2/notify", other),
                                ("/k2/vhost-only", other)]
    assert counts(auto, "/k2/notify") == {"accepted": 2}
    assert counts(auto, "/k2/notify", other) == {"accepted": 3}
    assert counts(auto, "/k2/vhost-only", other) == {"accepted": 1}


# -- restarts --------------------------------------------------------------------

RELOAD = STATUS_LOCATION + location("/k2/a") + "#B\n" + location("/k2/b") + "#END\n"


def test_counters_survive_a_graceful_restart_then_keep_counting(make_httpd):
    s = status_server(make_httpd, "status-graceful", RELOAD).start()
    accepted(s, "/k2/a", 3)
    ids = accepted(s, "/k2/b", 2)
    post(s, "/k2/b", notification(ac_no="B999"))
    before = status_auto(s)

    after = graceful(s)
    assert rows(after) == rows(before)
    assert totals(after) == totals(before)

    accepted(s, "/k2/a", 2)
    post(s, "/k2/b", {**notification(), "k2_transaction_id": ids[0]})
    again = status_auto(s)
    assert counts(again, "/k2/a") == {"accepted": 5}
    assert counts(again, "/k2/b") == {"accepted": 2, "duplicate": 1,
                                      "account_not_found": 1}
    assert rows(again)[("/k2/b", "*")]["last"] == rows(before)[("/k2/b", "*")]["last"]

    # The graceful restart kept the counters in place: the parent logged it.
    assert s.wait_log(r"\[k2notify:info\] .*server-status: counting the K2 "
                      r"notifications of 2 locations \(kept across the "
                      r"graceful restart; 64 rows of shared memory\)")


def test_locations_added_and_removed_at_a_graceful_restart(make_httpd):
    s = status_server(make_httpd, "status-reload", RELOAD).start()
    accepted(s, "/k2/a", 1)
    accepted(s, "/k2/b", 2)

    # Added: a row from zero; the others keep their counts.
    rewrite(s, "#END\n", location("/k2/c"))
    auto = graceful(s)
    assert list(rows(auto)) == [("/k2/a", "*"), ("/k2/b", "*"), ("/k2/c", "*")]
    assert counts(auto, "/k2/c") == {}
    accepted(s, "/k2/c", 3)

    # Removed: no row (and not in the totals).
    rewrite(s, "#B\n" + location("/k2/b"), "#B\n")
    auto = graceful(s)
    assert list(rows(auto)) == [("/k2/a", "*"), ("/k2/c", "*")]
    assert totals(auto)["accepted"] == 4

    # Back: it finds its counts again (its row was kept for it).
    rewrite(s, "#B\n", "#B\n" + location("/k2/b"))
    auto = graceful(s)
    assert counts(auto, "/k2/a") == {"accepted": 1}
    assert counts(auto, "/k2/b") == {"accepted": 2}
    assert counts(auto, "/k2/c") == {"accepted": 3}


def test_a_full_restart_counts_from_zero_like_mod_status(make_httpd):
    s = status_server(make_httpd, "status-restart", RELOAD).start()
    accepted(s, "/k2/a", 2)
    before = status_auto(s)
    assert int(before["Total Accesses"]) > 0
    assert counts(before, "/k2/a") == {"accepted": 2}

    after = graceful(s, "restart")
    # mod_status's own counters start again too.
    assert int(after["Total Accesses"]) < int(before["Total Accesses"])
    assert totals(after) == {o: 0 for o in OUTCOMES}
    assert rows(after)[("/k2/a", "*")]["last"] == 0
    accepted(s, "/k2/b", 1)
    assert counts(status_auto(s), "/k2/b") == {"accepted": 1}
    assert s.wait_log(r"server-status: counting the K2 notifications of 2 "
                      r"locations \(from zero; 64 rows of shared memory\)")


# -- without mod_status, and SetHandler itself ------------------------------------

def test_without_mod_status_nothing_is_counted_nor_allocated(make_httpd):
    s = make_httpd("status-none", location("/k2/notify")).start()
    accepted(s, "/k2/notify", 1)
    assert "server-status" not in s.errors_text()
    assert requests.get(s.base + "/server-status", timeout=10).status_code == 404

    # With mod_status, the same configuration logs the counting at startup.
    t = status_server(make_httpd, "status-some", location("/k2/notify")).start()
    assert t.wait_log(r"\[k2notify:info\] .*server-status: counting the K2 "
                      r"notifications of 1 location \(from zero")


def test_sethandler_is_still_core_s_own_directive(make_httpd):
    # The module reads SetHandler too (to know which sections handle
    # notifications); core still checks it and gives its own message.
    s = make_httpd("status-sethandler", """
<Location /k2/notify>
    SetHandler k2notify extra
</Location>
""", modules=STATUS_MODULES)
    rc, out = s.configtest()
    assert rc != 0
    assert "SetHandler takes one argument, a handler name that overrides any " \
           "other configured handler" in out
