"""make test-system: the .deb in the system apache2, installed as the manual says
(docs/install.md; the README's first screen has the same lines).

Runs as root on a machine whose system apache2 it may reconfigure (CI's
throwaway machine). It refuses to start while the system apache2 runs or if
anything of a real installation is there (the package, /var/lib/k2notify,
/etc/apache2/k2.htpasswd, the site), and restores at the end everything it
changed: /etc/apache2 and /var/lib/apache2 as they were, the snakeoil pair,
the sizes of the logs in /var/log/apache2; /var/lib/k2notify is removed.

The install lines of docs/install.md run as they are written (without "sudo": this is
root), but for what a person does by hand:
- the password printed by "openssl rand" is typed twice into htpasswd;
- "editor" is the edit the manual asks for: ServerName (the certificate's
  name), the Redirect URL, and, for this run only, ports chosen free instead
  of 80 and 443 (ports.conf listens on them, on 127.0.0.1);
- "systemctl restart apache2" is "apache2ctl start" (no systemd in CI);
- the certificate is the manual's one for a test (make-ssl-cert's snakeoil).
"""
import os
import re
import shutil
import socket
import sqlite3
import subprocess
import tempfile
import time
import urllib.parse

import pytest

TOP = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
README = os.path.join(TOP, "README.md")
INSTALL = os.path.join(TOP, "docs", "install.md")
PACKAGE = "libapache2-mod-k2notify"
with open(os.path.join(TOP, "debian", "changelog")) as f:
    VERSION = re.match(PACKAGE + r" \(([^)]+)\) ", f.readline()).group(1)
ARCH = subprocess.run(["dpkg", "--print-architecture"], capture_output=True,
                      text=True, check=True).stdout.strip()
DEB = os.path.join(TOP, "build", f"{PACKAGE}_{VERSION}_{ARCH}.deb")

EXAMPLES = f"/usr/share/doc/{PACKAGE}/examples"
MODULE = "/usr/lib/apache2/modules/mod_k2notify.so"
LOAD = "/etc/apache2/mods-available/k2notify.load"
SITE = "/etc/apache2/sites-available/k2notify-ssl.conf"
HTPASSWD = "/etc/apache2/k2.htpasswd"
DATA = "/var/lib/k2notify"
DB = DATA + "/k2.db"
LOGS = "/var/log/apache2"
PIDFILE = "/var/run/apache2/apache2.pid"
SNAKEOIL = ("/etc/ssl/certs/ssl-cert-snakeoil.pem",
            "/etc/ssl/private/ssl-cert-snakeoil.key")
SSL_DIRS = ("/etc/ssl/certs", "/etc/ssl/private")

ACCEPTED = '{"status":"01","description":"Accepted"}'
LOADED = re.compile(r"^\[[^]]+\] \[k2notify:notice\] \[pid (\d+):tid \1\] "
                    + re.escape(f"mod_k2notify {VERSION} loaded") + "$")


# -- the manual ---------------------------------------------------------------

def doc_section(path, title):
    """The text of a section of a Markdown file, up to the next heading."""
    with open(path) as f:
        text = f.read()
    m = re.search(r"^#{2,} " + re.escape(title) + r"\n(.*?)(?=^#{2,} |\Z)", text,
                  re.M | re.S)
    assert m, f"{os.path.relpath(path, TOP)} has no section '{title}'"
    return m.group(1)


def sh_blocks(text):
    """The ```sh blocks of a section, as lists of command lines."""
    return [[l.strip() for l in block.splitlines()
             if l.strip() and not l.strip().startswith("#")]
            for block in re.findall(r"^```sh\n(.*?)^```$", text, re.M | re.S)]


def unsudo(line):
    return re.sub(r"(^|&& )sudo ", r"\1", line)


def spec_curl_data():
    """The spec's form, from the README's curl line (section "Try it")."""
    m = re.search(r'^\$ curl -d "([^"]+)" http://k2login:K2Password@127\.0\.0\.1:8080/k2/notify$',
                  doc_section(README, "Try it"), re.M)
    assert m, "no spec curl line in the README"
    return m.group(1)


# -- running things -------------------------------------------------------------

def run(cmd, check=True, **kw):
    """A shell command line; returns the CompletedProcess (stdout+stderr)."""
    p = subprocess.run(["bash", "-c", cmd], stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, text=True, timeout=600, **kw)
    if check:
        assert p.returncode == 0, f"{cmd}\n{p.stdout}"
    return p


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def apache_pid():
    """The system apache2's pid if it runs, else None."""
    try:
        with open(PIDFILE) as f:
            pid = int(f.read().strip())
        os.kill(pid, 0)
        return pid
    except (OSError, ValueError):
        return None


def package_status():
    p = subprocess.run(["dpkg-query", "-W", "-f=${Status}", PACKAGE],
                       capture_output=True, text=True)
    return p.stdout if p.returncode == 0 else "unknown"


def wait_until(what, timeout=20):
    deadline = time.time() + timeout
    while not what():
        assert time.time() < deadline, f"timed out waiting for {what.__doc__}"
        time.sleep(0.1)


def log_text(name, offset=0):
    try:
        with open(os.path.join(LOGS, name), errors="replace") as f:
            return f.read()[offset:]
    except FileNotFoundError:
        return ""


def apache2ctl_stop():
    if apache_pid():
        run("apache2ctl stop", check=False)

        def stopped():
            """apache2 to stop"""
            return apache_pid() is None
        wait_until(stopped)


# -- the installation -------------------------------------------------------------

class System:
    """What the fixture did, for the tests to check."""


@pytest.fixture(scope="module")
def system():
    assert os.geteuid() == 0, "make test-system runs as root"
    assert os.path.exists(DEB), f"{DEB} is missing: make deb"
    refuse = [what for what, present in (
        ("the system apache2 runs", apache_pid()),
        (f"{PACKAGE} is installed ({package_status()})",
         package_status() != "unknown" and "not-installed" not in package_status()),
        (f"{DATA} exists", os.path.exists(DATA)),
        (f"{HTPASSWD} exists", os.path.exists(HTPASSWD)),
        (f"{SITE} exists", os.path.exists(SITE))) if present]
    assert not refuse, ("make test-system reconfigures the system apache2; "
                        "here " + ", ".join(refuse))

    sy = System()
    sy.snapshot = tempfile.mkdtemp(prefix="k2notify-system-")
    run(f"tar -C / -cpf {sy.snapshot}/apache2.tar etc/apache2 var/lib/apache2")
    ssl_names = {d: set(os.listdir(d)) for d in SSL_DIRS}
    kept = [p for p in SNAKEOIL if os.path.exists(p)]
    if kept:
        run(f"tar -C / -cpf {sy.snapshot}/snakeoil.tar "
            + " ".join(p.lstrip("/") for p in kept))
    log_sizes = {n: os.path.getsize(os.path.join(LOGS, n)) for n in os.listdir(LOGS)}
    # apt-get as a person would answer it, and patient with a busy dpkg lock.
    with open(os.path.join(sy.snapshot, "apt.conf"), "w") as f:
        f.write('APT::Get::Assume-Yes "true";\nDPkg::Lock::Timeout "300";\n')
    env = dict(os.environ, APT_CONFIG=os.path.join(sy.snapshot, "apt.conf"),
               DEBIAN_FRONTEND="noninteractive")
    sy.env = env
    try:
        sy.http, sy.https = free_port(), free_port()
        with open("/etc/apache2/ports.conf", "w") as f:
            f.write("# tests/system/test_system.py: this run's ports (restored "
                    "at the end)\n"
                    f"Listen 127.0.0.1:{sy.http}\n<IfModule ssl_module>\n"
                    f"    Listen 127.0.0.1:{sy.https}\n</IfModule>\n")
        sy.start = time.time()
        install(sy)
        yield sy
    finally:
        apache2ctl_stop()
        if package_status() != "unknown":
            run(f"apt-get purge {PACKAGE}", check=False, env=env)
        run("rm -rf /etc/apache2 /var/lib/apache2 && "
            f"tar -C / -xpf {sy.snapshot}/apache2.tar")
        for d in SSL_DIRS:
            for name in set(os.listdir(d)) - ssl_names[d]:
                os.remove(os.path.join(d, name))
        if kept:
            run(f"tar -C / -xpf {sy.snapshot}/snakeoil.tar")
        shutil.rmtree(DATA, ignore_errors=True)
        for name in os.listdir(LOGS):
            path = os.path.join(LOGS, name)
            if name not in log_sizes:
                os.remove(path)
            elif os.path.getsize(path) > log_sizes[name]:
                os.truncate(path, log_sizes[name])
        shutil.rmtree(sy.snapshot, ignore_errors=True)


def install(sy):
    """The manual's install block, line by line."""
    blocks = sh_blocks(doc_section(INSTALL, "Install on a Debian server"))
    assert blocks[0][0].startswith("make deb ")      # done: make test-system: deb
    lines = blocks[1]
    assert lines[0] == f"sudo apt-get install ./build/{PACKAGE}_*.deb"
    # The certificate for a test, from "The certificate".
    cert_lines = [l for b in sh_blocks(doc_section(INSTALL, "The certificate"))
                  for l in b if "make-ssl-cert" in l]
    assert cert_lines == ["sudo make-ssl-cert generate-default-snakeoil --force-overwrite"]

    sy.password = None
    sy.error_offset = len(log_text("error.log"))
    handled = set()
    for line in lines:
        cmd = unsudo(line)
        if cmd.startswith("openssl rand "):
            sy.password = run(cmd).stdout.strip()
            handled.add("password")
        elif cmd.startswith("htpasswd "):
            # No terminal: htpasswd reads the password twice from stdin.
            p = subprocess.run(["bash", "-c", cmd], input=f"{sy.password}\n" * 2,
                               capture_output=True, text=True, timeout=60,
                               start_new_session=True)
            assert p.returncode == 0, p.stdout + p.stderr
            handled.add("htpasswd")
        elif cmd.startswith("editor "):
            assert cmd == f"editor {SITE}"
            run(unsudo(cert_lines[0]))
            edit_site(sy)
            handled.add("editor")
        elif cmd == "apache2ctl configtest && systemctl restart apache2":
            sy.configtest = run("apache2ctl configtest").stdout
            # "Put your customer accounts in the accounts table".
            run(f"runuser -u www-data -- sqlite3 {DB} "
                "\"INSERT INTO accounts (ac_no) VALUES ('A123333')\"")
            run("apache2ctl start")
            handled.add("start")
        else:
            run(cmd, env=sy.env)
            if cmd.startswith("apt-get install ./build/"):
                sy.after_install = {
                    "k2notify": run("a2query -m k2notify", check=False).stdout.strip(),
                    "dbd": run("a2query -m dbd", check=False).stdout.strip(),
                    "running": apache_pid(),
                    "status": package_status()}
    assert handled == {"password", "htpasswd", "editor", "start"}, handled

    def serving():
        """the system apache2 to serve"""
        return "resuming normal operations" in log_text("error.log", sy.error_offset)
    wait_until(serving)


def edit_site(sy):
    """ServerName, the Redirect URL, and this run's ports; the certificate
    paths stay the sample's (the snakeoil pair made above)."""
    san = run(f"openssl x509 -in {SNAKEOIL[0]} -noout -ext subjectAltName").stdout
    sy.name = re.search(r"DNS:([^,\s]+)", san).group(1)
    with open(SITE) as f:
        site = f.read()
    for old, new, count in (
            ("ServerName k2.example.com\n", f"ServerName {sy.name}\n", 2),
            ("Redirect permanent / https://k2.example.com/\n",
             f"Redirect permanent / https://{sy.name}:{sy.https}/\n", 1),
            ("<VirtualHost *:443>\n", f"<VirtualHost *:{sy.https}>\n", 1),
            ("<VirtualHost *:80>\n", f"<VirtualHost *:{sy.http}>\n", 1)):
        assert site.count(old) == count, (old, site)
        site = site.replace(old, new)
    for path in SNAKEOIL:
        assert site.count(f" {path}\n") == 1, path
    with open(SITE, "w") as f:
        f.write(site)


def curl(sy, *args):
    """curl against the system apache2, the certificate verified."""
    return run("curl -sS --max-time 30 "
               f"--cacert {SNAKEOIL[0]} --resolve {sy.name}:{sy.https}:127.0.0.1 "
               f"--resolve {sy.name}:{sy.http}:127.0.0.1 " + " ".join(args))


# -- the tests, in order ----------------------------------------------------------

def test_package_holds_the_module_the_load_file_and_every_sample():
    files = run(f"dpkg-deb -c {DEB}").stdout
    paths = {l.split()[-1].lstrip(".") for l in files.splitlines()}
    samples = {f"{EXAMPLES}/{n}" for n in os.listdir(os.path.join(TOP, "conf-samples"))
               if n.endswith((".conf", ".sql"))}
    fail2ban = {f"{EXAMPLES}/fail2ban/filter.d/k2notify.conf",
                f"{EXAMPLES}/fail2ban/jail.d/k2notify.conf"}
    assert {MODULE, LOAD} | samples | fail2ban <= paths, sorted(paths)
    assert f"{EXAMPLES}/schema-sqlite.sql" in samples
    assert f"{EXAMPLES}/schema-pgsql.sql" in samples
    assert f"{EXAMPLES}/schema-mysql.sql" in samples
    load = run(f"dpkg-deb --fsys-tarfile {DEB} | tar -xO .{LOAD}").stdout
    with open(os.path.join(TOP, "conf-samples", "k2notify.load")) as f:
        assert load == f.read()
    assert load.splitlines()[0] == "# Depends: dbd"
    depends = run(f"dpkg-deb -f {DEB} Depends").stdout.strip()
    assert re.search(r"(^|, )apache2-api-\d{8}(,|$)", depends), depends
    assert ("libaprutil1-dbd-sqlite3 | libaprutil1-dbd-pgsql | "
            "libaprutil1-dbd-mysql") in depends, depends


def test_package_installs_the_manual_beside_the_readme_as_in_the_tree():
    """README.md and every page of docs/, in the same layout (README's links
    docs/x.md, the pages' ../README.md), gzip'd where dh_compress chose to."""
    doc = f"/usr/share/doc/{PACKAGE}"
    files = run(f"dpkg-deb -c {DEB}").stdout
    paths = {l.split()[-1].lstrip(".") for l in files.splitlines()}
    pages = ["README.md"] + [f"docs/{n}" for n in sorted(os.listdir(os.path.join(TOP, "docs")))
                             if n.endswith(".md")]
    assert len(pages) > 5, pages
    missing = [p for p in pages if f"{doc}/{p}" not in paths and f"{doc}/{p}.gz" not in paths]
    assert not missing, sorted(paths)
    # The text installed is the tree's, byte for byte.
    for page in pages:
        name = f"{doc}/{page}.gz" if f"{doc}/{page}.gz" in paths else f"{doc}/{page}"
        cmd = f"dpkg-deb --fsys-tarfile {DEB} | tar -xO .{name}"
        text = run(cmd + (" | gunzip" if name.endswith(".gz") else "")).stdout
        with open(os.path.join(TOP, page)) as f:
            assert text == f.read(), page


def test_lintian_finds_no_error_and_only_the_warnings_the_manual_explains():
    out = run(f"lintian {DEB}", check=False)
    tags = re.findall(r"^([EW]): " + PACKAGE + r"(?: \S+)?: (\S+)", out.stdout, re.M)
    assert not [t for level, t in tags if level == "E"], out.stdout
    section = doc_section(INSTALL, "The package and lintian")
    explained = re.findall(r"^- `([a-z0-9-]+)`", section, re.M)
    assert sorted({t for level, t in tags if level == "W"}) == sorted(explained), out.stdout


def test_installing_the_package_enables_k2notify_and_dbd_without_starting_apache(system):
    assert system.after_install["status"] == "install ok installed"
    assert system.after_install["k2notify"] == "k2notify (enabled by maintainer script)"
    assert system.after_install["dbd"].startswith("dbd (enabled")
    assert system.after_install["running"] is None
    modules = run("apache2ctl -M").stdout
    assert " k2notify_module (shared)" in modules and " dbd_module (shared)" in modules


def test_apache2ctl_configtest_is_clean(system):
    # AH00558 is Debian's own, for a machine without a global ServerName.
    lines = [l for l in system.configtest.splitlines()
             if not l.startswith("AH00558: apache2: Could not reliably determine")]
    assert lines == ["Syntax OK"], system.configtest
    assert run("apache2ctl configtest").stdout == system.configtest


def test_spec_curl_line_over_tls_answers_01_and_records_the_full_row(system):
    data = spec_curl_data()
    url = f"https://{system.name}:{system.https}/k2/notify"
    assert curl(system, f"-u 'k2login:{system.password}'", f'-d "{data}"', url).stdout == ACCEPTED
    con = sqlite3.connect(f"file:{DB}?mode=ro", uri=True)
    con.row_factory = sqlite3.Row
    rows = [dict(r) for r in con.execute("SELECT * FROM k2_transactions")]
    con.close()
    assert len(rows) == 1, rows
    row = rows[0]
    assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$", row.pop("received_at"))
    expected = dict(urllib.parse.parse_qsl(data))
    expected.update(transaction_timestamp="2011-04-26T13:03:00", remote_user="k2login")
    assert row == expected
    # Sent again: 01, nothing recorded twice; both in the audit log.
    assert curl(system, f"-u 'k2login:{system.password}'", f'-d "{data}"', url).stdout == ACCEPTED
    audit = log_text("k2notify.log").splitlines()
    assert [re.search(r'"POST /k2/notify HTTP/1.1" (\d+) \d+ id=15 ac=A123333 '
                      r'amount=1500 KES status=(\S*) outcome=(\S+)$', l).groups()
            for l in audit] == [("200", "01", "accepted"), ("200", "01", "duplicate")]


def test_plain_http_virtual_host_refuses_k2_notify_with_403_and_no_challenge(system):
    data = spec_curl_data().replace("k2_transaction_id=15", "k2_transaction_id=16")
    for auth in (f"-u 'k2login:{system.password}'", ""):
        out = curl(system, "-D -", "-o /dev/null", auth, f'-d "{data}"',
                   f"http://{system.name}:{system.http}/k2/notify").stdout
        assert out.startswith("HTTP/1.1 403 "), out
        assert "www-authenticate" not in out.lower(), out
    out = curl(system, "-D -", "-o /dev/null",
               f"http://{system.name}:{system.http}/").stdout
    assert out.startswith("HTTP/1.1 301 ")
    assert f"\nLocation: https://{system.name}:{system.https}/\n" in out, out
    con = sqlite3.connect(f"file:{DB}?mode=ro", uri=True)
    assert con.execute("SELECT k2_transaction_id FROM k2_transactions").fetchall() == [("15",)]
    con.close()


def s_client(system, *options):
    return run(f"openssl s_client -connect 127.0.0.1:{system.https} "
               f"-servername {system.name} " + " ".join(options) + " </dev/null",
               check=False)


@pytest.mark.parametrize("old", ["-tls1", "-tls1_1"])
def test_tls_1_1_and_older_are_refused_by_the_server(system, old):
    # The client's own floor lowered (security level 0), so that it offers
    # the old protocol and the refusal can only be the server's: a
    # protocol_version alert (70) received from it.
    p = s_client(system, old, "-cipher DEFAULT@SECLEVEL=0")
    assert p.returncode != 0, p.stdout
    assert re.search(r"tlsv1 alert protocol version.*SSL alert number 70", p.stdout), p.stdout
    # The same client, allowed TLS 1.2: the handshake completes.
    p = s_client(system, "-tls1_2", "-cipher DEFAULT@SECLEVEL=0")
    assert p.returncode == 0 and "New, TLSv1.2, Cipher is " in p.stdout, p.stdout


def test_tls_1_3_is_accepted(system):
    p = s_client(system, "-tls1_3")
    assert p.returncode == 0 and "New, TLSv1.3, Cipher is " in p.stdout, p.stdout


def test_the_module_logs_its_version_once_per_start_and_graceful(system):
    lines = [l for l in log_text("error.log", system.error_offset).splitlines()
             if "mod_k2notify" in l]
    assert len(lines) == 1 and LOADED.match(lines[0]), lines
    assert LOADED.match(lines[0]).group(1) == str(apache_pid())
    offset = len(log_text("error.log"))
    run("apache2ctl graceful")

    def restarted():
        """the graceful restart"""
        return "resuming normal operations" in log_text("error.log", offset)
    wait_until(restarted)
    lines = [l for l in log_text("error.log", system.error_offset).splitlines()
             if "mod_k2notify" in l]
    assert len(lines) == 2 and all(LOADED.match(l) for l in lines), lines


def test_stop_and_the_manual_removal_leave_nothing_of_the_package(system):
    apache2ctl_stop()
    removal = sh_blocks(doc_section(INSTALL, "Removing it"))
    assert len(removal) == 1
    for line in removal[0]:
        cmd = unsudo(line)
        if cmd == "systemctl restart apache2":
            continue                    # apache2 stays stopped
        run(cmd, env=system.env)
    assert package_status() == "unknown"
    left = run("find /etc/apache2 /usr/lib/apache2/modules /var/lib/apache2 "
               f"/usr/share/doc -name '*k2notify*'").stdout
    assert left == ""
    assert run("a2query -m k2notify", check=False).returncode != 0
    # Apache works without it (the site is gone with the module).
    assert run("apache2ctl configtest").returncode == 0
    # What the manual says stays: the payments, and mod_dbd enabled.
    assert os.path.exists(DB)
    assert run("a2query -m dbd", check=False).returncode == 0
