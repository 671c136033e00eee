"""A real PostgreSQL server for the tests: initdb into a temporary directory,
pg_ctl on a free loopback port, as an unprivileged user (CI runs as root and
PostgreSQL refuses to run as root).

For high availability, Postgres(..., primary=p) makes a streaming standby of
p (pg_basebackup -R, its own directory and port), synchronous or not;
p.kill() crashes a server, standby.promote() makes the standby the primary,
and multi_host_params() is the libpq DBDParams naming several servers.
cleanup() leaves no process behind, even after a crash."""
import glob
import os
import pwd
import shutil
import signal
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


def multi_host_params(*servers, target_session_attrs="read-write"):
    """libpq DBDParams naming every server, in this order: libpq tries them
    in turn and keeps the first that accepts a session of the given kind
    (None: the keyword is left out, libpq's default "any")."""
    params = (f"host={','.join('127.0.0.1' for _ in servers)} "
              f"port={','.join(str(s.port) for s in servers)} "
              "dbname=k2 user=k2notify connect_timeout=3")
    if target_session_attrs:
        params += f" target_session_attrs={target_session_attrs}"
    return params


class Postgres:
    """One PostgreSQL cluster with database k2, user k2notify, the sample
    schema; or, with primary, a streaming standby of that cluster."""

    def __init__(self, name="pg", accounts=(), primary=None, synchronous=False,
                 locale_dir=None):
        """primary: make this server a hot standby of that one (a copy by
        pg_basebackup -R, streaming from it).  synchronous: the primary then
        waits, at each commit, until this standby has flushed the commit to
        disk (its synchronous_standby_names names this standby, whose
        application_name is name); otherwise replication is asynchronous.
        locale_dir: a directory of compiled locales (localedef output) the
        server is started with (LOCPATH), for lc_messages tests."""
        self.name = name
        self.bindir = pg_bindir()
        self.locale_dir = locale_dir
        self.dir = tempfile.mkdtemp(prefix=f"k2notify-{name}-")
        os.chmod(self.dir, 0o755)
        self.data = os.path.join(self.dir, "data")
        self.log = os.path.join(self.dir, "postgres.log")
        self.port = _free_port()
        self.user = None
        self.held = []                  # WAL senders stopped by hold_replication
        if os.geteuid() == 0:
            self.user = pwd.getpwnam("postgres")
            os.chown(self.dir, self.user.pw_uid, self.user.pw_gid)
        try:
            if primary is None:
                self._create(accounts)
            else:
                self._clone(primary, synchronous)
        except BaseException:
            self.cleanup()
            raise

    def _create(self, accounts):
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

    def _clone(self, primary, synchronous):
        # initdb's pg_hba.conf (-A trust) lets replication connections in
        # from 127.0.0.1; wal_level replica and max_wal_senders are
        # PostgreSQL's defaults.  -R writes standby.signal and a
        # primary_conninfo with this application_name; the slot keeps the
        # WAL this standby has not received yet.
        slot = self.name.replace("-", "_")
        self._run("pg_basebackup", "-d",
                  f"host=127.0.0.1 port={primary.port} user=postgres "
                  f"application_name={self.name}", "-D", self.data,
                  "-R", "-X", "stream", "-C", "-S", slot, "-c", "fast",
                  "--no-sync")
        # The copy has the primary's postgresql.conf: the last line wins.
        with open(os.path.join(self.data, "postgresql.conf"), "a") as f:
            f.write(f"port = {self.port}\n"
                    f"unix_socket_directories = '{self.dir}'\n")
        self.start()
        if synchronous:
            primary.execute("ALTER SYSTEM SET synchronous_standby_names = "
                            f"'\"{self.name}\"'", db="postgres")
            primary.execute("SELECT pg_reload_conf()", db="postgres")
        want = "sync" if synchronous else "async"
        deadline = time.time() + 30
        while True:
            state = primary.query("SELECT state, sync_state FROM "
                                  "pg_stat_replication WHERE application_name = ?",
                                  self.name)
            if state == [("streaming", want)]:
                return
            if time.time() > deadline:
                raise RuntimeError(f"standby {self.name} not streaming "
                                   f"({want}) 30 s after it started: {state}")
            time.sleep(0.05)

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

    def processes(self):
        """The pids of this server's processes: the postmaster and every
        process it forked chdir to the data directory, and keep running
        there if the postmaster dies."""
        data = os.path.realpath(self.data)
        pids = []
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                if os.readlink(f"/proc/{entry}/cwd") == data:
                    pids.append(int(entry))
            except OSError:
                pass
        return pids

    @staticmethod
    def _state(pid):
        """The process's state letter (R, S, T, Z...), None if it is gone."""
        try:
            with open(f"/proc/{pid}/stat") as f:
                return f.read().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            return None

    @classmethod
    def _alive(cls, pid):
        """Running (a dead process not yet reaped by its parent, a zombie,
        is not: pg_ctl leaves the postmaster's reaping to whoever adopts
        it)."""
        return cls._state(pid) not in (None, "Z")

    def _wait_gone(self, pids, timeout):
        deadline = time.time() + timeout
        while True:
            alive = [p for p in pids if self._alive(p)]
            if not alive or time.time() > deadline:
                return alive
            time.sleep(0.02)

    def walsenders(self):
        """The pids of the WAL senders (one per streaming standby)."""
        out = []
        for p in self.processes():
            try:
                with open(f"/proc/{p}/cmdline", "rb") as f:
                    if f.read().startswith(b"postgres: walsender "):
                        out.append(p)
            except OSError:
                pass
        return out

    def hold_replication(self):
        """Stop sending WAL to the standbys, as a slow or cut link to them
        would (SIGSTOP of the WAL senders): the primary goes on committing,
        and with synchronous replication each commit waits.  Undone by
        kill(), which ends the held senders first."""
        self.held = self.walsenders()
        assert self.held, "no WAL sender to hold"
        for p in self.held:
            os.kill(p, signal.SIGSTOP)
        deadline = time.time() + 5
        while [p for p in self.held if self._state(p) != "T"]:
            assert time.time() < deadline, "WAL senders not stopped after 5 s"
            time.sleep(0.001)

    def _kill_held(self):
        for p in self.held:
            try:
                os.kill(p, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self._wait_gone(self.held, 10)
        self.held = []

    def _postmaster(self):
        """The pid in postmaster.pid (None without one); after a crash it
        may be stale: check it against processes()."""
        try:
            with open(os.path.join(self.data, "postmaster.pid")) as f:
                return int(f.readline())
        except (OSError, ValueError):
            return None

    def kill(self, how="sigkill"):
        """Crash the server.  "sigkill": SIGKILL of the postmaster; its
        backends and WAL senders notice and exit by themselves, and this
        waits for them (bounded).  "immediate": pg_ctl stop -m immediate
        (SIGQUIT to every process: no checkpoint, crash recovery at the next
        start).  WAL senders held by hold_replication() are SIGKILLed
        first: what they had not sent is never sent."""
        if how not in ("immediate", "sigkill"):
            raise ValueError(how)
        self._kill_held()               # the link to the standbys went first
        if how == "immediate":
            self.stop("immediate")
        elif how == "sigkill":
            postmaster = self._postmaster()
            orphans = [p for p in self.processes() if p != postmaster]
            os.kill(postmaster, signal.SIGKILL)
            alive = self._wait_gone([postmaster] + orphans, 10)
            if alive:
                raise AssertionError(f"PostgreSQL processes still alive 10 s "
                                     f"after the postmaster was killed: {alive}")

    def promote(self):
        """Make this standby a primary (pg_ctl promote, waiting until it
        accepts writes)."""
        self._run("pg_ctl", "-D", self.data, "-w", "-t", "30", "promote")

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
        """Stop the server, kill whatever is left of it (a crashed
        postmaster's backends), remove its files."""
        self._kill_held()               # a stopped process takes no SIGQUIT
        left = self.processes() if os.path.isdir(self.data) else []
        if self._postmaster() in left:
            self.stop("immediate")
            left = self.processes()
        for p in left:
            try:
                os.kill(p, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self._wait_gone(left, 10)
        shutil.rmtree(self.dir, ignore_errors=True)
