"""Integration harness: a real Apache with the built module and a real SQLite file.

Each server gets its own directory under /tmp, a free loopback port, an
httpd.conf written from the pieces a test needs, and a SQLite database made
from conf-samples/schema-sqlite.sql.  As root (CI), httpd children run as an
unprivileged User that owns the database directory.  On teardown the error log
is scanned: an unexpected error, crash or "database is locked" fails the tests.

make test-asan sets K2NOTIFY_MODULE (the module to load) and K2NOTIFY_HTTPD_ENV
("NAME=VALUE ..." added to the environment of the apache2 processes only, where
{logdir} is the server's sanitizer/ directory, writable by the httpd User).  A
file in that directory (an ASan report, a core dump) fails the server's
teardown, as does an AddressSanitizer or "runtime error:" line in the error log
(gcc's UBSan runtime writes there whatever its log_path).
"""
import base64
import os
import pwd
import re
import shlex
import shutil
import socket
import sqlite3
import subprocess
import tempfile
import time
import urllib.parse
import uuid

import pytest
import requests

TOP = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
MODULE = (os.environ.get("K2NOTIFY_MODULE")
          or os.path.join(TOP, "build", "mod_k2notify.so"))
HTTPD_ENV = shlex.split(os.environ.get("K2NOTIFY_HTTPD_ENV", ""))
SCHEMA = os.path.join(TOP, "conf-samples", "schema-sqlite.sql")
MODS = subprocess.run(["apxs", "-q", "LIBEXECDIR"], capture_output=True,
                      text=True, check=True).stdout.strip()
HTTPD = shutil.which("apache2") or "/usr/sbin/apache2"

USER, PASSWORD = "k2login", "K2Password"
ACCOUNT = "A123333"

# The spec's example notification, as K2 sends it (section 2).
SPEC_BODY = ("k2_account_id=12&k2_transaction_id=15&mm_system_id=M-PESA"
             "&mp_transaction_id=54445&biller_number=888555"
             "&transaction_date=26%2F4%2F11&transaction_time=1%3A03%20PM"
             "&transaction_type=Paybill&ac_no=A123333&sender=0723456789"
             "&first_name=John&last_name=Doe&middle_name=K.&amount=1500"
             "&currency=KES")

# The configuration contract of issue 2, verbatim but for the paths.
CONTRACT_LOCATION = """
<Location /k2/notify>
    SetHandler k2notify
    AuthType Basic
    AuthName "K2 notifications"
    AuthUserFile {htpasswd}
    Require valid-user
    K2NotifyAccountQuery "SELECT ac_no FROM accounts WHERE ac_no = %s"
    K2NotifyRecordQuery  "INSERT INTO k2_transactions (k2_transaction_id, ac_no, amount, currency, transaction_timestamp) VALUES (%s, %s, %s, %s, %s) ON CONFLICT (k2_transaction_id) DO NOTHING" k2_transaction_id ac_no amount currency transaction_timestamp
    K2NotifyCurrencies KES
    K2NotifyBillerNumbers 888555
</Location>
"""

AUTH = """
    AuthType Basic
    AuthName "K2 notifications"
    AuthUserFile {htpasswd}
    Require valid-user
"""

# Debian's stock MPM settings (/etc/apache2/mods-available/mpm_*.conf): two
# event children of 25 threads, or five prefork children (what Debian
# switches to as soon as libapache2-mod-php is installed).  (mpm, lines)
STOCK_LAYOUTS = {
    "stock-event": ("event", """
StartServers            2
MinSpareThreads         25
MaxSpareThreads         75
ThreadLimit             64
ThreadsPerChild         25
MaxRequestWorkers       150
MaxConnectionsPerChild  0
"""),
    "stock-prefork": ("prefork", """
StartServers            5
MinSpareServers         5
MaxSpareServers         10
MaxRequestWorkers       150
MaxConnectionsPerChild  0
"""),
}

# One event child, one pooled connection: every request meets the same
# statements (tests of what happens to a connection).
ONE_CONNECTION = """
StartServers 1
ServerLimit 1
ThreadsPerChild 8
MaxRequestWorkers 8
MinSpareThreads 1
MaxSpareThreads 8
DBDMin 1
DBDKeep 1
DBDMax 1
"""

# The spec's example as recorded by a statement that binds every field.
SPEC_ROW = {
    "k2_transaction_id": "15", "ac_no": ACCOUNT, "amount": "1500",
    "currency": "KES", "transaction_timestamp": "2011-04-26T13:03:00",
    "k2_account_id": "12", "mm_system_id": "M-PESA",
    "mp_transaction_id": "54445", "biller_number": "888555",
    "transaction_date": "26/4/11", "transaction_time": "1:03 PM",
    "transaction_type": "Paybill", "sender": "0723456789",
    "first_name": "John", "middle_name": "K.", "last_name": "Doe",
    "remote_user": "k2login",
}

MODULES = ["mpm_{mpm}", "authn_core", "authn_file", "authz_core", "authz_user",
           "auth_basic", "dbd"]

# Error-log lines that always mean trouble, whatever the test expected.
CRASH = re.compile(r"Segmentation fault|exit signal|AddressSanitizer|runtime error:")
# mod_dbd prepares its statements when a child starts, before any DBDInitSQL;
# children that start together on a WAL database race to set up its shared
# memory, and a loser logs these three lines (its pool is set up again at its
# first request: no notification is refused).  Tolerated only at child init,
# from the child's main thread (tid = pid); at a request they fail the test.
CHILD_INIT_LOCKED = [
    r"\[dbd:error\] \[pid (\d+):tid \1\] .*AH00632: failed to prepare SQL "
    r"statements: database is locked$",
    r"\[dbd:error\] \[pid (\d+):tid \1\] .*AH00633: failed to initialise$",
    r"\[dbd:crit\] \[pid (\d+):tid \1\] .*AH00636: child init failed!$",
]

DBD_SETUP_LOCKED = re.compile(
    r"\[dbd:error\] \[pid (\d+):tid (\d+)\] .*(AH00632: failed to prepare SQL "
    r"statements: database is locked|AH00633: failed to initialise)$")
RETRIED_OPEN = re.compile(r"\[k2notify:warn\] \[pid (\d+):tid (\d+)\] .* a database "
                          r"connection at the \d+\w\w attempt")

# Lines that mean trouble unless the test declared them (expect_error).  A
# line's level is its second bracket ("[date] [module:level] ..."): a value
# a webhook sent may hold the text ":error]" anywhere after it.
ALWAYS_BAD = re.compile(r"Segmentation fault|exit signal|AddressSanitizer|"
                        r"runtime error:|database is locked|"
                        r"^\[[^\]]*\] \[[^\]]*:(crit|alert|emerg)\]")
ERROR_LINE = re.compile(r"^\[[^\]]*\] \[[^\]]*:error\]")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_user():
    """The unprivileged user httpd children run as when we are root."""
    if os.geteuid() != 0:
        return None
    for name in ("www-data", "nobody"):
        try:
            return pwd.getpwnam(name)
        except KeyError:
            continue
    raise RuntimeError("no unprivileged user (www-data or nobody) to run httpd children")


def notification(**fields):
    """The spec's example with a fresh k2_transaction_id, fields overridden
    (a value of None removes the field).  Returns an ordered dict."""
    base = dict(urllib.parse.parse_qsl(SPEC_BODY, keep_blank_values=True))
    base["k2_transaction_id"] = new_id()
    for k, v in fields.items():
        if v is None:
            base.pop(k, None)
        else:
            base[k] = v
    return base


def new_id():
    return "T" + uuid.uuid4().hex[:20]


def form(fields):
    """Encode a dict as K2 does (spaces as %20)."""
    return urllib.parse.urlencode(fields, quote_via=urllib.parse.quote)


class Httpd:
    """One real Apache with mod_k2notify and its own SQLite database."""

    def __init__(self, name, body, mpm="event", db=True, accounts=(ACCOUNT,),
                 loglevel="warn k2notify:info", dbd=True, extra_sql="",
                 k2module=True, modules=None, pgsql=None, dbd_extra="",
                 mysql=None, env=None, dbdriver=True):
        self.name = name
        self.dir = tempfile.mkdtemp(prefix=f"k2notify-{name}-")
        os.chmod(self.dir, 0o755)
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.db_dir = os.path.join(self.dir, "db")
        self.db = os.path.join(self.db_dir, "k2.db")
        self.htpasswd = os.path.join(self.dir, "k2.htpasswd")
        self.error_log = os.path.join(self.dir, "error.log")
        self.access_log = os.path.join(self.dir, "access.log")
        self.conf = os.path.join(self.dir, "httpd.conf")
        self.sanitizer_dir = os.path.join(self.dir, "sanitizer")
        self.expected_errors = [re.compile(p) for p in CHILD_INIT_LOCKED]
        self.started = False
        self.env = dict(env or {})       # added to the apache2 processes
        self.extra_env = self.env        # (LD_PRELOAD after ASan's: httpd_env)
        os.mkdir(self.db_dir)
        os.mkdir(self.sanitizer_dir)
        self.pgsql = pgsql
        self.mysql = mysql              # a myserver.MariaDB (or a Galera node)
        self.dbserver = pgsql or mysql
        if db and not self.dbserver:
            with open(SCHEMA) as f:
                schema = f.read()
            con = sqlite3.connect(self.db)
            con.executescript(schema + extra_sql)
            con.executemany("INSERT INTO accounts (ac_no) VALUES (?)",
                            [(a,) for a in accounts])
            con.commit()
            con.close()
        subprocess.run(["htpasswd", "-b", "-c", "-B", "-C", "4", self.htpasswd,
                        USER, PASSWORD], check=True, capture_output=True)
        user = run_user()
        user_lines = ""
        if user:
            user_lines = f"User {user.pw_name}\nGroup #{user.pw_gid}\n"
            os.chown(self.sanitizer_dir, user.pw_uid, user.pw_gid)
            for root, dirs, files in os.walk(self.db_dir):
                os.chown(root, user.pw_uid, user.pw_gid)
                for f in files:
                    os.chown(os.path.join(root, f), user.pw_uid, user.pw_gid)
            os.chmod(self.htpasswd, 0o644)
        mods = [m.format(mpm=mpm) for m in (modules or MODULES)]
        if not dbd:
            mods.remove("dbd")
        lines = [f"LoadModule {m}_module {MODS}/mod_{m}.so" for m in mods]
        if k2module:
            lines.append(f"LoadModule k2notify_module {MODULE}")
        dbd_lines = ""
        if dbd and pgsql:
            dbd_lines = f'DBDriver pgsql\nDBDParams "{pgsql.dbd_params}"\n'
        elif dbd and mysql:
            dbd_lines = f'DBDriver mysql\nDBDParams "{mysql.dbd_params}"\n'
        elif dbd and dbdriver:
            dbd_lines = (f'DBDriver sqlite3\nDBDParams "{self.db}"\n'
                         'DBDInitSQL "PRAGMA synchronous = FULL"\n')
        dbd_lines += dbd_extra
        # Children stay dumpable after setuid: the sanitizer runtimes read
        # their options from /proc/self/environ (UBSan's only when it first
        # reports, in a child); a core dump (where `ulimit -c` allows one) is
        # a report too.
        user_lines += f'CoreDumpDirectory "{self.sanitizer_dir}"\n'
        self.body = body.format(htpasswd=self.htpasswd, db=self.db, dir=self.dir)
        with open(self.conf, "w") as f:
            f.write(f"""# written by tests/integration/conftest.py for {name}
ServerRoot "{self.dir}"
ServerName 127.0.0.1
Listen 127.0.0.1:{self.port}
PidFile "{self.dir}/httpd.pid"
DefaultRuntimeDir "{self.dir}"
ErrorLog "{self.error_log}"
LogLevel {loglevel}
Timeout 5
{user_lines}
{chr(10).join(lines)}
{dbd_lines}
LogFormat "%>s %{{K2_TRANSACTION_ID}}e|%{{K2_AC_NO}}e|%{{K2_AMOUNT}}e|%{{K2_CURRENCY}}e|%{{K2_STATUS}}e|%{{K2_OUTCOME}}e|%u|%r @%{{begin:usec}}t" k2
CustomLog "{self.access_log}" k2
{self.body}
""")

    # -- lifecycle -----------------------------------------------------------
    def httpd_env(self):
        """The environment of this server's apache2 processes."""
        env = dict(os.environ, **self.env)
        for word in HTTPD_ENV:
            name, _, value = word.partition("=")
            env[name] = value.replace("{logdir}", self.sanitizer_dir)
        for name, value in self.extra_env.items():
            if name == "LD_PRELOAD" and env.get(name):
                value = env[name] + ":" + value     # after ASan's runtime
            env[name] = value
        return env

    def configtest(self):
        p = subprocess.run([HTTPD, "-t", "-f", self.conf], capture_output=True,
                           text=True, env=self.httpd_env())
        return p.returncode, p.stdout + p.stderr

    def start(self):
        rc, out = self.configtest()
        if rc != 0:
            raise RuntimeError(f"configtest failed for {self.name}:\n{out}")
        subprocess.run([HTTPD, "-f", self.conf, "-k", "start"], check=True,
                       env=self.httpd_env())
        self.started = True
        deadline = time.time() + 10
        while time.time() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), 0.2):
                    return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"{self.name} did not start:\n{self.errors_text()}")

    def stop(self):
        if not self.started:
            return
        pidfile = os.path.join(self.dir, "httpd.pid")
        pid = None
        if os.path.exists(pidfile):
            with open(pidfile) as f:
                pid = int(f.read().strip())
        subprocess.run([HTTPD, "-f", self.conf, "-k", "stop"], capture_output=True,
                       env=self.httpd_env())
        deadline = time.time() + 10
        while pid and time.time() < deadline:
            try:
                os.kill(pid, 0)
                time.sleep(0.05)
            except ProcessLookupError:
                break
        self.started = False

    def cleanup(self):
        reports = self.sanitizer_reports()
        keep = os.environ.get("K2NOTIFY_KEEP_FAILED")
        if keep and (reports or self.unexpected_errors()):
            # for a post-mortem: the server's directory (its logs, any core)
            shutil.copytree(self.dir, os.path.join(
                keep, os.path.basename(self.dir)), dirs_exist_ok=True)
        shutil.rmtree(self.dir, ignore_errors=True)
        assert not reports, (f"sanitizer reports of {self.name}:\n"
                             + "\n".join(reports))

    # -- requests ------------------------------------------------------------
    def post(self, body=None, path="/k2/notify", query=None, auth=(USER, PASSWORD),
             headers=None, method="POST", **kw):
        """POST a notification; body may be a dict (form-encoded) or str/bytes."""
        if isinstance(body, dict):
            body = form(body)
        h = {}
        if body is not None and not (headers and "Content-Type" in headers):
            h["Content-Type"] = "application/x-www-form-urlencoded"
        h.update(headers or {})
        url = self.base + path + (("?" + query) if query else "")
        return requests.request(method, url, data=body, auth=auth, headers=h,
                                timeout=30, **kw)

    def raw(self, data, timeout=10):
        """Send raw bytes on a fresh connection; return the raw reply."""
        with socket.create_connection(("127.0.0.1", self.port), timeout) as s:
            s.sendall(data)
            chunks = []
            while True:
                try:
                    c = s.recv(65536)
                except socket.timeout:
                    break
                if not c:
                    break
                chunks.append(c)
        return b"".join(chunks)

    @staticmethod
    def basic(user=USER, password=PASSWORD):
        return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()

    # -- database and logs ---------------------------------------------------
    def query(self, sql, *args):
        if self.dbserver:
            return self.dbserver.query(sql, *args)
        con = sqlite3.connect(self.db, timeout=10)
        try:
            return con.execute(sql, args).fetchall()
        finally:
            con.close()

    def rows(self, k2_transaction_id):
        """The recorded rows of one transaction, as dicts."""
        if self.dbserver:
            return self.dbserver.rows(k2_transaction_id)
        con = sqlite3.connect(self.db, timeout=10)
        con.row_factory = sqlite3.Row
        try:
            return [dict(r) for r in con.execute(
                "SELECT * FROM k2_transactions WHERE k2_transaction_id = ?",
                (k2_transaction_id,))]
        finally:
            con.close()

    def count(self):
        return self.query("SELECT count(*) FROM k2_transactions")[0][0]

    def errors_text(self):
        try:
            with open(self.error_log, errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def error_lines_since(self, offset):
        return self.errors_text()[offset:].splitlines()

    def log_offset(self):
        return len(self.errors_text())

    def raw_access_lines(self):
        """The access log's lines as written: each ends with " @" and the
        request's arrival in microseconds (%{begin:usec}t)."""
        try:
            with open(self.access_log, errors="replace") as f:
                return f.read().splitlines()
        except FileNotFoundError:
            return []

    def access_lines(self):
        """The access log's lines, without the arrival time at their end."""
        return [l.rpartition(" @")[0] or l for l in self.raw_access_lines()]

    def access_entry(self, k2_transaction_id):
        """Access-log entries (status, id, ac, amount, currency, k2status,
        outcome, user, request line) of one transaction id, in the order the
        requests arrived: a line is written once its reply is sent, so two
        requests a moment apart may be logged in the other order.  Each line
        ends with " @" and the request's arrival in microseconds."""
        out = []
        for line in self.raw_access_lines():
            status, rest = line.split(" ", 1)
            rest, _, began = rest.rpartition(" @")
            parts = rest.split("|")
            if parts[0] == k2_transaction_id:
                out.append((int(began), [status] + parts))
        return [e for _, e in sorted(out, key=lambda t: t[0])]

    def expect_error(self, pattern):
        """Declare an error-log line (regex) this server is expected to log."""
        self.expected_errors.append(re.compile(pattern))

    def sanitizer_reports(self):
        """The lines of every file in the sanitizer directory (none is clean)."""
        lines = []
        if not os.path.isdir(self.sanitizer_dir):
            return lines                # cleaned up already
        for name in sorted(os.listdir(self.sanitizer_dir)):
            if name.startswith("core"):
                lines.append(f"{name}: a core dump")
                continue
            with open(os.path.join(self.sanitizer_dir, name),
                      errors="replace") as f:
                lines += [f"{name}: {l}" for l in f.read().splitlines()]
        return lines

    def unexpected_errors(self):
        bad = self.sanitizer_reports()
        text = self.errors_text()
        # mod_dbd's failure to set up a connection, at a request whose thread
        # then got one at a later attempt (the module's warning says so):
        # SQLite's WAL index being set up by another process, not an error.
        retried = set(RETRIED_OPEN.findall(text))
        for line in text.splitlines():
            m = DBD_SETUP_LOCKED.search(line)
            if m and m.group(1, 2) in retried:
                continue
            expected = any(p.search(line) for p in self.expected_errors)
            if CRASH.search(line) or (not expected and (
                    ALWAYS_BAD.search(line) or ERROR_LINE.search(line))):
                bad.append(line)
        return bad

    def wait_log(self, pattern, offset=0, timeout=5):
        """Wait until the error log (from offset) has a line matching pattern."""
        rx = re.compile(pattern)
        deadline = time.time() + timeout
        while True:
            lines = [l for l in self.error_lines_since(offset) if rx.search(l)]
            if lines or time.time() > deadline:
                return lines
            time.sleep(0.05)


def wait_access(server, k2_transaction_id, n=1, timeout=5):
    """Access-log lines are written after the reply: wait for them."""
    deadline = time.time() + timeout
    while True:
        e = server.access_entry(k2_transaction_id)
        if len(e) >= n or time.time() > deadline:
            return e
        time.sleep(0.05)


def wait_lines(path, n, timeout=5):
    """A log file's lines, once there are n: each CustomLog is written after
    the reply, one after the other, so one log may hold a line another lacks."""
    deadline = time.time() + timeout
    while True:
        with open(path) as f:
            lines = f.read().splitlines()
        if len(lines) >= n or time.time() > deadline:
            assert len(lines) == n, lines
            return lines
        time.sleep(0.05)


# Locations of the main test server, beside the contract's /k2/notify.
MAIN_LOCATIONS = CONTRACT_LOCATION + """
# Every field recorded (the sample's statement), any biller, two currencies.
<Location /k2/all>
    SetHandler k2notify
""" + AUTH + """
    K2NotifyAccountQuery "SELECT ac_no FROM accounts WHERE ac_no = %s"
    K2NotifyRecordQuery "INSERT INTO k2_transactions (k2_transaction_id, ac_no, amount, currency, transaction_timestamp, k2_account_id, mm_system_id, mp_transaction_id, biller_number, transaction_date, transaction_time, transaction_type, sender, first_name, middle_name, last_name, remote_user) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT (k2_transaction_id) DO NOTHING" k2_transaction_id ac_no amount currency transaction_timestamp k2_account_id mm_system_id mp_transaction_id biller_number transaction_date transaction_time transaction_type sender first_name middle_name last_name remote_user
    K2NotifyCurrencies KES USD
</Location>

# Lookup only: no record statement.
<Location /k2/lookup>
    SetHandler k2notify
""" + AUTH + """
    K2NotifyAccountQuery "SELECT ac_no FROM accounts WHERE ac_no = %s"
</Location>

# A small body cap.
<Location /k2/small>
    SetHandler k2notify
""" + AUTH + """
    K2NotifyAccountQuery "SELECT ac_no FROM accounts WHERE ac_no = %s"
    K2NotifyRecordQuery "INSERT INTO k2_transactions (k2_transaction_id, ac_no, amount, currency) VALUES (%s, %s, %s, %s) ON CONFLICT (k2_transaction_id) DO NOTHING" k2_transaction_id ac_no amount currency
    K2NotifyMaxBody 200
</Location>

# Forgotten authentication: K2NotifyRequireUser On (the default) refuses.
<Location /k2/noauth>
    SetHandler k2notify
    K2NotifyAccountQuery "SELECT ac_no FROM accounts WHERE ac_no = %s"
    K2NotifyRecordQuery "INSERT INTO k2_transactions (k2_transaction_id, ac_no, amount, currency) VALUES (%s, %s, %s, %s) ON CONFLICT (k2_transaction_id) DO NOTHING" k2_transaction_id ac_no amount currency
</Location>

# Deliberately open (e.g. a network-level control in front).
<Location /k2/open>
    SetHandler k2notify
    K2NotifyRequireUser Off
    K2NotifyAccountQuery "SELECT ac_no FROM accounts WHERE ac_no = %s"
    K2NotifyRecordQuery "INSERT INTO k2_transactions (k2_transaction_id, ac_no, amount, currency, remote_user) VALUES (%s, %s, %s, %s, %s) ON CONFLICT (k2_transaction_id) DO NOTHING" k2_transaction_id ac_no amount currency remote_user
</Location>

# SetHandler without K2NotifyAccountQuery.
<Location /k2/noquery>
    SetHandler k2notify
""" + AUTH + """
</Location>

# A record statement that fails at run time (a trigger refuses the row).
<Location /k2/failing>
    SetHandler k2notify
""" + AUTH + """
    K2NotifyAccountQuery "SELECT ac_no FROM accounts WHERE ac_no = %s"
    K2NotifyRecordQuery "INSERT INTO k2_refused (k2_transaction_id, ac_no) VALUES (%s, %s)" k2_transaction_id ac_no
</Location>

# Nested: the outer location configures, the inner one inherits (merge).
<Location /k2/nested>
    K2NotifyAccountQuery "SELECT ac_no FROM accounts WHERE ac_no = %s"
    K2NotifyRecordQuery "INSERT INTO k2_transactions (k2_transaction_id, ac_no, amount, currency) VALUES (%s, %s, %s, %s) ON CONFLICT (k2_transaction_id) DO NOTHING" k2_transaction_id ac_no amount currency
    K2NotifyCurrencies UGX
</Location>
<Location /k2/nested/inner>
    SetHandler k2notify
""" + AUTH + """
</Location>
"""

FAILING_SQL = """
CREATE TABLE k2_refused (k2_transaction_id TEXT, ac_no TEXT);
CREATE TRIGGER k2_refuse BEFORE INSERT ON k2_refused
BEGIN SELECT RAISE(ABORT, 'k2_refused accepts nothing'); END;
"""


def fault_library(tmp_path, name):
    """Build tests/integration/faults/NAME.c into an LD_PRELOAD library the
    httpd User can load; its path."""
    lib = str(tmp_path / f"{name}.so")
    subprocess.run(["gcc", "-shared", "-fPIC", "-O1", "-o", lib,
                    os.path.join(os.path.dirname(__file__), "faults",
                                 f"{name}.c"), "-ldl"], check=True)
    os.chmod(tmp_path, 0o755)
    os.chmod(lib, 0o755)
    return lib


def served(server):
    """For a fixture: start server, yield it; then stop it, remove its files
    and fail on any unexpected error-log line."""
    server.start()
    yield server
    server.stop()
    bad = server.unexpected_errors()
    server.cleanup()
    assert not bad, "unexpected error-log lines:\n" + "\n".join(bad)


@pytest.fixture(scope="session")
def k2():
    """The main server: event MPM, the contract location and variants."""
    yield from served(Httpd("main", MAIN_LOCATIONS, extra_sql=FAILING_SQL))


@pytest.fixture
def make_httpd():
    """Factory for servers a test configures itself; stopped and checked after."""
    made = []

    def factory(name, body, **kw):
        s = Httpd(name, body, **kw)
        made.append(s)
        return s

    yield factory
    for s in made:
        s.stop()
    bad = [l for s in made for l in s.unexpected_errors()]
    for s in made:
        s.cleanup()
    assert not bad, "unexpected error-log lines:\n" + "\n".join(bad)
