"""Configuration rules: every mistake fails `apache2 -t` naming the directive
(and Apache's "Syntax error on line N" points at that directive's line); the
shipped sample works; `%%` is a literal percent; nested locations inherit.
"""
import os
import re
import sqlite3

import pytest

from conftest import (ACCOUNT, AUTH, CONTRACT_LOCATION, SCHEMA, SPEC_BODY,
                      SPEC_ROW, TOP, form, notification, run_user, wait_access,
                      wait_lines)

ACCEPTED = '{"status":"01","description":"Accepted"}'
ACCOUNT_NOT_FOUND = '{"status":"02","description":"Account not Found"}'
INVALID_PAYMENT = '{"status":"03","description":"Invalid Payment"}'

SAMPLE = os.path.join(TOP, "conf-samples", "k2notify-sqlite.conf")

ACCOUNT_SQL = "SELECT ac_no FROM accounts WHERE ac_no = %s"
RECORD_SQL = ("INSERT INTO k2_transactions (k2_transaction_id, ac_no, amount, "
              "currency) VALUES (%s, %s, %s, %s) ON CONFLICT (k2_transaction_id) "
              "DO NOTHING")
RECORD_FIELDS = "k2_transaction_id ac_no amount currency"


def location(*directives, path="/k2/notify"):
    """A k2notify <Location> with authentication and the given directives."""
    return (f"<Location {path}>\n    SetHandler k2notify\n" + AUTH
            + "".join(f"    {d}\n" for d in directives) + "</Location>\n")


def directive_line(conf, directive):
    """1-based line number of the first line of conf starting with directive."""
    with open(conf) as f:
        for n, line in enumerate(f, 1):
            if line.strip().split(" ", 1)[0] == directive:
                return n
    raise AssertionError(f"{directive} not in {conf}")


def assert_configtest_refuses(server, directive, complaint):
    """configtest fails, on the directive's line, with a message that starts
    with the directive's name and matches complaint (a regex)."""
    rc, out = server.configtest()
    assert rc != 0, out
    line = directive_line(server.conf, directive)
    assert f"Syntax error on line {line} of {server.conf}:" in out, out
    assert re.search(r"^" + re.escape(directive) + r"\b.*" + complaint, out,
                     re.M), out
    assert "Syntax OK" not in out
    return out


# -- %s placeholders against FIELDs ------------------------------------------

def test_account_query_with_two_placeholders_and_one_field_fails_configtest(make_httpd):
    s = make_httpd("count-acc2", location(
        'K2NotifyAccountQuery "SELECT ac_no FROM accounts WHERE ac_no = %s '
        'AND name = %s" ac_no'))
    assert_configtest_refuses(
        s, "K2NotifyAccountQuery",
        r": the SQL has 2 %s placeholders but 1 field is bound to them$")


def test_account_query_without_placeholder_fails_configtest_as_ac_no_is_bound_by_default(make_httpd):
    s = make_httpd("count-acc0", location(
        'K2NotifyAccountQuery "SELECT ac_no FROM accounts"'))
    assert_configtest_refuses(
        s, "K2NotifyAccountQuery",
        r": the SQL has 0 %s placeholders but 1 field is bound to them$")


def test_record_query_with_two_placeholders_and_one_field_fails_configtest(make_httpd):
    s = make_httpd("count-rec2", location(
        f'K2NotifyAccountQuery "{ACCOUNT_SQL}"',
        'K2NotifyRecordQuery "INSERT INTO k2_transactions (k2_transaction_id, '
        'ac_no) VALUES (%s, %s)" k2_transaction_id'))
    assert_configtest_refuses(
        s, "K2NotifyRecordQuery",
        r": the SQL has 2 %s placeholders but 1 field is bound to them$")


def test_record_query_with_fewer_placeholders_than_fields_fails_configtest(make_httpd):
    s = make_httpd("count-rec0", location(
        f'K2NotifyAccountQuery "{ACCOUNT_SQL}"',
        'K2NotifyRecordQuery "DELETE FROM k2_transactions" ac_no'))
    assert_configtest_refuses(
        s, "K2NotifyRecordQuery",
        r": the SQL has 0 %s placeholders but 1 field is bound to them$")


# -- FIELD names ---------------------------------------------------------------

@pytest.mark.parametrize("directive,sql", [
    ("K2NotifyAccountQuery", ACCOUNT_SQL),
    ("K2NotifyRecordQuery", RECORD_SQL.replace("(%s, %s, %s, %s)", "(%s, 1, 1, 1)")),
])
def test_unknown_field_fails_configtest_naming_the_field(make_httpd, directive, sql):
    s = make_httpd("unknown-field", location(
        f'K2NotifyAccountQuery "{ACCOUNT_SQL}"' if directive != "K2NotifyAccountQuery"
        else "", f'{directive} "{sql}" acno'))
    out = assert_configtest_refuses(s, directive, r": unknown field 'acno'")
    # The message lists the real names, so the fix is in front of the reader.
    assert re.search(r"known fields: .*\bac_no\b.*\btransaction_timestamp\b"
                     r".*\bremote_user\b", out), out


# -- missing or bad arguments ----------------------------------------------------

@pytest.mark.parametrize("directive_text,directive,complaint", [
    ("K2NotifyAccountQuery", "K2NotifyAccountQuery",
     r": needs the SQL statement as its first argument"),
    ('K2NotifyAccountQuery ""', "K2NotifyAccountQuery",
     r": needs the SQL statement as its first argument"),
    ("K2NotifyRecordQuery", "K2NotifyRecordQuery",
     r": needs the SQL statement as its first argument"),
    (f'K2NotifyRecordQuery "{RECORD_SQL}"', "K2NotifyRecordQuery",
     r": name the FIELD bound to each %s placeholder"),
    ("K2NotifyCurrencies", "K2NotifyCurrencies",
     r" requires at least one argument"),
    ("K2NotifyBillerNumbers", "K2NotifyBillerNumbers",
     r" requires at least one argument"),
    ("K2NotifyRequireUser maybe", "K2NotifyRequireUser", r" must be On or Off"),
    ("K2NotifyRequireUser", "K2NotifyRequireUser", r" must be On or Off"),
    ("K2NotifyMaxBody", "K2NotifyMaxBody", r" takes one argument"),
], ids=["account-no-args", "account-empty-sql", "record-no-args",
        "record-no-field", "currencies-no-args", "billers-no-args",
        "require-user-maybe", "require-user-no-arg", "max-body-no-arg"])
def test_missing_or_bad_argument_fails_configtest_naming_the_directive(
        make_httpd, directive_text, directive, complaint):
    others = [] if directive == "K2NotifyAccountQuery" else [
        f'K2NotifyAccountQuery "{ACCOUNT_SQL}"']
    s = make_httpd("missing-arg", location(*others, directive_text))
    assert_configtest_refuses(s, directive, complaint)


@pytest.mark.parametrize("directive,sql", [
    ("K2NotifyAccountQuery", "SELECT ac_no FROM accounts WHERE ac_no = %d"),
    ("K2NotifyRecordQuery", "INSERT INTO k2_transactions (k2_transaction_id, "
                            "ac_no, amount, currency) VALUES (%s, %s, %d, 'KES')"),
])
def test_placeholder_other_than_percent_s_fails_configtest(make_httpd, directive, sql):
    fields = "" if directive == "K2NotifyAccountQuery" else " k2_transaction_id ac_no amount"
    others = [] if directive == "K2NotifyAccountQuery" else [
        f'K2NotifyAccountQuery "{ACCOUNT_SQL}"']
    s = make_httpd("percent-d", location(*others, f'{directive} "{sql}"{fields}'))
    assert_configtest_refuses(
        s, directive, r": only %s placeholders are supported, found '%d'")


# mod_dbd replaces a '%s' inside quotes too, by the text '?' (SQLite) or '$1'
# (PostgreSQL), which the database then reads as a literal: the statement
# would store "?" for every payment (and every later one would be a
# "duplicate"), or find no account ever.  Issue 9, defect 4.
QUOTED = [
    ("K2NotifyAccountQuery", "SELECT ac_no FROM accounts WHERE ac_no = '%s'", "",
     "a quoted string"),
    ("K2NotifyAccountQuery", 'SELECT ac_no FROM accounts WHERE ac_no = \\"%s\\"', "",
     "a double-quoted"),
    ("K2NotifyRecordQuery", "INSERT INTO k2_transactions (k2_transaction_id, ac_no, "
     "amount, currency) VALUES ('%s', '%s', '%s', '%s') ON CONFLICT "
     "(k2_transaction_id) DO NOTHING", " " + RECORD_FIELDS, "a quoted string"),
    ("K2NotifyRecordQuery", "INSERT INTO k2_transactions (k2_transaction_id, ac_no, "
     "amount, currency) VALUES (%s, %s, %s, 'KES') -- was %s", " " + RECORD_FIELDS,
     "an SQL comment"),
    ("K2NotifyDuplicateQuery", "SELECT ac_no, amount FROM k2_transactions WHERE "
     "k2_transaction_id = '%s'", "", "a quoted string"),
]


@pytest.mark.parametrize("directive,sql,fields,where", QUOTED)
def test_quoted_placeholder_fails_configtest_saying_how_to_write_it(
        make_httpd, directive, sql, fields, where):
    others = [] if directive == "K2NotifyAccountQuery" else [
        f'K2NotifyAccountQuery "{ACCOUNT_SQL}"']
    s = make_httpd("quoted", location(*others, f'{directive} "{sql}"{fields}'))
    out = assert_configtest_refuses(
        s, directive, r": the placeholder %s is inside " + re.escape(where))
    assert "write %s without quotes" in out


@pytest.mark.parametrize("sql", [
    RECORD_SQL + " RETURNING k2_transaction_id",
    "INSERT INTO k2_transactions (k2_transaction_id, ac_no, amount, currency) "
    "VALUES (%s, %s, %s, %s) returning *",
])
def test_record_statement_returning_rows_fails_configtest(make_httpd, sql):
    """A row-returning INSERT makes apr-util's sqlite3 driver report
    SQLITE_ROW ("not an error") after the row is committed (issue 9, defect
    3): the module counts affected rows, so RETURNING is refused."""
    s = make_httpd("returning", location(f'K2NotifyAccountQuery "{ACCOUNT_SQL}"',
                                         f'K2NotifyRecordQuery "{sql}" {RECORD_FIELDS}'))
    assert_configtest_refuses(s, "K2NotifyRecordQuery",
                              r": the record statement must not return rows "
                              r"\(found '(RETURNING|returning)'.*remove the "
                              r"RETURNING clause")


def test_quotes_and_returning_that_are_not_placeholders_or_clauses_pass_configtest(make_httpd):
    """Strings, names and comments that merely mention %%, ? or returning."""
    s = make_httpd("quoted-ok", location(
        "K2NotifyAccountQuery \"SELECT ac_no FROM accounts WHERE ac_no = %s "
        "AND coalesce(name, '') NOT LIKE '%%closed%%' -- returning customers\"",
        f'K2NotifyRecordQuery "{RECORD_SQL}" {RECORD_FIELDS}'))
    rc, out = s.configtest()
    assert rc == 0 and "Syntax OK" in out, out
    s.start()
    n = notification()
    assert s.post(n).text == ACCEPTED
    assert len(s.rows(n["k2_transaction_id"])) == 1


@pytest.mark.parametrize("value", ["0", "-1", "abc", "2000000", "1048577", "8k", "12.5"])
def test_max_body_outside_1_to_1048576_bytes_fails_configtest(make_httpd, value):
    s = make_httpd("max-body", location(f'K2NotifyAccountQuery "{ACCOUNT_SQL}"',
                                        f"K2NotifyMaxBody {value}"))
    assert_configtest_refuses(
        s, "K2NotifyMaxBody",
        ": '" + re.escape(value) + r"' is not a size in bytes from 1 to 1048576")


@pytest.mark.parametrize("value", ["1", "1048576"])
def test_max_body_bounds_are_accepted(make_httpd, value):
    s = make_httpd("max-body-ok", location(f'K2NotifyAccountQuery "{ACCOUNT_SQL}"',
                                           f"K2NotifyMaxBody {value}"))
    assert s.configtest() == (0, "Syntax OK\n")


# -- mod_dbd and context ----------------------------------------------------------

@pytest.mark.parametrize("directive_text,directive", [
    (f'K2NotifyAccountQuery "{ACCOUNT_SQL}"', "K2NotifyAccountQuery"),
    (f'K2NotifyRecordQuery "{RECORD_SQL}" {RECORD_FIELDS}', "K2NotifyRecordQuery"),
])
def test_query_without_mod_dbd_loaded_fails_configtest(make_httpd, directive_text,
                                                       directive):
    s = make_httpd("no-dbd", location(directive_text), dbd=False)
    with open(s.conf) as f:
        assert "dbd_module" not in f.read()
    assert_configtest_refuses(s, directive, r": mod_dbd is not loaded")


@pytest.mark.parametrize("directive_text", [
    f'K2NotifyAccountQuery "{ACCOUNT_SQL}"',
    f'K2NotifyRecordQuery "{RECORD_SQL}" {RECORD_FIELDS}',
    "K2NotifyCurrencies KES",
    "K2NotifyBillerNumbers 888555",
    "K2NotifyRequireUser Off",
    "K2NotifyMaxBody 4096",
])
def test_directive_at_server_level_is_not_allowed(make_httpd, directive_text):
    s = make_httpd("server-level", directive_text + "\n" + CONTRACT_LOCATION)
    directive = directive_text.split(" ", 1)[0]
    assert_configtest_refuses(s, directive, r" not allowed here$")


def test_contract_configuration_passes_configtest(make_httpd):
    s = make_httpd("valid", CONTRACT_LOCATION + location(
        f'K2NotifyAccountQuery "{ACCOUNT_SQL}" ac_no',
        f'K2NotifyRecordQuery "{RECORD_SQL}" {RECORD_FIELDS}',
        "K2NotifyCurrencies KES USD UGX",
        "K2NotifyBillerNumbers 888555 888556",
        "K2NotifyRequireUser On",
        "K2NotifyMaxBody 8192", path="/k2/other"))
    assert s.configtest() == (0, "Syntax OK\n")


# -- the shipped sample ---------------------------------------------------------------

def test_shipped_sqlite_sample_passes_configtest_and_records_all_17_fields_of_the_spec_example(make_httpd):
    s = make_httpd("sample", "Include {dir}/k2notify-sqlite.conf\n")
    with open(SAMPLE) as f:
        sample = f.read()
    for path in ("/var/lib/k2notify/k2.db", "/etc/apache2/k2.htpasswd",
                 "${APACHE_LOG_DIR}"):
        assert path in sample, path
    sample = (sample.replace("/var/lib/k2notify/k2.db", s.db)
                    .replace("/etc/apache2/k2.htpasswd", s.htpasswd)
                    .replace("${APACHE_LOG_DIR}", s.dir))
    with open(os.path.join(s.dir, "k2notify-sqlite.conf"), "w") as f:
        f.write(sample)
    # The sample is wrapped in <IfModule k2notify_module>: the harness's
    # LoadModule comes before the Include, else the sample silently vanishes.
    with open(s.conf) as f:
        conf = f.read()
    assert conf.index("LoadModule k2notify_module") < conf.index("Include ")

    assert s.configtest() == (0, "Syntax OK\n")
    s.start()
    r = s.post(SPEC_BODY)
    assert (r.status_code, r.headers["Content-Type"], r.text) == (
        200, "application/json", ACCEPTED)

    row = s.rows("15")
    assert len(row) == 1
    row = row[0]
    received_at = row.pop("received_at")
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", received_at)
    assert row == SPEC_ROW
    assert len(row) == 17 and None not in row.values()

    # The sample's audit-trail LogFormat writes its own log.
    audit = os.path.join(s.dir, "k2notify.log")
    assert wait_access(s, "15")[0][1:8] == [
        "15", ACCOUNT, "1500", "KES", "01", "accepted", "k2login"]
    lines = wait_lines(audit, 1)
    assert re.search(r' k2login .*"POST /k2/notify HTTP/1\.1" 200 \d+ id=15 '
                     r'ac=A123333 amount=1500 KES status=01 outcome=accepted$',
                     lines[0]), lines[0]

    # The same notification again: a duplicate, still 01, still one row.
    r = s.post(SPEC_BODY)
    assert (r.status_code, r.text) == (200, ACCEPTED)
    assert s.count() == 1


# -- %% in SQL -------------------------------------------------------------------------

def test_double_percent_in_sql_is_a_literal_percent_not_a_placeholder(make_httpd):
    s = make_httpd("percent", location(
        'K2NotifyAccountQuery "SELECT ac_no FROM accounts WHERE ac_no = %s '
        "AND ac_no LIKE 'A%%'\"",
        'K2NotifyRecordQuery "INSERT INTO k2_transactions (k2_transaction_id, '
        "ac_no, amount, currency, transaction_type) VALUES (%s, %s, %s, %s, "
        "'100%%') ON CONFLICT (k2_transaction_id) DO NOTHING\" " + RECORD_FIELDS),
        accounts=(ACCOUNT, "B777"))
    s.start()

    a = notification()
    r = s.post(a)
    assert (r.status_code, r.text) == (200, ACCEPTED)
    rows = s.rows(a["k2_transaction_id"])
    assert [(x["ac_no"], x["amount"], x["transaction_type"]) for x in rows] == [
        (ACCOUNT, "1500", "100%")]

    b = notification(ac_no="B777")
    r = s.post(b)
    assert (r.status_code, r.text) == (200, ACCOUNT_NOT_FOUND)
    assert s.rows(b["k2_transaction_id"]) == []
    assert s.query("SELECT ac_no FROM accounts WHERE ac_no = 'B777'") == [("B777",)]
    assert s.count() == 1
    assert wait_access(s, b["k2_transaction_id"])[0][5:7] == ["02", "account_not_found"]


# -- virtual hosts ---------------------------------------------------------------------

def test_statements_run_on_the_database_of_the_virtual_host_that_answers(make_httpd):
    """mod_dbd is per server: a virtual host with its own DBDParams runs both
    the main server's <Location> (inherited) and its own on its database."""
    s = make_httpd("vhosts", CONTRACT_LOCATION + """
<VirtualHost *>
    ServerName one.example
</VirtualHost>
<VirtualHost *>
    ServerName two.example
    DBDParams "{dir}/db/two.db"
""" + location(f'K2NotifyAccountQuery "{ACCOUNT_SQL}"',
               f'K2NotifyRecordQuery "{RECORD_SQL}" {RECORD_FIELDS}',
               path="/k2/two") + """
</VirtualHost>
""")
    two = os.path.join(s.db_dir, "two.db")
    con = sqlite3.connect(two)
    with open(SCHEMA) as f:
        con.executescript(f.read())
    con.execute("INSERT INTO accounts (ac_no) VALUES ('B2')")
    con.commit()
    con.close()
    user = run_user()
    if user:
        os.chown(two, user.pw_uid, user.pw_gid)
    s.start()

    sent = {}
    for host, path, ac, reply in [
            ("one.example", "/k2/notify", ACCOUNT, ACCEPTED),
            ("one.example", "/k2/notify", "B2", ACCOUNT_NOT_FOUND),
            ("two.example", "/k2/notify", "B2", ACCEPTED),
            ("two.example", "/k2/notify", ACCOUNT, ACCOUNT_NOT_FOUND),
            ("two.example", "/k2/two", "B2", ACCEPTED)]:
        n = notification(ac_no=ac)
        r = s.post(n, path=path, headers={"Host": host})
        assert (r.status_code, r.text) == (200, reply), (host, path, ac)
        sent[(host, path, ac)] = n["k2_transaction_id"]

    def recorded(db):
        con = sqlite3.connect(db)
        try:
            return sorted(con.execute("SELECT k2_transaction_id, ac_no FROM "
                                      "k2_transactions").fetchall())
        finally:
            con.close()

    assert recorded(s.db) == [(sent[("one.example", "/k2/notify", ACCOUNT)], ACCOUNT)]
    assert recorded(two) == sorted([
        (sent[("two.example", "/k2/notify", "B2")], "B2"),
        (sent[("two.example", "/k2/two", "B2")], "B2")])


# -- merge of nested locations -------------------------------------------------------

def test_nested_location_inherits_queries_and_currencies_of_the_outer_location(k2):
    kes = notification(currency="KES")
    r = k2.post(kes, path="/k2/nested/inner")
    assert (r.status_code, r.text) == (200, INVALID_PAYMENT)
    assert k2.rows(kes["k2_transaction_id"]) == []
    assert wait_access(k2, kes["k2_transaction_id"])[0][5:7] == [
        "03", "invalid_payment"]

    ugx = notification(currency="UGX", amount="2500.50")
    r = k2.post(ugx, path="/k2/nested/inner")
    assert (r.status_code, r.text) == (200, ACCEPTED)
    rows = k2.rows(ugx["k2_transaction_id"])
    assert [(x["ac_no"], x["amount"], x["currency"]) for x in rows] == [
        (ACCOUNT, "2500.50", "UGX")]
    assert wait_access(k2, ugx["k2_transaction_id"])[0][5:7] == ["01", "accepted"]

    unknown = notification(currency="UGX", ac_no="NOSUCH")
    r = k2.post(unknown, path="/k2/nested/inner")
    assert (r.status_code, r.text) == (200, ACCOUNT_NOT_FOUND)
    assert k2.rows(unknown["k2_transaction_id"]) == []


# Each field's merge rule, through an inner <Location> that sets some OTHER
# K2Notify directive: httpd only calls the merge when the inner section has a
# configuration of its own (an inner section that sets nothing reuses the
# outer one as it is, and proves nothing).  The key's merge is tested in
# test_signature.py (/k2/signed/inner).
MERGE_LOCATIONS = """
<Location /merge>
    SetHandler k2notify
""" + AUTH + f"""
    K2NotifyAccountQuery "{ACCOUNT_SQL}"
    K2NotifyRecordQuery "{RECORD_SQL}" {RECORD_FIELDS}
    K2NotifyDuplicateQuery "SELECT ac_no, amount FROM k2_transactions WHERE k2_transaction_id = %s"
    K2NotifyCurrencies UGX
    K2NotifyBillerNumbers 888555
    K2NotifyMaxBody 700
</Location>
<Location /merge/max-body-set>
    K2NotifyMaxBody 8000
</Location>
<Location /merge/currencies-set>
    K2NotifyCurrencies TZS
</Location>
<Location /open>
    SetHandler k2notify
    K2NotifyRequireUser Off
    K2NotifyAccountQuery "{ACCOUNT_SQL}"
    K2NotifyRecordQuery "{RECORD_SQL}" {RECORD_FIELDS}
</Location>
<Location /open/max-body-set>
    K2NotifyMaxBody 8000
</Location>
"""


@pytest.fixture(scope="module")
def merged():
    from conftest import Httpd, served
    yield from served(Httpd("merge", MERGE_LOCATIONS))


def post_to(server, n, path, **kw):
    return server.post(n, path=path, **kw)


def test_inner_location_inherits_queries_currencies_and_billers(merged):
    path = "/merge/max-body-set"
    ugx = notification(currency="UGX")
    assert post_to(merged, ugx, path).text == ACCEPTED              # account, record
    assert len(merged.rows(ugx["k2_transaction_id"])) == 1
    assert post_to(merged, notification(currency="KES"), path).text == INVALID_PAYMENT
    assert post_to(merged, notification(currency="UGX", biller_number=None),
                   path).text == INVALID_PAYMENT                    # billers
    assert post_to(merged, notification(currency="UGX", ac_no="NOSUCH"),
                   path).text == ACCOUNT_NOT_FOUND
    # the duplicate query: the same id with another amount is a conflict
    merged.expect_error(r"\[k2notify:error\] .*outcome=conflict: ")
    assert post_to(merged, dict(ugx, amount="1.00"), path).text == INVALID_PAYMENT
    assert [e[6] for e in wait_access(merged, ugx["k2_transaction_id"], n=2)] == [
        "accepted", "conflict"]


def test_inner_location_inherits_max_body_and_replaces_currencies(merged):
    path = "/merge/currencies-set"
    tzs = notification(currency="TZS")
    assert post_to(merged, tzs, path).text == ACCEPTED
    assert post_to(merged, notification(currency="UGX"), path).text == INVALID_PAYMENT
    big = form(notification(currency="TZS")) + "&pad="
    big += "x" * (701 - len(big))
    r = merged.post(big, path=path)
    assert r.status_code == 413 and "(700 bytes)" in r.text


def test_inner_location_inherits_require_user_off(merged):
    n = notification()
    r = post_to(merged, n, "/open/max-body-set", auth=None)
    assert (r.status_code, r.text) == (200, ACCEPTED)
    assert len(merged.rows(n["k2_transaction_id"])) == 1


# -- SQLite's conflict clauses that hide what the statement did -----------------

@pytest.mark.parametrize("insert,complaint", [
    ("INSERT OR IGNORE INTO", r"INSERT OR IGNORE skips a row that breaks any "
     r"constraint \(NOT NULL, CHECK, UNIQUE\) without an error, 0 rows changed, "
     r"which is what a resend gives: a notification recorded nowhere would be "
     r"answered 01 duplicate"),
    ("insert or replace into", r"OR REPLACE \(REPLACE INTO\) deletes the stored "
     r"row that a new one conflicts with: a resend with another amount would "
     r"overwrite a stored payment"),
    ("REPLACE INTO", r"OR REPLACE \(REPLACE INTO\) deletes the stored row")],
    ids=["or-ignore", "or-replace", "replace-into"])
def test_sqlite_record_statement_that_hides_a_refused_or_replaced_row_fails_configtest(
        make_httpd, insert, complaint):
    """INSERT OR IGNORE skips a row that breaks NOT NULL or CHECK with 0 rows
    changed, as a resend does: the notification would be 01 duplicate and
    recorded nowhere (an event without its id, a missing amount); OR
    REPLACE overwrites the stored payment."""
    s = make_httpd("insert-or", location(
        'K2NotifyAccountQuery "SELECT ac_no FROM accounts WHERE ac_no = %s"',
        f'K2NotifyRecordQuery "{insert} k2_transactions (k2_transaction_id, '
        'ac_no, amount, currency) VALUES (%s, %s, %s, %s)" ' + RECORD_FIELDS))
    rc, out = s.configtest()
    assert rc != 0 and "Syntax OK" not in out, out
    assert re.search(r"^K2NotifyRecordQuery \(line \d+ of " + re.escape(s.conf)
                     + r"\), in <Location /k2/notify> on DBDriver sqlite3: \""
                     + re.escape(insert) + r" .*\": " + complaint, out, re.M), out
