"""K2NotifySignatureKeyFile: K2's HMAC-SHA1 signature, through a real Apache.

A location may authenticate K2 with the signature alone, with Basic alone, or
with both.  With a key, a notification without a valid signature gets 401
(outcome bad_signature), records nothing, and leaves a warning in the error
log that holds neither the key nor any signature.  The key file is read at
startup by root (mode 0600): the httpd children never read it.
"""
import base64
import hashlib
import hmac
import os
import re
import shutil
import subprocess
import sys
import urllib.parse

import pytest

from conftest import (ACCOUNT, AUTH, HTTPD, MODULE, PASSWORD, SPEC_BODY, TOP,
                      USER, form, notification, run_user, wait_access,
                      wait_lines)

ACCEPTED = '{"status":"01","description":"Accepted"}'
UNAUTHORIZED = '{"description":"Unauthorized","reason":"missing or invalid signature"}'
K2SEND = os.path.join(TOP, "tools", "k2send")

# The key of the unit tests' spec vector, so that one request here is signed
# with a signature computed by OpenSSL's command line, not by Python:
#   printf '%s' 'ac_no=A123333&amount=1500&biller_number=888555&currency=KES&first_name=John&k2_account_id=12&k2_transaction_id=15&last_name=Doe&middle_name=K.&mm_system_id=M-PESA&mp_transaction_id=54445&sender=0723456789&transaction_date=26/4/11&transaction_time=1:03 PM&transaction_type=Paybill' \
#     | openssl dgst -sha1 -hmac 'k2-api-key-0123456789' -binary | base64
KEY = b"k2-api-key-0123456789"
SPEC_SIGNATURE = "Vg84d+pk9u4IntiwqW7ogndyAjM="

ACCOUNT_SQL = 'K2NotifyAccountQuery "SELECT ac_no FROM accounts WHERE ac_no = %s"'
RECORD_SQL = ('K2NotifyRecordQuery "INSERT INTO k2_transactions (k2_transaction_id, '
              'ac_no, amount, currency, remote_user) VALUES (%s, %s, %s, %s, %s) '
              'ON CONFLICT (k2_transaction_id) DO NOTHING" k2_transaction_id ac_no '
              'amount currency remote_user')

LOCATIONS = f"""
# The signature alone (no Basic; K2NotifyRequireUser On, the default).
<Location /k2/signed>
    SetHandler k2notify
    K2NotifySignatureKeyFile "{{dir}}/k2.key"
    {ACCOUNT_SQL}
    {RECORD_SQL}
</Location>
# Inherits the key (merge rule) while setting something else.
<Location /k2/signed/inner>
    K2NotifyMaxBody 4096
</Location>

# Basic and the signature: both must pass.  The path is relative to
# ServerRoot.
<Location /k2/both>
    SetHandler k2notify
{AUTH}
    K2NotifySignatureKeyFile k2.key
    {ACCOUNT_SQL}
    {RECORD_SQL}
</Location>

# Basic alone: a signature parameter is an unknown parameter, ignored.
<Location /k2/basic>
    SetHandler k2notify
{AUTH}
    {ACCOUNT_SQL}
    {RECORD_SQL}
</Location>
"""

DECISION = r"\[k2notify:(info|warn)\] .*notification k2_transaction_id="
WORLD_READABLE = ("K2NotifySignatureKeyFile: the key file {} is readable by every "
                  "user of this machine: chmod 0600 it (httpd reads it as root at "
                  "startup)")


def base_string(params, keep_signature=False):
    """K2's base string of (name, value) pairs: every pair but the signature,
    sorted by name then value (bytes), each once, name=value joined with '&'."""
    pairs = sorted({(n, v) for n, v in params if keep_signature or n != "signature"},
                   key=lambda p: (p[0].encode(), p[1].encode()))
    return "&".join(f"{n}={v}" for n, v in pairs)


def sign(params, key=KEY):
    """K2's signature: the base64 HMAC-SHA1 of the base string under key."""
    digest = hmac.new(key, base_string(params).encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


def signed(n, key=KEY):
    """The notification n (a dict) with its signature added."""
    return dict(n, signature=sign(n.items(), key))


def write_key(server, content=KEY + b"\n", mode=0o600, name="k2.key"):
    """The key file in the server's directory, owned by root when we are root
    (httpd reads it before it drops privileges)."""
    path = os.path.join(server.dir, name)
    with open(path, "wb") as f:
        f.write(content)
    os.chmod(path, mode)
    if os.geteuid() == 0:
        os.chown(path, 0, 0)
    return path


def signature_server(make_httpd, name="signature"):
    s = make_httpd(name, LOCATIONS)
    s.key_file = write_key(s)
    return s


def decision_lines(server, txid, offset):
    return server.wait_log(DECISION + re.escape(txid) + " ", offset)


def assert_refused_signature(server, r, n, path, detail, offset, user="-"):
    """401, the JSON body, nothing recorded, one warning (not info, not error)
    naming the payment, outcome bad_signature in the access log."""
    txid = n["k2_transaction_id"]
    assert (r.status_code, r.headers["Content-Type"], r.text) == (
        401, "application/json", UNAUTHORIZED)
    assert "WWW-Authenticate" not in r.headers
    assert server.rows(txid) == []
    lines = decision_lines(server, txid, offset)
    assert len(lines) == 1, lines
    assert re.search(r"\[k2notify:warn\] .* notification k2_transaction_id="
                     + re.escape(txid) + f" ac_no={ACCOUNT} amount="
                     + re.escape(n.get("amount", "-"))
                     + " outcome=bad_signature: " + re.escape(detail) + "$",
                     lines[0]), lines[0]
    e = wait_access(server, txid)
    assert len(e) == 1
    assert e[0] == ["401", txid, ACCOUNT, n.get("amount", "-"), "KES", "",
                    "bad_signature", user, f"POST {path} HTTP/1.1"]
    return lines[0]


def assert_no_secret_in_logs(server, *values):
    text = server.errors_text()
    for v in (KEY.decode(),) + values:
        assert v not in text, v
        assert urllib.parse.quote(v, safe="") not in text, v


def assert_recorded(server, txid, amount, path, user):
    """One row (remote_user: the Basic user, or NULL), outcome accepted."""
    rows = server.rows(txid)
    assert [(x["ac_no"], x["amount"], x["currency"], x["remote_user"])
            for x in rows] == [(ACCOUNT, amount, "KES", user)]
    e = wait_access(server, txid)
    assert len(e) == 1
    assert e[0] == ["200", txid, ACCOUNT, amount, "KES", "01", "accepted",
                    user or "-", f"POST {path} HTTP/1.1"]


def assert_accepted(server, r, n, path, user):
    assert (r.status_code, r.headers["Content-Type"], r.text) == (
        200, "application/json", ACCEPTED)
    assert_recorded(server, n["k2_transaction_id"], n["amount"], path, user)


# -- the signature alone --------------------------------------------------------

def test_spec_example_signed_by_openssl_is_accepted_without_basic_and_remote_user_is_null(make_httpd):
    s = signature_server(make_httpd)
    s.start()
    body = SPEC_BODY + "&signature=" + urllib.parse.quote(SPEC_SIGNATURE, safe="")
    r = s.post(body, path="/k2/signed", auth=None)
    assert_accepted(s, r, {"k2_transaction_id": "15", "amount": "1500"},
                    "/k2/signed", None)
    # A 0600 key file: no warning about it.
    assert "K2NotifySignatureKeyFile" not in s.errors_text()


def test_k2send_signs_like_k2_and_extra_unknown_parameters_are_signed_too(make_httpd):
    s = signature_server(make_httpd)
    s.start()
    txid = "K2SEND-1"
    # Values with '&', '=' and '+' are percent-encoded on the wire and signed
    # decoded; promo_code and note are unknown to the module but signed.
    p = subprocess.run([sys.executable, K2SEND, s.base + "/k2/signed",
                        "--key-file", s.key_file, f"k2_transaction_id={txid}",
                        "amount=250.50", "promo_code=A+B", "note=x&y=z 100%"],
                       capture_output=True, text=True, timeout=60)
    assert (p.returncode, p.stdout, p.stderr) == (0, "200 OK\n" + ACCEPTED + "\n", "")
    assert_recorded(s, txid, "250.50", "/k2/signed", None)

    # Without --key-file: 401, and k2send says so (exit status 1).
    off = s.log_offset()
    p = subprocess.run([sys.executable, K2SEND, s.base + "/k2/signed",
                        "k2_transaction_id=K2SEND-2"],
                       capture_output=True, text=True, timeout=60)
    assert (p.returncode, p.stdout) == (1, "401 Unauthorized\n" + UNAUTHORIZED + "\n")
    assert s.rows("K2SEND-2") == []
    assert len(s.wait_log(r"\[k2notify:warn\] .*K2SEND-2 .*outcome=bad_signature: "
                          r"no signature$", off)) == 1


def test_missing_signature_answers_401_records_nothing_and_warns_without_secrets(make_httpd):
    s = signature_server(make_httpd)
    s.start()
    for sent in ({}, {"signature": ""}):
        n = notification(**sent)
        off = s.log_offset()
        r = s.post(n, path="/k2/signed", auth=None)
        assert_refused_signature(s, r, n, "/k2/signed", "no signature", off)
    assert_no_secret_in_logs(s, sign(notification(k2_transaction_id="x").items()))


@pytest.mark.parametrize("how, detail", [
    ("one character changed", "the signature does not match"),
    ("right but its last character", "the signature does not match"),
    ("right but its padding", "the signature does not match"),
    ("another key", "the signature does not match"),
    ("the hex digest", "the signature has 40 characters, not 28"),
    ("base64 of the hex digest", "the signature has 56 characters, not 28"),
    ("signature inside its own base string", "the signature does not match"),
])
def test_wrong_signature_answers_401_and_the_log_holds_no_signature(make_httpd, how, detail):
    s = signature_server(make_httpd, "wrong-signature")
    s.start()
    n = notification()
    good = sign(n.items())
    hexdigest = hmac.new(KEY, base_string(n.items()).encode(), hashlib.sha1).hexdigest()
    bad = {
        "one character changed": ("A" if good[0] != "A" else "B") + good[1:],
        # 27 characters right: the comparison must not stop early (the
        # 28th is base64's '=' padding, so the digest's last one)
        "right but its last character": good[:26] + (
            "A" if good[26] != "A" else "B") + good[27:],
        # the 28th, base64's '=', is compared too
        "right but its padding": good[:27] + "A",
        "another key": sign(n.items(), b"k2-api-key-0123456788"),
        "the hex digest": hexdigest,
        "base64 of the hex digest": base64.b64encode(hexdigest.encode()).decode(),
        # a sender that left an empty signature in its own base string
        "signature inside its own base string": base64.b64encode(hmac.new(
            KEY, base_string(list(n.items()) + [("signature", "")],
                             keep_signature=True).encode(),
            hashlib.sha1).digest()).decode(),
    }[how]
    assert bad != good
    off = s.log_offset()
    r = s.post(dict(n, signature=bad), path="/k2/signed", auth=None)
    assert_refused_signature(s, r, n, "/k2/signed", detail, off)
    assert_no_secret_in_logs(s, good, bad)


def test_signature_of_other_parameters_is_401_tampered_amount_or_added_parameter(make_httpd):
    s = signature_server(make_httpd)
    s.start()
    n = notification()
    sig = sign(n.items())
    tampered = dict(n, amount="15000", signature=sig)
    off = s.log_offset()
    r = s.post(tampered, path="/k2/signed", auth=None)
    assert_refused_signature(s, r, tampered, "/k2/signed",
                             "the signature does not match", off)

    # A parameter added after signing, even one the module ignores.
    added = dict(notification(), promo="1")
    sig = sign([(k, v) for k, v in added.items() if k != "promo"])
    off = s.log_offset()
    r = s.post(dict(added, signature=sig), path="/k2/signed", auth=None)
    assert_refused_signature(s, r, added, "/k2/signed",
                             "the signature does not match", off)
    assert s.count() == 0


def test_query_string_and_body_are_signed_together(make_httpd):
    s = signature_server(make_httpd)
    s.start()
    n = notification()
    sig = sign(n.items())
    items = list(n.items())
    query = form(dict(items[:5] + [("signature", sig)]))
    body = form(dict(items[5:]))
    r = s.post(body, path="/k2/signed", query=query, auth=None)
    assert_accepted(s, r, n, "/k2/signed?" + query, None)

    # Two different signatures (query string and body): refused.
    n = notification()
    other = "signature=" + urllib.parse.quote(sign(n.items(), b"x"), safe="")
    off = s.log_offset()
    r = s.post(signed(n), path="/k2/signed", auth=None, query=other)
    assert_refused_signature(s, r, n, "/k2/signed?" + other,
                             "signature given twice with different values", off)
    assert_no_secret_in_logs(s, sign(n.items()), sign(n.items(), b"x"))


def test_malformed_input_is_400_before_the_signature_and_missing_fields_after(make_httpd):
    s = signature_server(make_httpd)
    s.start()
    # Broken percent-encoding, unsigned: 400 (decoding comes first).
    n = notification()
    r = s.post(form(n) + "&sender=%ZZ", path="/k2/signed", auth=None)
    assert (r.status_code, r.text) == (
        400, '{"description":"Bad Request","reason":"broken percent-encoding"}')
    assert wait_access(s, n["k2_transaction_id"])[0][6] == "bad_request"

    # A missing currency, unsigned: 401 (the signature comes before).
    n = notification(currency=None)
    off = s.log_offset()
    r = s.post(n, path="/k2/signed", auth=None)
    assert (r.status_code, r.text) == (401, UNAUTHORIZED)
    assert decision_lines(s, n["k2_transaction_id"], off)[0].endswith(
        "outcome=bad_signature: no signature")

    # A missing currency, signed: 400 naming it.
    n = notification(currency=None)
    r = s.post(signed(n), path="/k2/signed", auth=None)
    assert (r.status_code, r.text) == (
        400, '{"description":"Bad Request","reason":"required parameter '
             'missing or empty: currency"}')
    assert s.count() == 0


def test_nested_location_inherits_the_key(make_httpd):
    s = signature_server(make_httpd)
    s.start()
    n = notification()
    off = s.log_offset()
    r = s.post(n, path="/k2/signed/inner", auth=None)
    assert_refused_signature(s, r, n, "/k2/signed/inner", "no signature", off)
    n = notification()
    r = s.post(signed(n), path="/k2/signed/inner", auth=None)
    assert_accepted(s, r, n, "/k2/signed/inner", None)


# -- Basic and the signature ------------------------------------------------------

def test_basic_and_signature_both_valid_is_accepted_with_the_user_recorded(make_httpd):
    s = signature_server(make_httpd)
    s.start()
    n = notification()
    r = s.post(signed(n), path="/k2/both")
    assert_accepted(s, r, n, "/k2/both", USER)


def test_basic_ok_but_bad_signature_is_401_bad_signature(make_httpd):
    s = signature_server(make_httpd)
    s.start()
    for sent, detail in (({}, "no signature"),
                         ({"signature": "A" * 28}, "the signature does not match")):
        n = notification()
        off = s.log_offset()
        r = s.post(dict(n, **sent), path="/k2/both")
        assert_refused_signature(s, r, n, "/k2/both", detail, off, user=USER)


@pytest.mark.parametrize("auth", [None, (USER, "wrong")], ids=["no_basic", "wrong_password"])
def test_good_signature_without_good_basic_is_401_from_mod_auth_basic(make_httpd, auth):
    s = signature_server(make_httpd)
    s.expect_error(r"\[auth_basic:error\].*AH01617: user k2login: authentication failure")
    s.start()
    s.wait_log(r"resuming normal operations")     # startup lines are not ours
    n = notification()
    off = s.log_offset()
    r = s.post(signed(n), path="/k2/both", auth=auth)
    assert r.status_code == 401
    assert r.headers["WWW-Authenticate"] == 'Basic realm="K2 notifications"'
    assert r.headers["Content-Type"].startswith("text/html")     # Apache's page
    assert s.rows(n["k2_transaction_id"]) == []
    e = wait_access(s, "-")
    assert e and e[-1][:8] == ["401", "-", "-", "-", "-", "-", "-",
                               "-" if auth is None else USER]
    assert not [l for l in s.error_lines_since(off) if "[k2notify:" in l]


# -- Basic alone ----------------------------------------------------------------------

def test_basic_only_location_ignores_signatures(make_httpd):
    s = signature_server(make_httpd)
    s.start()
    for extra in ({}, {"signature": "A" * 28}, {"signature": "not even base64"}):
        n = notification()
        r = s.post(dict(n, **extra), path="/k2/basic")
        assert_accepted(s, r, n, "/k2/basic", USER)
    n = notification()
    r = s.post(signed(n), path="/k2/basic", auth=None)
    assert r.status_code == 401 and r.headers["Content-Type"].startswith("text/html")
    assert s.rows(n["k2_transaction_id"]) == []


# -- configuration ------------------------------------------------------------------

def location_with_key(path_text):
    return f"""
<Location /k2/notify>
    SetHandler k2notify
    K2NotifySignatureKeyFile {path_text}
    {ACCOUNT_SQL}
</Location>
"""


def assert_configtest_refuses(server, complaint):
    rc, out = server.configtest()
    assert rc != 0, out
    with open(server.conf) as f:
        line = next(i for i, l in enumerate(f, 1)
                    if l.strip().startswith("K2NotifySignatureKeyFile"))
    assert f"Syntax error on line {line} of {server.conf}:" in out, out
    assert re.search(r"^K2NotifySignatureKeyFile" + complaint + "$", out, re.M), out
    assert "Syntax OK" not in out


def test_missing_key_file_fails_configtest_naming_directive_path_and_os_error(make_httpd):
    s = make_httpd("key-missing", location_with_key('"{dir}/no-such.key"'))
    assert_configtest_refuses(s, re.escape(
        f": cannot read the key file {s.dir}/no-such.key: No such file or directory"))


@pytest.mark.parametrize("content", [b"", b"\n", b"\r\n\r\n"], ids=["empty", "lf", "crlf"])
def test_empty_key_file_fails_configtest(make_httpd, content):
    s = make_httpd("key-empty", location_with_key("k2.key"))
    write_key(s, content)
    assert_configtest_refuses(s, re.escape(f": the key file {s.dir}/k2.key is empty"))


def test_key_file_that_is_a_directory_or_too_large_fails_configtest(make_httpd):
    s = make_httpd("key-dir", location_with_key('"{dir}/db"'))
    assert_configtest_refuses(s, re.escape(
        f": the key file {s.dir}/db is not a regular file"))
    s = make_httpd("key-large", location_with_key("k2.key"))
    write_key(s, b"k" * 4097)
    assert_configtest_refuses(s, re.escape(
        f": the key file {s.dir}/k2.key is larger than 4096 bytes: it should "
        "hold the API key only"))
    write_key(s, b"k" * 4096)
    assert s.configtest() == (0, "Syntax OK\n")


def load_module_copy(server):
    """Load a copy of the module kept in the server's own directory (under
    /tmp, readable by every user) instead of the checkout's, for an httpd
    that runs as another user: a checkout only root can enter (a clone in
    /root or in a mode-0700 folder) is out of that user's reach."""
    copy = os.path.join(server.dir, "mod_k2notify.so")
    shutil.copy(MODULE, copy)
    os.chmod(copy, 0o644)
    with open(server.conf) as f:
        conf = f.read()
    line = f"LoadModule k2notify_module {MODULE}\n"
    assert conf.count(line) == 1, conf
    with open(server.conf, "w") as f:
        f.write(conf.replace(line, f"LoadModule k2notify_module {copy}\n"))


def test_unreadable_key_file_fails_configtest_with_the_os_error(make_httpd):
    s = make_httpd("key-unreadable", location_with_key("k2.key"))
    write_key(s, mode=0o000)
    if os.geteuid() == 0:
        # root reads any file: read the configuration as the httpd User,
        # who may not enter the checkout.
        load_module_copy(s)
        user = run_user()
        p = subprocess.run(["setpriv", f"--reuid={user.pw_uid}",
                            f"--regid={user.pw_gid}", "--clear-groups",
                            HTTPD, "-t", "-f", s.conf],
                           capture_output=True, text=True, env=s.httpd_env())
        rc, out = p.returncode, p.stdout + p.stderr
    else:
        rc, out = s.configtest()
    assert rc != 0, out
    assert re.search(r"^K2NotifySignatureKeyFile: cannot read the key file "
                     + re.escape(f"{s.dir}/k2.key") + ": Permission denied$",
                     out, re.M), out


@pytest.mark.parametrize("text", ["K2NotifySignatureKeyFile", 'K2NotifySignatureKeyFile ""'])
def test_key_directive_without_a_path_fails_configtest(make_httpd, text):
    s = make_httpd("key-arg", f"""
<Location /k2/notify>
    SetHandler k2notify
    {text}
    {ACCOUNT_SQL}
</Location>
""")
    assert_configtest_refuses(s, " takes one argument, file holding K2's API key: "
                              "every notification must then carry a valid signature")


def test_key_directive_at_server_level_is_not_allowed(make_httpd):
    s = make_httpd("key-server", "K2NotifySignatureKeyFile k2.key\n"
                   + location_with_key("k2.key"))
    write_key(s)
    assert_configtest_refuses(s, " not allowed here")


def test_world_readable_key_file_warns_once_at_configtest_and_at_startup(make_httpd):
    s = signature_server(make_httpd, "key-readable")
    os.chmod(s.key_file, 0o644)
    warning = WORLD_READABLE.format(s.key_file)
    # /k2/signed and /k2/both both name this file: one warning for each
    # directive (not one per configuration pass or per child).
    rc, out = s.configtest()
    assert rc == 0, out
    assert out.count(warning) == 2, out
    assert re.search(r"\[k2notify:warn\] .*" + re.escape(warning) + "$", out, re.M), out
    assert out.endswith("Syntax OK\n")

    s.start()
    # A warning, not a failure: it works.  (Once a notification is answered,
    # the configuration that serves has been read: the port accepts
    # connections before that.)
    n = notification()
    r = s.post(signed(n), path="/k2/signed", auth=None)
    assert_accepted(s, r, n, "/k2/signed", None)
    warnings = [l for l in s.errors_text().splitlines() if "K2NotifySignatureKeyFile" in l]
    assert len(warnings) == 2, warnings
    for line in warnings:
        assert re.search(r"\[k2notify:warn\] .*" + re.escape(warning) + "$", line), line


def test_key_file_is_read_by_root_at_startup_and_children_need_no_access(make_httpd):
    if os.geteuid() != 0:
        pytest.skip("httpd children run as another user only when started as root")
    s = signature_server(make_httpd)
    assert (os.stat(s.key_file).st_mode & 0o777, os.stat(s.key_file).st_uid) == (0o600, 0)
    s.start()
    n = notification()
    r = s.post(signed(n), path="/k2/signed", auth=None)
    assert_accepted(s, r, n, "/k2/signed", None)
    # The children, which answered, run as the unprivileged User: they could
    # not have opened the file.
    with open(os.path.join(s.dir, "httpd.pid")) as f:
        parent = f.read().strip()
    children = subprocess.run(["ps", "-o", "user=", "--ppid", parent],
                              capture_output=True, text=True).stdout.split()
    assert children and set(children) == {run_user().pw_name}


# -- the shipped sample -------------------------------------------------------------

SAMPLE = os.path.join(TOP, "conf-samples", "k2notify-signature.conf")
SAMPLE_AUTH_LINES = ["AuthType Basic", 'AuthName "K2 notifications"',
                     "AuthBasicProvider file",
                     "AuthUserFile /etc/apache2/k2.htpasswd", "Require valid-user"]


def k2send(*args):
    p = subprocess.run([sys.executable, K2SEND] + list(args), capture_output=True,
                       text=True, timeout=60)
    return p.returncode, p.stdout


@pytest.mark.parametrize("basic", [True, False], ids=["basic_and_signature",
                                                      "signature_alone"])
def test_shipped_signature_sample_works_as_is_and_without_its_basic_lines(make_httpd, basic):
    s = make_httpd("signature-sample", "Include {dir}/k2notify-signature.conf\n")
    with open(SAMPLE) as f:
        sample = f.read()
    for text in ["/var/lib/k2notify/k2.db", "/etc/apache2/k2.htpasswd",
                 "/etc/apache2/k2.key", "${APACHE_LOG_DIR}"] + SAMPLE_AUTH_LINES:
        assert text in sample, text
    if not basic:           # what the sample's comment says to do
        sample = "\n".join(l for l in sample.splitlines()
                           if l.strip() not in SAMPLE_AUTH_LINES) + "\n"
    key_file = write_key(s)
    sample = (sample.replace("/var/lib/k2notify/k2.db", s.db)
                    .replace("/etc/apache2/k2.htpasswd", s.htpasswd)
                    .replace("/etc/apache2/k2.key", key_file)
                    .replace("${APACHE_LOG_DIR}", s.dir))
    with open(os.path.join(s.dir, "k2notify-signature.conf"), "w") as f:
        f.write(sample)
    assert s.configtest() == (0, "Syntax OK\n")
    s.start()

    url = s.base + "/k2/notify"
    basic_args = ["--user", USER, "--password", PASSWORD] if basic else []
    assert k2send(url, *basic_args, "--key-file", key_file,
                  "k2_transaction_id=SAMPLE-1") == (0, "200 OK\n" + ACCEPTED + "\n")
    row = s.rows("SAMPLE-1")
    assert len(row) == 1 and row[0]["remote_user"] == (USER if basic else None)
    assert k2send(url, *basic_args, "k2_transaction_id=SAMPLE-2") == (
        1, "401 Unauthorized\n" + UNAUTHORIZED + "\n")
    assert s.rows("SAMPLE-2") == []
    audit = wait_lines(os.path.join(s.dir, "k2notify.log"), 2)
    assert [re.search(r"\" (\d+) \d+ id=(\S+) .* outcome=(\S+)$", l).groups()
            for l in audit] == [("200", "SAMPLE-1", "accepted"),
                                ("401", "SAMPLE-2", "bad_signature")]
