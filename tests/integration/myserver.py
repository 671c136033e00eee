"""A real MariaDB server for the tests, and a Galera cluster of them.

MariaDB(...) runs mariadbd on a free loopback port with its own datadir,
socket and option file (--defaults-file: nothing of /etc/mysql is read, and
the system's own mariadb service is neither needed nor touched), as user
mysql when the tests run as root.  The system tables are made once per test
session (mariadb-install-db into a template) and copied for each server.
The server has database k2, user k2notify (password PASSWORD, from
127.0.0.1) and conf-samples/schema-mysql.sql.

MariaDB(..., tls=True) also serves TLS, with a certificate for 127.0.0.1
signed by a CA of its own (ca_cert: the file a client verifies it with).

Galera(n) starts n such servers as one cluster (galera-4's libgalera_smm.so,
gcomm:// on loopback ports): the first bootstraps it, the others join it
with a state transfer by rsync.

kill() crashes a server (SIGKILL), restart() stops and starts it,
kill_connections() ends every session of a user as wait_timeout or a proxy
would.  cleanup() leaves no process behind.
"""
import atexit
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time

import pymysql
import pymysql.cursors

TOP = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
SCHEMA = os.path.join(TOP, "conf-samples", "schema-mysql.sql")
MARIADBD = shutil.which("mariadbd") or "/usr/sbin/mariadbd"
INSTALL_DB = shutil.which("mariadb-install-db") or "/usr/bin/mariadb-install-db"
GALERA = "/usr/lib/galera/libgalera_smm.so"
PASSWORD = "K2dbSecret-7"

# Small: a test server holds a few thousand rows.
BASE_OPTIONS = """
bind-address = 127.0.0.1
skip-name-resolve
character-set-server = utf8mb4
collation-server = utf8mb4_unicode_ci
innodb-buffer-pool-size = 32M
innodb-log-file-size = 16M
max-connections = 300
performance-schema = OFF
"""

_template = None


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _owner():
    """The user mariadbd runs as: mysql when we are root, else ourselves."""
    return pwd.getpwnam("mysql") if os.geteuid() == 0 else None


def _chown_tree(path, user):
    if not user:
        return
    for root, dirs, files in os.walk(path):
        os.chown(root, user.pw_uid, user.pw_gid)
        for f in files:
            os.chown(os.path.join(root, f), user.pw_uid, user.pw_gid)


def template():
    """A datadir with the system tables, made once per test session."""
    global _template
    if _template:
        return _template
    top = tempfile.mkdtemp(prefix="k2notify-mariadb-template-")
    os.chmod(top, 0o755)
    data = os.path.join(top, "data")
    user = _owner()
    _chown_tree(top, user)
    cmd = [INSTALL_DB, "--no-defaults", f"--datadir={data}",
           "--auth-root-authentication-method=normal", "--skip-test-db",
           "--skip-name-resolve", "--innodb-log-file-size=16M"]
    if user:
        cmd.append(f"--user={user.pw_name}")
    p = subprocess.run(cmd, capture_output=True, text=True, cwd="/")
    if p.returncode != 0:
        raise RuntimeError(f"mariadb-install-db failed:\n{p.stdout}{p.stderr}")
    _template = data
    atexit.register(shutil.rmtree, top, True)
    return data


class MariaDB:
    """One mariadbd with database k2, user k2notify and the sample schema
    (schema=False: the database and user only; galera: the wsrep lines of
    a cluster node, written by Galera)."""

    def __init__(self, name="my", accounts=(), schema=True, options="",
                 galera=None, create=True, tls=False):
        self.name = name
        self.dir = tempfile.mkdtemp(prefix=f"k2notify-{name}-")
        os.chmod(self.dir, 0o755)
        self.data = os.path.join(self.dir, "data")
        self.sock = os.path.join(self.dir, "mysqld.sock")
        self.log = os.path.join(self.dir, "mariadb.err")
        self.cnf = os.path.join(self.dir, "my.cnf")
        self.port = _free_port()
        self.user = _owner()
        self.options = options
        self.galera = galera or ""
        self.proc = None
        self.ca_cert = None
        try:
            shutil.copytree(template(), self.data, symlinks=True)
            if tls:
                self.options += self._make_certificates()
            _chown_tree(self.dir, self.user)
            self.write_cnf()
            if create:
                self.start()
                self._create(accounts, schema)
        except BaseException:
            self.cleanup()
            raise

    def _make_certificates(self):
        """A CA and a server certificate for 127.0.0.1; the option lines."""
        tls = os.path.join(self.dir, "tls")
        os.mkdir(tls)
        ca, ca_key = os.path.join(tls, "ca.pem"), os.path.join(tls, "ca.key")
        cert, key = os.path.join(tls, "server.pem"), os.path.join(tls, "server.key")
        csr = os.path.join(tls, "server.csr")
        ext = os.path.join(tls, "san.cnf")
        with open(ext, "w") as f:
            f.write("subjectAltName = IP:127.0.0.1\n")
        for cmd in (
                ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes",
                 "-keyout", ca_key, "-out", ca, "-days", "2", "-subj",
                 "/CN=k2notify test CA"],
                ["openssl", "req", "-newkey", "rsa:2048", "-nodes", "-keyout",
                 key, "-out", csr, "-subj", "/CN=127.0.0.1"],
                ["openssl", "x509", "-req", "-in", csr, "-CA", ca, "-CAkey",
                 ca_key, "-CAcreateserial", "-out", cert, "-days", "2",
                 "-extfile", ext]):
            subprocess.run(cmd, check=True, capture_output=True)
        for f in os.listdir(tls):
            os.chmod(os.path.join(tls, f), 0o644)
        self.ca_cert = ca
        return f"ssl-ca = {ca}\nssl-cert = {cert}\nssl-key = {key}\n"

    def write_cnf(self):
        with open(self.cnf, "w") as f:
            f.write(f"""[mariadbd]
datadir = {self.data}
socket = {self.sock}
port = {self.port}
pid-file = {self.dir}/mysqld.pid
log-error = {self.log}
{"user = " + self.user.pw_name if self.user else ""}
{BASE_OPTIONS}
{self.galera}
{self.options}
""")

    def _create(self, accounts, schema):
        self.execute("CREATE DATABASE k2 CHARACTER SET utf8mb4 "
                     "COLLATE utf8mb4_unicode_ci", db=None)
        self.execute(f"CREATE USER k2notify@'127.0.0.1' IDENTIFIED BY "
                     f"'{PASSWORD}'", db=None)
        if schema:
            with open(SCHEMA) as f:
                self.script(f.read())
            # What the sample's "user and grants" give the module.
            self.execute("GRANT SELECT ON k2.accounts TO k2notify@'127.0.0.1'")
            # INSERT ... ON DUPLICATE KEY UPDATE needs UPDATE on every
            # column it inserts (MariaDB 10.11), not only on the one it sets.
            self.execute("GRANT SELECT, INSERT, UPDATE ON k2.k2_transactions "
                         "TO k2notify@'127.0.0.1'")
        for ac_no in accounts:
            self.execute("INSERT INTO accounts (ac_no) VALUES (%s)", ac_no)

    @property
    def dbd_params(self):
        return (f"host=127.0.0.1 port={self.port} user=k2notify "
                f"pass={PASSWORD} dbname=k2")

    # -- lifecycle ---------------------------------------------------------------
    def start(self, *args, timeout=60):
        """Start mariadbd and wait until it answers (args: extra options,
        such as --wsrep-new-cluster)."""
        self.proc = subprocess.Popen(
            [MARIADBD, f"--defaults-file={self.cnf}", *args],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL, cwd="/", start_new_session=True)
        deadline = time.time() + timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"mariadbd {self.name} exited "
                                   f"({self.proc.returncode}):\n{self.log_tail()}")
            try:
                self.connect(db=None, timeout=1).close()
                return self
            except pymysql.err.OperationalError:
                if time.time() > deadline:
                    raise RuntimeError(f"mariadbd {self.name} not ready after "
                                       f"{timeout} s:\n{self.log_tail()}")
                time.sleep(0.05)

    def stop(self, timeout=60):
        """A clean shutdown (SIGTERM), waited for."""
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def kill(self):
        """Crash the server: SIGKILL, no shutdown."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()
        self.proc = None

    def restart(self):
        self.stop()
        self.start()

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def log_tail(self, n=40):
        try:
            with open(self.log, errors="replace") as f:
                return "".join(f.readlines()[-n:])
        except FileNotFoundError:
            return ""

    def cleanup(self):
        self.kill()
        shutil.rmtree(self.dir, ignore_errors=True)

    # -- SQL ---------------------------------------------------------------------
    def connect(self, db="k2", timeout=10, **kw):
        """A root session over the server's socket, autocommit."""
        return pymysql.connect(unix_socket=self.sock, user="root", database=db,
                               connect_timeout=timeout, autocommit=True,
                               charset="utf8mb4", **kw)

    def execute(self, sql, *args, db="k2"):
        con = self.connect(db)
        try:
            with con.cursor() as cur:
                cur.execute(sql, args or None)
        finally:
            con.close()

    def script(self, text, db="k2"):
        """Statements separated by ';' at the end of a line (the sample
        schema's form), each run in turn."""
        con = self.connect(db)
        try:
            with con.cursor() as cur:
                for stmt in split_statements(text):
                    cur.execute(stmt)
        finally:
            con.close()

    def query(self, sql, *args):
        """Rows of a query; '?' placeholders as in sqlite3."""
        con = self.connect()
        try:
            with con.cursor() as cur:
                cur.execute(sql.replace("?", "%s"), args)
                return [tuple(r) for r in cur.fetchall()]
        finally:
            con.close()

    def rows(self, k2_transaction_id):
        con = self.connect(cursorclass=pymysql.cursors.DictCursor)
        try:
            with con.cursor() as cur:
                cur.execute("SELECT * FROM k2_transactions "
                            "WHERE k2_transaction_id = %s", (k2_transaction_id,))
                return [dict(r) for r in cur.fetchall()]
        finally:
            con.close()

    def sessions(self, user="k2notify"):
        """The ids of the sessions of user."""
        return [r[0] for r in self.query(
            "SELECT id FROM information_schema.processlist WHERE user = ?", user)]

    def kill_connections(self, user="k2notify"):
        """End every session of user, as wait_timeout or a proxy would.
        Returns how many were killed."""
        ids = self.sessions(user)
        con = self.connect(db=None)
        try:
            with con.cursor() as cur:
                for i in ids:
                    try:
                        cur.execute(f"KILL CONNECTION {int(i)}")
                    except pymysql.err.OperationalError:
                        pass            # ended meanwhile
        finally:
            con.close()
        return len(ids)


def split_statements(text):
    """SQL statements of a script as the mariadb client reads the sample
    schema: a statement ends with the delimiter (';', or what a DELIMITER
    line sets) at the end of a line; '--' comment lines between statements
    are dropped."""
    out, cur, delim = [], [], ";"
    for line in text.splitlines():
        if not cur and (not line.strip() or line.strip().startswith("--")):
            continue
        if not cur and line.strip().upper().startswith("DELIMITER "):
            delim = line.split()[1]
            continue
        cur.append(line)
        if line.rstrip().endswith(delim):
            stmt = "\n".join(cur).rstrip()[:-len(delim)].strip()
            if stmt:
                out.append(stmt)
            cur = []
    if "".join(cur).strip():
        out.append("\n".join(cur).strip())
    return out


class Galera:
    """A Galera cluster of n MariaDB nodes on this machine: node 0
    bootstraps it (and gets the database, user and schema, which the
    others receive with their state transfer).  sync_wait: wsrep_sync_wait
    of every node (1: a read first waits until the node has applied every
    write the cluster committed before it)."""

    def __init__(self, n=3, name="galera", accounts=(), sync_wait=1):
        self.gcomm = [_free_port() for _ in range(n)]
        address = "gcomm://" + ",".join(f"127.0.0.1:{p}" for p in self.gcomm)
        self.nodes = []
        try:
            for i in range(n):
                wsrep = f"""
wsrep_on = ON
wsrep_provider = {GALERA}
wsrep_cluster_name = k2notify-test
wsrep_cluster_address = {address}
wsrep_node_name = {name}{i}
wsrep_node_address = 127.0.0.1:{self.gcomm[i]}
wsrep_provider_options = "gmcast.listen_addr=tcp://127.0.0.1:{self.gcomm[i]};ist.recv_addr=127.0.0.1:{_free_port()};gcache.size=64M;evs.inactive_timeout=PT3S;evs.suspect_timeout=PT2S;evs.keepalive_period=PT0.5S;evs.inactive_check_period=PT0.5S"
wsrep_sst_method = rsync
wsrep_sst_receive_address = 127.0.0.1:{_free_port()}
wsrep_sync_wait = {sync_wait}
binlog_format = ROW
default-storage-engine = InnoDB
innodb_autoinc_lock_mode = 2
"""
                node = MariaDB(f"{name}{i}", galera=wsrep, create=False)
                self.nodes.append(node)
                if i == 0:
                    node.start("--wsrep-new-cluster")
                    node._create(accounts, True)
                else:
                    node.start(timeout=120)
                self.wait_synced(node, i + 1)
        except BaseException:
            self.cleanup()
            raise

    @staticmethod
    def status(node, var):
        """A global status variable, on a session with no database (a joiner
        has none until its state transfer has ended)."""
        con = node.connect(db=None, timeout=5)
        try:
            with con.cursor() as cur:
                cur.execute("SHOW GLOBAL STATUS LIKE %s", (var,))
                rows = cur.fetchall()
        finally:
            con.close()
        return rows[0][1] if rows else None

    def wait_synced(self, node, size, timeout=60):
        """Until node is Synced in a cluster of size.  A joiner accepts a
        connection before its state transfer ends and may close it during
        the handshake (2013: seen on a loaded machine): that is waited
        through, not an error."""
        deadline = time.time() + timeout
        while True:
            if not node.running():
                raise RuntimeError(f"{node.name} exited while joining:\n"
                                   f"{node.log_tail()}")
            try:
                state = (self.status(node, "wsrep_local_state_comment"),
                         self.status(node, "wsrep_cluster_size"))
            except pymysql.err.OperationalError as e:
                state = ("not answering", str(e))
            if state == ("Synced", str(size)):
                return
            if time.time() > deadline:
                raise RuntimeError(f"{node.name}: {state}, not (Synced, {size}) "
                                   f"after {timeout} s:\n{node.log_tail()}")
            time.sleep(0.1)

    def cleanup(self):
        for node in self.nodes:
            node.cleanup()
