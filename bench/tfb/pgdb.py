#!/usr/bin/env python3
"""pgdb.py -- a throwaway PostgreSQL 15 with the TechEmpower schema and data.

    bench/tfb/pgdb.py [--core N] [--max-connections N] -- CMD [ARGS...]
    bench/tfb/pgdb.py --check          start, fill, print the tables' sizes, stop

Starts a server the way the tests do: initdb in a fresh temporary directory as
the `postgres` user (initdb refuses to run as root), the unix socket in that
directory and no TCP listener (listen_addresses=''), fsync and synchronous
commit off, pg_stat_statements preloaded. Creates the role benchmarkdbuser and
the database hello_world with

    World(id integer primary key, randomNumber integer)   10,000 rows, id 1..10000,
                                                          randomNumber 1..10000
    Fortune(id integer primary key, message varchar(2048)) the specification's 12 rows

and the pg_stat_statements extension, then runs CMD with DATABASE_URL (a libpq
URL over the socket) and PGHOST/PGUSER/PGDATABASE in its environment, and stops
the server when CMD ends, however it ends (exit, exception, SIGINT/SIGTERM/SIGHUP).

As a module: `with PgServer(core="0") as db: ... db.url, db.psql("select 1")`.
Nothing listens on the network: only the unix socket in the temporary directory.
"""
import argparse
import atexit
import glob
import os
import pwd
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.dont_write_bytecode = True
from fortunes import FORTUNES  # noqa: E402

DB_NAME = "hello_world"
DB_USER = "benchmarkdbuser"
WORLD_ROWS = 10000
DEFAULT_MAX_CONNECTIONS = 300  # the peers' pools, the verifier, pgbench at 256 clients


def pg_bindir():
    """Debian keeps initdb and pg_ctl under /usr/lib/postgresql/VER/bin, off PATH."""
    for cand in ([os.environ["PG_BINDIR"]] if os.environ.get("PG_BINDIR") else []) + \
            sorted(glob.glob("/usr/lib/postgresql/15/bin")) + \
            sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True):
        if os.path.exists(os.path.join(cand, "initdb")):
            return cand
    try:
        out = subprocess.run(["pg_config", "--bindir"], capture_output=True, text=True, timeout=10)
        cand = out.stdout.strip()
        if os.path.exists(os.path.join(cand, "initdb")):
            return cand
    except OSError:
        pass
    return None


class PgError(RuntimeError):
    pass


class PgServer:
    """One throwaway server. start() fills it; stop() is safe to call twice."""

    def __init__(self, core=None, max_connections=DEFAULT_MAX_CONNECTIONS, log=None, seed=None):
        self.core = core
        self.max_connections = max_connections
        self.bindir = pg_bindir()
        self.dir = None
        self.log = log
        self.seed = seed
        self.postmaster_pid = None
        self._started = False

    # -- paths and URLs -------------------------------------------------------

    @property
    def socket_dir(self):
        return self.dir

    @property
    def url(self):
        return "postgresql://%s@/%s?host=%s" % (DB_USER, DB_NAME, self.dir)

    def env(self):
        return {"DATABASE_URL": self.url, "PGHOST": self.dir, "PGUSER": DB_USER,
                "PGDATABASE": DB_NAME, "PGPORT": "5432"}

    # -- lifecycle ------------------------------------------------------------

    def _as_postgres(self, argv, **kw):
        if os.getuid() == 0:
            argv = ["runuser", "-u", "postgres", "--"] + argv
        if self.core is not None:
            argv = ["taskset", "-c", str(self.core)] + argv
        return subprocess.run(argv, capture_output=True, text=True, **kw)

    def start(self):
        if self.bindir is None:
            raise PgError("PostgreSQL's initdb not found (Debian: apt-get install postgresql "
                          "postgresql-contrib)")
        # Short: a unix socket path is limited to 107 bytes.
        self.dir = tempfile.mkdtemp(prefix="tfbpg.", dir="/tmp")
        os.chmod(self.dir, 0o755)
        if os.getuid() == 0:
            pw = pwd.getpwnam("postgres")
            os.chown(self.dir, pw.pw_uid, pw.pw_gid)
        data = os.path.join(self.dir, "data")
        self.log = self.log or os.path.join(self.dir, "server.log")
        r = self._as_postgres([os.path.join(self.bindir, "initdb"), "-D", data, "-A", "trust",
                               "-U", "postgres", "--no-sync", "-E", "UTF8", "--locale=C"],
                              timeout=120)
        if r.returncode != 0:
            raise PgError("initdb failed: %s" % (r.stderr.strip() or r.stdout.strip())[-400:])
        opts = " ".join([
            "-k %s" % self.dir, "-c listen_addresses=''", "-c fsync=off",
            "-c synchronous_commit=off", "-c full_page_writes=off",
            "-c max_connections=%d" % self.max_connections, "-c shared_buffers=256MB",
            "-c shared_preload_libraries=pg_stat_statements",
            "-c pg_stat_statements.max=10000", "-c pg_stat_statements.track=top",
            "-c log_min_messages=warning"])
        logf = self.log
        if os.getuid() == 0 and not os.path.exists(logf):
            open(logf, "a").close()
            pw = pwd.getpwnam("postgres")
            os.chown(logf, pw.pw_uid, pw.pw_gid)
        self._started = True  # from here on stop() has something to stop
        r = self._as_postgres([os.path.join(self.bindir, "pg_ctl"), "-D", data, "-l", logf,
                               "-w", "-t", "60", "-o", opts, "start"], timeout=90)
        self._read_pid()
        if r.returncode != 0:
            tail = ""
            try:
                with open(logf) as f:
                    tail = f.read()[-600:]
            except OSError:
                pass
            raise PgError("pg_ctl start failed: %s %s" % (r.stderr.strip()[-300:], tail))
        self._fill()
        return self

    def _read_pid(self):
        try:
            with open(os.path.join(self.dir, "data", "postmaster.pid")) as f:
                self.postmaster_pid = int(f.readline().strip())
        except (OSError, ValueError):
            pass

    def stop(self):
        if not self._started:
            self._cleanup_dir()
            return
        self._started = False
        data = os.path.join(self.dir, "data")
        try:
            self._as_postgres([os.path.join(self.bindir, "pg_ctl"), "-D", data, "-m", "fast",
                               "-w", "-t", "20", "stop"], timeout=30)
        except (OSError, subprocess.TimeoutExpired):
            pass
        # Whatever is left (pg_ctl failed, a backend hung): the postmaster is the
        # leader of its own session (pg_ctl calls setsid), so its group goes too.
        if self.postmaster_pid and _alive(self.postmaster_pid):
            for sig in (signal.SIGQUIT, signal.SIGKILL):
                try:
                    os.killpg(self.postmaster_pid, sig)
                except (ProcessLookupError, PermissionError):
                    try:
                        os.kill(self.postmaster_pid, sig)
                    except (ProcessLookupError, PermissionError):
                        break
                for _ in range(40):
                    if not _alive(self.postmaster_pid):
                        break
                    time.sleep(0.05)
        self._cleanup_dir()

    def _cleanup_dir(self):
        if self.dir and os.path.isdir(self.dir) and not os.environ.get("TFB_KEEP_PGDIR"):
            shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self):
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc):
        self.stop()
        return False

    # -- queries --------------------------------------------------------------

    def psql(self, sql, user=DB_USER, db=DB_NAME, timeout=60):
        """Run sql through psql over the socket; returns stdout (tuples only, | separated)."""
        r = subprocess.run(["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-At", "-h", self.dir,
                            "-U", user, "-d", db, "-c", sql], capture_output=True, text=True,
                           timeout=timeout)
        if r.returncode != 0:
            raise PgError("psql: %s" % r.stderr.strip()[-400:])
        return r.stdout

    def psql_script(self, script, user="postgres", db="postgres", timeout=120):
        r = subprocess.run(["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", self.dir, "-U",
                            user, "-d", db], input=script, capture_output=True, text=True,
                           timeout=timeout)
        if r.returncode != 0:
            raise PgError("psql: %s" % r.stderr.strip()[-400:])
        return r.stdout

    def _fill(self):
        self.psql_script("CREATE ROLE %s LOGIN PASSWORD 'benchmarkdbpass';\n"
                         "CREATE DATABASE %s OWNER %s ENCODING 'UTF8' TEMPLATE template0;\n"
                         % (DB_USER, DB_NAME, DB_USER))
        rnd = random.Random(self.seed)
        worlds = ",\n".join("(%d,%d)" % (i, rnd.randint(1, WORLD_ROWS))
                            for i in range(1, WORLD_ROWS + 1))
        fortunes = ",\n".join("(%d,%s)" % (i, sql_literal(m)) for i, m in FORTUNES)
        # Unquoted names fold to lower case: World is world, randomNumber is
        # randomnumber, and queries may spell them either way.
        self.psql_script(
            "CREATE EXTENSION IF NOT EXISTS pg_stat_statements;\n"
            "CREATE TABLE World (id integer NOT NULL, randomNumber integer NOT NULL DEFAULT 0,"
            " PRIMARY KEY (id));\n"
            "CREATE TABLE Fortune (id integer NOT NULL, message varchar(2048) NOT NULL,"
            " PRIMARY KEY (id));\n"
            "INSERT INTO World (id, randomNumber) VALUES\n%s;\n"
            "INSERT INTO Fortune (id, message) VALUES\n%s;\n"
            "ALTER TABLE World OWNER TO %s;\nALTER TABLE Fortune OWNER TO %s;\n"
            "GRANT EXECUTE ON FUNCTION pg_stat_statements_reset(oid, oid, bigint) TO %s;\n"
            "GRANT pg_read_all_stats TO %s;\n"
            "VACUUM ANALYZE World;\nVACUUM ANALYZE Fortune;\n"
            % (worlds, fortunes, DB_USER, DB_USER, DB_USER, DB_USER),
            user="postgres", db=DB_NAME)

    # -- CPU accounting -------------------------------------------------------

    def cpu_ticks(self):
        """utime + stime of the postmaster and every live child (the backends),
        in clock ticks; None when the server is not running."""
        if not self.postmaster_pid:
            return None
        total, found = 0, False
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                with open("/proc/%s/stat" % entry) as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except (OSError, IndexError):
                continue
            pid, ppid = int(entry), int(fields[1])
            if pid == self.postmaster_pid or ppid == self.postmaster_pid:
                # utime, stime, and for the postmaster the reaped children's too
                total += int(fields[11]) + int(fields[12])
                if pid == self.postmaster_pid:
                    total += int(fields[13]) + int(fields[14])
                found = True
        return total if found else None


def sql_literal(s):
    return "'" + s.replace("'", "''") + "'"


def _alive(pid):
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                 usage="%(prog)s [--core N] [--max-connections N] "
                                       "(--check | -- CMD [ARGS...])")
    ap.add_argument("--core", default=None, help="pin the server to this CPU (taskset)")
    ap.add_argument("--max-connections", type=int, default=DEFAULT_MAX_CONNECTIONS)
    ap.add_argument("--check", action="store_true", help="start, fill, print counts, stop")
    ap.add_argument("cmd", nargs=argparse.REMAINDER)
    args = ap.parse_args()
    cmd = args.cmd[1:] if args.cmd[:1] == ["--"] else args.cmd
    if not args.check and not cmd:
        ap.error("give a command after --, or --check")
    db = PgServer(core=args.core, max_connections=args.max_connections)
    atexit.register(db.stop)
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, lambda s, f: sys.exit(128 + s))
    t0 = time.time()
    try:
        db.start()
    except PgError as e:
        print("pgdb: %s" % e, file=sys.stderr)
        return 1
    print("pgdb: PostgreSQL up in %.1f s, socket in %s (DATABASE_URL=%s)"
          % (time.time() - t0, db.dir, db.url), file=sys.stderr)
    if args.check:
        print(db.psql("SELECT 'world', count(*), min(id), max(id), min(randomNumber), "
                      "max(randomNumber) FROM World UNION ALL "
                      "SELECT 'fortune', count(*), min(id), max(id), 0, 0 FROM Fortune"), end="")
        return 0
    env = dict(os.environ, **db.env())
    p = subprocess.Popen(cmd, env=env)
    try:
        return p.wait()
    finally:
        if p.poll() is None:
            p.terminate()
            try:
                p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                p.kill()


if __name__ == "__main__":
    sys.exit(main())
