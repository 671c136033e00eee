"""A real PostgreSQL server for the tests: initdb into a temporary directory,
pg_ctl on a free loopback port, as an unprivileged user (CI runs as root and
PostgreSQL refuses to run as root)."""
import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time

import psycopg2
import psycopg2.extras

SCHEMA = os.path.join(os.path.dirname(__file__), "..", "..", "conf-samples",
                      "schema-pgsql.sql")


def pg_bindir():
    dirs = sorted(glob.glob("/usr/lib/postgresql/*/bin"),
                  key=lambda d: int(d.split("/")[-2].split(".")[0]))
    return dirs[-1] if dirs else None


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Postgres:
    """One PostgreSQL cluster with database k2, user k2notify, the sample schema."""

    def __init__(self, name="pg", accounts=(), locale_dir=None):
        """locale_dir: a directory of compiled locales (localedef output)
        the server is started with (LOCPATH), for lc_messages tests."""
        self.bindir = pg_bindir()
        self.locale_dir = locale_dir
        self.dir = tempfile.mkdtemp(prefix=f"k2notify-{name}-")
        os.chmod(self.dir, 0o755)
        self.data = os.path.join(self.dir, "data")
        self.log = os.path.join(self.dir, "postgres.log")
        self.port = _free_port()
        self.user = None
        if os.geteuid() == 0:
            self.user = pwd.getpwnam("postgres")
            os.chown(self.dir, self.user.pw_uid, self.user.pw_gid)
        self._run("initdb", "-D", self.data, "-A", "trust", "-U", "postgres",
                  "-E", "UTF8", "--no-sync")
        with open(os.path.join(self.data, "postgresql.conf"), "a") as f:
            f.write(f"listen_addresses = '127.0.0.1'\nport = {self.port}\n"
                    f"unix_socket_directories = '{self.dir}'\n"
                    "fsync = on\nmax_connections = 100\n")
        self.start()
        self.execute("CREATE ROLE k2notify LOGIN", db="postgres")
        self.execute("CREATE DATABASE k2 OWNER k2notify", db="postgres")
        with open(SCHEMA) as f:
            self.execute(f.read(), user="k2notify")
        for ac_no in accounts:
            self.execute("INSERT INTO accounts (ac_no) VALUES (%s)", ac_no,
                         user="k2notify")

    @property
    def dbd_params(self):
        return (f"host=127.0.0.1 port={self.port} dbname=k2 user=k2notify "
                "connect_timeout=3")

    def _run(self, prog, *args, check=True, input=None):
        cmd = [os.path.join(self.bindir, prog), *args]
        if self.locale_dir:
            cmd = ["env", f"LOCPATH={self.locale_dir}", *cmd]
        if self.user:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        return subprocess.run(cmd, check=check, capture_output=True, text=True,
                              input=input, cwd="/")

    def start(self):
        self._run("pg_ctl", "-D", self.data, "-l", self.log, "-w", "-t", "30",
                  "start")

    def stop(self, mode="fast"):
        self._run("pg_ctl", "-D", self.data, "-m", mode, "-w", "-t", "30",
                  "stop", check=False)

    def restart(self):
        self.stop()
        self.start()

    def connect(self, db="k2", user="postgres"):
        con = psycopg2.connect(host="127.0.0.1", port=self.port, dbname=db,
                               user=user, connect_timeout=5)
        con.autocommit = True
        return con

    def execute(self, sql, *args, db="k2", user="postgres"):
        con = self.connect(db, user)
        try:
            with con.cursor() as cur:
                cur.execute(sql, args or None)
        finally:
            con.close()

    def query(self, sql, *args):
        """Rows of a query; '?' placeholders as in sqlite3."""
        con = self.connect()
        try:
            with con.cursor() as cur:
                cur.execute(sql.replace("?", "%s"), args)
                return cur.fetchall()
        finally:
            con.close()

    def rows(self, k2_transaction_id):
        con = self.connect()
        try:
            with con.cursor(cursor_factory=psycopg2.extras.RealDictCursor) as cur:
                cur.execute("SELECT * FROM k2_transactions "
                            "WHERE k2_transaction_id = %s", (k2_transaction_id,))
                return [dict(r) for r in cur.fetchall()]
        finally:
            con.close()

    def cleanup(self):
        self.stop("immediate")
        shutil.rmtree(self.dir, ignore_errors=True)
