"""configtest sees a location as httpd will merge it (issue 15, items 3-5).

httpd merges every <Location> that covers a URL in the order written (the
main server's before a virtual host's), after the <Directory> sections of
the file the URL maps to, whichever comes first in the file.  A
configuration that would answer 500 to every notification must fail
configtest, with the directive, its file and line, and the location.
"""
import json
import os
import re

from conftest import AUTH, CONTRACT_LOCATION, MODS, MODULE, notification
from test_k2connect import SCHEMA, fixture, post as post_webhook, reply, sign

KEY = b"the-k2-connect-api-key"
WEBHOOK_RECORD = ('K2NotifyRecordQuery "INSERT INTO k2_events (event_id, topic, '
                  'amount, raw_body) VALUES (COALESCE(%s, %s), %s, %s, %s) ON '
                  'CONFLICT (event_id) DO NOTHING" /id /data/id /topic '
                  '/event/resource/amount raw_body')


def k2connect_server(make_httpd, name, body, **kw):
    with open(SCHEMA) as f:
        schema = f.read()
    s = make_httpd(name, body, extra_sql=schema, **kw)
    path = os.path.join(s.dir, "k2connect.key")
    with open(path, "wb") as f:
        f.write(KEY + b"\n")
    os.chmod(path, 0o600)
    return s


def refused(server, *patterns):
    rc, out = server.configtest()
    assert rc != 0, out
    for p in patterns:
        assert re.search(p, out), f"{p!r} not in:\n{out}"
    return out


def line_of(server, text):
    with open(server.conf) as f:
        for n, line in enumerate(f, 1):
            if text in line:
                return n
    raise AssertionError(text)


SHOP_THEN_K2 = """
<Location /k2/shop>
    SetHandler k2notify
    K2NotifyAccountQuery "SELECT ac_no FROM accounts WHERE ac_no = %s"
</Location>
<Location /k2>
    K2NotifyFormat k2connect
    K2NotifySignatureKeyFile {dir}/k2connect.key
    """ + WEBHOOK_RECORD + """
</Location>
"""


def test_enclosing_location_written_after_the_inner_one_is_merged_by_configtest(make_httpd):
    """<Location /k2/shop> written before <Location /k2>: httpd merges /k2
    after /k2/shop, so /k2/shop is a k2connect location whose account query
    has no FIELD (every webhook would be 500)."""
    s = k2connect_server(make_httpd, "merge-order", SHOP_THEN_K2)
    line = line_of(s, "K2NotifyAccountQuery")
    refused(s, rf"K2NotifyAccountQuery \(line {line} of {re.escape(s.conf)}\): in "
               r"<Location /k2/shop> \(K2NotifyFormat k2connect\) it needs its FIELD")
    # written the other way round (as httpd merges both): the same refusal
    outer_first = k2connect_server(make_httpd, "merge-order-outer-first", """
<Location /k2>
    K2NotifyFormat k2connect
    K2NotifySignatureKeyFile {dir}/k2connect.key
    """ + WEBHOOK_RECORD + """
</Location>
<Location /k2/shop>
    SetHandler k2notify
    K2NotifyAccountQuery "SELECT ac_no FROM accounts WHERE ac_no = %s"
</Location>
""")
    refused(outer_first, r"K2NotifyAccountQuery \(line \d+ of .*\): in "
                         r"<Location /k2/shop> \(K2NotifyFormat k2connect\) it needs its FIELD")


def test_virtual_host_location_enclosing_a_main_server_location_is_merged(make_httpd):
    """The main server's <Location /k2/shop> comes before a virtual host's
    <Location /k2> in that host's list: merged the same way, and the
    refusal names the virtual host."""
    s = k2connect_server(make_httpd, "merge-vhost", """
<Location /k2/shop>
    SetHandler k2notify
    K2NotifyAccountQuery "SELECT ac_no FROM accounts WHERE ac_no = %s"
</Location>
<VirtualHost *:80>
    ServerName shop.example
    <Location /k2>
        K2NotifyFormat k2connect
        K2NotifySignatureKeyFile {dir}/k2connect.key
        """ + WEBHOOK_RECORD + """
    </Location>
</VirtualHost>
""")
    refused(s, r"K2NotifyAccountQuery \(line \d+ of .*\): in <Location /k2/shop> "
               r"\(K2NotifyFormat k2connect\) it needs its FIELD.*, in the virtual "
               rf"host shop.example \(line {line_of(s, '<VirtualHost')} of "
               rf"{re.escape(s.conf)}\)")


DIRECTORY_K2CONNECT = """
DocumentRoot "{dir}/htdocs"
<Directory "{dir}/htdocs/k2">
    K2NotifyFormat k2connect
    K2NotifySignatureKeyFile {dir}/k2connect.key
    """ + WEBHOOK_RECORD + """
</Directory>
"""


def test_directory_section_does_not_apply_to_a_k2notify_location_in_configtest_as_in_requests(make_httpd):
    """A <Location> with SetHandler k2notify serves no file: its requests
    skip the directory walk (k2n_map_to_storage), so a <Directory> of the
    path under DocumentRoot never applies to it, and configtest does not
    merge one into it either: here a form location, served as one."""
    s = k2connect_server(make_httpd, "merge-directory", DIRECTORY_K2CONNECT + """
<Location /k2/shop>
    SetHandler k2notify
""" + AUTH + """
    K2NotifyAccountQuery "SELECT ac_no FROM accounts WHERE ac_no = %s"
</Location>
""")
    os.makedirs(os.path.join(s.dir, "htdocs", "k2"))
    assert s.configtest() == (0, "Syntax OK\n")
    s.start()
    r = s.post(notification(ac_no="NOSUCH"), path="/k2/shop")
    assert (r.status_code, r.json()) == (
        200, {"status": "02", "description": "Account not Found"})


def test_location_that_needs_a_directory_section_to_work_is_refused_by_configtest(make_httpd):
    """The converse: a k2notify <Location> written as if the <Directory>
    gave it its format answered 500 to every webhook (the format is the
    form's at run time); configtest judges it as served: refused."""
    s = k2connect_server(make_httpd, "merge-directory-needed", DIRECTORY_K2CONNECT + """
<Location /k2/hook>
    SetHandler k2notify
    K2NotifyAccountQuery "SELECT ac_no FROM accounts WHERE ac_no = %s" /event/resource/reference
</Location>
""")
    os.makedirs(os.path.join(s.dir, "htdocs", "k2"))
    refused(s, r"K2NotifyAccountQuery \(line \d+ of .*\): '/event/resource/reference' "
               r"is a FIELD of K2 Connect webhooks, but <Location /k2/hook> "
               r"receives K2's form \(K2NotifyFormat form, the default\)")


def test_location_sharing_only_a_name_prefix_is_not_merged(make_httpd):
    """/k2 does not cover /k2form: httpd stops at the '/' boundary."""
    s = k2connect_server(make_httpd, "merge-boundary", """
<Location /k2form>
    SetHandler k2notify
    K2NotifyAccountQuery "SELECT ac_no FROM accounts WHERE ac_no = %s"
    K2NotifyRequireUser Off
</Location>
<Location /k2>
    K2NotifyFormat k2connect
    K2NotifySignatureKeyFile {dir}/k2connect.key
    """ + WEBHOOK_RECORD + """
</Location>
""")
    assert s.configtest()[0] == 0


# -- item 4: a format change and the duplicate query ----------------------------

FORM_AROUND_WEBHOOK = """
<Location /k2>
    SetHandler k2notify
    K2NotifyRequireUser Off
    K2NotifyAccountQuery "SELECT ac_no FROM accounts WHERE ac_no = %s"
    K2NotifyRecordQuery "INSERT INTO k2_transactions (k2_transaction_id, ac_no, amount, currency) VALUES (%s, %s, %s, %s) ON CONFLICT (k2_transaction_id) DO NOTHING" k2_transaction_id ac_no amount currency
    K2NotifyDuplicateQuery "SELECT ac_no, amount FROM k2_transactions WHERE k2_transaction_id = %s"
</Location>
<Location /k2/webhook>
    K2NotifyFormat k2connect
    K2NotifySignatureKeyFile {dir}/k2connect.key
    K2NotifyAccountQuery "SELECT ac_no FROM accounts WHERE ac_no = %s" /data/attributes/metadata/customer_id
    """ + WEBHOOK_RECORD + """
</Location>
"""


def test_k2connect_location_inside_a_form_location_refuses_the_forms_duplicate_query(make_httpd):
    """The form's K2NotifyDuplicateQuery (default FIELD, legal in both
    formats) would look every resent webhook up in k2_transactions by its
    event id: 500 on every resend.  configtest refuses it."""
    s = k2connect_server(make_httpd, "format-dup", FORM_AROUND_WEBHOOK)
    line = line_of(s, "K2NotifyDuplicateQuery")
    refused(s, rf"K2NotifyDuplicateQuery \(line {line} of {re.escape(s.conf)}\) "
               r"is written for K2NotifyFormat form, in a section around "
               r"<Location /k2/webhook>, which has K2NotifyFormat k2connect")


def test_k2connect_location_with_its_own_duplicate_query_inside_a_form_location_answers_resends(make_httpd):
    s = k2connect_server(make_httpd, "format-dup-own", FORM_AROUND_WEBHOOK.replace(
        "    " + WEBHOOK_RECORD, "    " + WEBHOOK_RECORD + "\n    K2NotifyDuplicateQuery "
        '"SELECT amount FROM k2_events WHERE event_id = %s"'))
    s.start()
    body = fixture("php/buygoodsreceived.json")
    doc = json.loads(body)
    r1 = post_webhook(s, body, sign(body, KEY))
    r2 = post_webhook(s, body, sign(body, KEY))
    assert (r1.status_code, r1.text) == (200, reply("account_not_found"))
    assert (r2.status_code, r2.text) == (200, reply("duplicate"))
    assert s.query("SELECT count(*) FROM k2_events WHERE event_id = ?",
                   doc["id"]) == [(1,)]
    # the form location around it records K2's form as before
    n = notification()
    r = s.post(n, path="/k2/pay", auth=None)
    assert (r.status_code, r.text) == (200, '{"status":"01","description":"Accepted"}')
    assert len(s.rows(n["k2_transaction_id"])) == 1


# -- item 5: no DBDriver -------------------------------------------------------------

def test_location_whose_server_has_no_dbdriver_fails_configtest(make_httpd):
    s = make_httpd("no-dbdriver", CONTRACT_LOCATION, dbdriver=False)
    line = line_of(s, "K2NotifyAccountQuery")
    refused(s, r"<Location /k2/notify> has 'SetHandler k2notify' and "
               rf"K2NotifyAccountQuery \(line {line} of {re.escape(s.conf)}\), but its "
               r"server, the main server, has no DBDriver")


def test_virtual_host_without_dbdriver_fails_configtest_naming_it(make_httpd):
    s = make_httpd("no-dbdriver-vhost", """
<VirtualHost *:80>
    ServerName billing.example
""" + CONTRACT_LOCATION + """
</VirtualHost>
""", dbdriver=False)
    refused(s, r"<Location /k2/notify> has 'SetHandler k2notify' and "
               r"K2NotifyAccountQuery \(line \d+ of .*\), but its server, the virtual "
               rf"host billing.example \(line {line_of(s, '<VirtualHost')} of "
               rf"{re.escape(s.conf)}\), has no DBDriver")
    # one that names its database is fine
    ok = make_httpd("dbdriver-vhost", """
<VirtualHost *:80>
    ServerName billing.example
    DBDriver sqlite3
    DBDParams "{db}"
""" + CONTRACT_LOCATION + """
</VirtualHost>
""", dbdriver=False)
    assert ok.configtest()[0] == 0, ok.configtest()[1]


def test_no_dbdriver_is_not_guessed_when_mod_dbd_is_loaded_after_the_module(make_httpd):
    """Loaded before mod_dbd, the module does not see mod_dbd's directives:
    it says nothing rather than refuse a configuration it cannot judge."""
    s = make_httpd("no-dbdriver-order", f"""
LoadModule k2notify_module {MODULE}
LoadModule dbd_module {MODS}/mod_dbd.so
DBDriver sqlite3
DBDParams "{{db}}"
""" + CONTRACT_LOCATION, dbd=False, k2module=False)
    rc, out = s.configtest()
    assert rc == 0, out
    bare = make_httpd("no-dbdriver-order-none", f"""
LoadModule k2notify_module {MODULE}
LoadModule dbd_module {MODS}/mod_dbd.so
""" + CONTRACT_LOCATION, dbd=False, k2module=False)
    rc, out = bare.configtest()
    assert rc == 0 and "DBDriver" not in out, out
