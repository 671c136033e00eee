"""A k2notify location serves no file (issue 17): like mod_proxy's, its
requests skip httpd's directory and file walks, which stat every directory
of DocumentRoot + URL and look for a .htaccess in each, to find nothing.

Each test sets up a file system under DocumentRoot that the walk could not
get past (a .htaccess that refuses everything, a directory the httpd user
cannot search, a <Directory> limit), shows that a static file there meets
it, and that a notification to a k2notify location does not.
"""
import os

from conftest import AUTH, CONTRACT_LOCATION, notification

ACCEPTED = '{"status":"01","description":"Accepted"}'
FILE = "reply.json"

# The contract location, and a static file under the same DocumentRoot
# (the directory the notification's URL maps to: htdocs/k2).
SITE = """
DocumentRoot "{dir}/htdocs"
<Directory "{dir}/htdocs">
    AllowOverride All
</Directory>
<Location /k2/reply.json>
""" + AUTH + """
</Location>
""" + CONTRACT_LOCATION


def site(make_httpd, name, body=SITE, **kw):
    s = make_httpd(name, body, **kw)
    k2 = os.path.join(s.dir, "htdocs", "k2")
    os.makedirs(k2)
    with open(os.path.join(k2, FILE), "w") as f:
        f.write(ACCEPTED)
    return s, k2


def recorded(s, n):
    return [r["k2_transaction_id"] for r in s.rows(n["k2_transaction_id"])]


def test_k2notify_location_never_reads_a_htaccess(make_httpd):
    """A broken .htaccess in each directory of the URL's path, which httpd
    would read (AllowOverride All) and refuse with 500: the static file
    beside the location gets that 500, the notification is accepted."""
    s, k2 = site(make_httpd, "nowalk-htaccess")
    for d in (os.path.dirname(k2), k2):
        with open(os.path.join(d, ".htaccess"), "w") as f:
            f.write("K2NoSuchDirective on\n")
    s.expect_error(r"\[core:alert\] .*/\.htaccess: Invalid command "
                   r"'K2NoSuchDirective'")
    s.start()
    assert s.post(None, path="/k2/" + FILE, method="GET").status_code == 500
    n = notification()
    r = s.post(n)
    assert (r.status_code, r.text) == (200, ACCEPTED)
    assert recorded(s, n) == [n["k2_transaction_id"]]


def test_k2notify_location_never_stats_its_path(make_httpd):
    """DocumentRoot's directory for the URL cannot be searched by the httpd
    user: the walk's stat would fail (403), the notification never makes
    it."""
    s, k2 = site(make_httpd, "nowalk-stat")
    s.start()
    os.chmod(k2, 0o000)
    try:
        assert s.post(None, path="/k2/" + FILE, method="GET").status_code == 403
        n = notification()
        r = s.post(n)
        assert (r.status_code, r.text) == (200, ACCEPTED)
        assert recorded(s, n) == [n["k2_transaction_id"]]
    finally:
        os.chmod(k2, 0o755)
    s.expect_error(r"\[core:crit\] .*AH00529: .*/htdocs/k2/\.htaccess "
                   r"pcfg_openfile: unable to check htaccess file")


def test_directory_sections_do_not_apply_to_a_k2notify_location(make_httpd):
    """<Directory> configures files: a limit set there (LimitRequestBody 10,
    which any notification exceeds) applies to the static file and not to
    the notification; the location's own settings do."""
    body = SITE.replace("    AllowOverride All\n",
                        "    AllowOverride None\n    LimitRequestBody 10\n")
    s, _ = site(make_httpd, "nowalk-directory", body)
    s.start()
    r = s.post("x" * 100, path="/k2/" + FILE,
               headers={"Content-Type": "text/plain"})
    assert r.status_code == 413
    n = notification()
    r = s.post(n)
    assert (r.status_code, r.text) == (200, ACCEPTED)
    assert recorded(s, n) == [n["k2_transaction_id"]]
