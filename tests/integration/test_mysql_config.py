"""MySQL / MariaDB traps that configtest refuses (issue 16): each one a
statement or DBDParams that MariaDB 10.11 and apr-util 1.6.3's mysql driver
accept and that would make the module answer 01 for a row that is not what
K2 sent, overwrite a payment, or log a resend as a new one.  No database
server is needed: configtest does not connect.  The refusal names the
directive, its file and line, and the location.
"""
import re

import pytest

from conftest import AUTH, MODS

ACCOUNT_SQL = "SELECT ac_no FROM accounts WHERE ac_no = %s"
COLUMNS = "k2_transaction_id, ac_no, amount, currency"
FIELDS = "k2_transaction_id ac_no amount currency"
GOOD_RECORD = (f"INSERT INTO k2_transactions ({COLUMNS}) VALUES (%s, %s, %s, %s) "
               "ON DUPLICATE KEY UPDATE k2_transaction_id = k2_transaction_id")
DUPLICATE = ('K2NotifyDuplicateQuery "SELECT ac_no, amount FROM k2_transactions '
             'WHERE k2_transaction_id = %s"')
PARAMS = "host=127.0.0.1 port=3306 user=k2notify pass=S3cret dbname=k2"


class Params:
    """What the harness needs of a database server to write DBDParams."""

    def __init__(self, dbd_params):
        self.dbd_params = dbd_params


def conf(record=GOOD_RECORD, duplicate=DUPLICATE, account=ACCOUNT_SQL):
    return f"""
<Location /k2/notify>
    SetHandler k2notify
{AUTH}
    K2NotifyAccountQuery "{account}"
    K2NotifyRecordQuery "{record}" {FIELDS}
    {duplicate}
</Location>
"""


def line_of(path, text):
    with open(path) as f:
        for n, line in enumerate(f, 1):
            if text in line:
                return n
    raise AssertionError(f"{text!r} not in {path}")


RECORD_TRAPS = [
    ("insert ignore",
     f"INSERT IGNORE INTO k2_transactions ({COLUMNS}) VALUES (%s, %s, %s, %s)",
     r"'IGNORE' in .*: IGNORE turns errors into warnings, even in strict mode"),
    ("an update clause that overwrites the amount",
     GOOD_RECORD.replace("k2_transaction_id = k2_transaction_id",
                         "amount = VALUES(amount)"),
     r"'ON DUPLICATE KEY UPDATE amount = VALUES\(amount\)' in .*: ON DUPLICATE "
     r"KEY UPDATE may only set a column to itself"),
    ("replace",
     f"REPLACE INTO k2_transactions ({COLUMNS}) VALUES (%s, %s, %s, %s)",
     r"'REPLACE' in .*: REPLACE deletes the stored row"),
    ("the sqlite and pgsql samples' on conflict",
     f"INSERT INTO k2_transactions ({COLUMNS}) VALUES (%s, %s, %s, %s) ON "
     "CONFLICT (k2_transaction_id) DO NOTHING",
     r"'ON CONFLICT' in .*: MySQL and MariaDB have no ON CONFLICT clause"),
    ("cast as decimal, copied from the pgsql sample's cast as numeric",
     GOOD_RECORD.replace("VALUES (%s, %s, %s,", "VALUES (%s, %s, CAST(%s AS DECIMAL),"),
     r"'CAST\(%s AS DECIMAL' in .*: a DECIMAL without 2 decimals rounds the "
     r"amount \(DECIMAL alone is DECIMAL\(10,0\): 1500\.50 stored as 1501\.00"),
]


@pytest.mark.parametrize("what, record, complaint", RECORD_TRAPS,
                         ids=[t[0] for t in RECORD_TRAPS])
def test_mysql_record_statement_traps_fail_configtest(make_httpd, what, record,
                                                      complaint):
    s = make_httpd("myconf", conf(record), mysql=Params(PARAMS))
    rc, out = s.configtest()
    line = line_of(s.conf, "K2NotifyRecordQuery")
    assert rc != 0 and "Syntax OK" not in out, out
    assert re.search(r"K2NotifyRecordQuery \(line " + str(line) + " of "
                     + re.escape(s.conf) + r"\), in <Location /k2/notify> on "
                     r"DBDriver mysql: " + complaint, out), out


def test_mysql_location_without_duplicate_query_fails_configtest(make_httpd):
    s = make_httpd("myconf-nodup", conf(duplicate=""), mysql=Params(PARAMS))
    rc, out = s.configtest()
    line = line_of(s.conf, "K2NotifyRecordQuery")
    assert rc != 0, out
    assert re.search(r"<Location /k2/notify> has K2NotifyRecordQuery \(line "
                     + str(line) + " of " + re.escape(s.conf) + r"\) but no "
                     r"K2NotifyDuplicateQuery, which DBDriver mysql needs: MySQL's "
                     r"ON DUPLICATE KEY UPDATE \(and IGNORE\) fires on any unique "
                     r"key of the table.*; add K2NotifyDuplicateQuery \"SELECT "
                     r"ac_no, amount FROM k2_transactions WHERE k2_transaction_id "
                     r"= %s\"", out), out


def test_a_placeholder_quoted_by_mysql_rules_fails_configtest(make_httpd):
    """PostgreSQL's and SQLite's lexer (the check of every driver) ends the
    string at \\' ; MySQL's reads on, and mod_dbd would bind nothing."""
    dup = ("K2NotifyDuplicateQuery \"SELECT ac_no, amount FROM k2_transactions "
           "WHERE k2_transaction_id = %s AND ac_no <> 'it\\'s %s'\" "
           "k2_transaction_id ac_no")
    s = make_httpd("myconf-quoted", conf(duplicate=dup), mysql=Params(PARAMS))
    rc, out = s.configtest()
    assert rc != 0, out
    assert re.search(r"K2NotifyDuplicateQuery \(line \d+ of .*\), in <Location "
                     r"/k2/notify> on DBDriver mysql: .*: by MySQL's rules \(a "
                     r"backslash escapes the next character", out), out


PARAMS_TRAPS = [
    ("password= instead of pass=",
     "host=127.0.0.1 user=k2notify password=S3cret dbname=k2",
     r"'password=': the mysql driver reads the password from pass="),
    ("flags=CLIENT_FOUND_ROWS",
     PARAMS + " flags=CLIENT_FOUND_ROWS",
     r"'flags=CLIENT_FOUND_ROWS': the mysql driver knows one flag, "
     r"CLIENT_FOUND_ROWS .* every resend would be logged accepted"),
    ("libpq's sslmode",
     PARAMS + " sslmode=require",
     r"'sslmode=': the mysql driver knows only host, user, pass, dbname, port, "
     r"sock, flags, fldsz, group and reconnect .*TLS and the character set are "
     r"set in an option-file group named by group="),
    ("a comma in the password",
     "host=127.0.0.1 user=k2notify pass=S3c,ret99 dbname=k2",
     r"a word of 5 characters after 'pass=': it is not key=value as the mysql "
     r"driver reads it: a value ends at a space, tab, ';', '\|' or ','"),
]


@pytest.mark.parametrize("what, params, complaint", PARAMS_TRAPS,
                         ids=[t[0] for t in PARAMS_TRAPS])
def test_mysql_dbdparams_traps_fail_configtest(make_httpd, what, params, complaint):
    s = make_httpd("myconf-params", conf(), mysql=Params(params))
    rc, out = s.configtest()
    line = line_of(s.conf, "DBDParams")
    assert rc != 0, out
    assert re.search(r"DBDParams \(line " + str(line) + " of " + re.escape(s.conf)
                     + r"\), used by <Location /k2/notify>: " + complaint, out), out
    assert "ret99" not in out           # no piece of a password is shown


def test_the_same_statements_on_sqlite_pass_configtest(make_httpd):
    """The checks are the mysql driver's: SQLite has its own rules."""
    record = (f"INSERT INTO k2_transactions ({COLUMNS}) VALUES (%s, %s, CAST(%s AS "
              "DECIMAL), %s) ON CONFLICT (k2_transaction_id) DO NOTHING")
    s = make_httpd("myconf-sqlite", conf(record, duplicate=""))
    assert s.configtest() == (0, "Syntax OK\n")


def test_with_mod_dbd_loaded_after_the_module_the_driver_is_unknown_to_configtest(
        make_httpd):
    """mod_dbd's directives reach the module only when its LoadModule comes
    after mod_dbd's (Debian's a2enmod order): otherwise nothing is refused
    here, and the handler refuses a 0-row result (test_mysql.py)."""
    s = make_httpd("myconf-unseen", conf(duplicate=""), dbd=False, dbd_extra=(
        f"LoadModule dbd_module {MODS}/mod_dbd.so\n"
        f'DBDriver mysql\nDBDParams "{PARAMS} password=x"\n'))
    assert s.configtest() == (0, "Syntax OK\n")
