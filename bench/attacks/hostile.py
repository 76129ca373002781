"""hostile.py -- what bench/attacks/run and bench/soak/run share.

Building and starting the demo (in a process group of its own, pinned to a
CPU, optionally under a lower open-files limit), a raw HTTP/1.1 client
(sockets only, so that a test can stop at any byte), the demo's /metrics
parsed, and what /proc says about a process (bench/lib/procinfo.py, which
bench/lib/harness.py uses too). Python 3 standard library only.
"""
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "bench", "lib"))
from procinfo import fd_kinds, open_fds, rss_kib, threads  # noqa: E402,F401  (re-exported)
HOST = "127.0.0.1"
RELEASE_DEMO = os.path.join(ROOT, "build", "release", "examples", "canteen-demo")


def log(msg):
    print(msg, flush=True)


# ----------------------------------------------------------------------------
# Building and running the demo
# ----------------------------------------------------------------------------


def build_release(logfile):
    """Build the demo in Release in build/release, as bench/run does. Returns
    the binary's path; raises RuntimeError with the log's tail on failure."""
    os.makedirs(os.path.dirname(logfile), exist_ok=True)
    jobs = str(min(2, os.cpu_count() or 1))
    with open(logfile, "wb") as out:
        for argv in (["cmake", "-S", ROOT, "-B", os.path.join(ROOT, "build", "release"),
                      "-DCMAKE_BUILD_TYPE=Release"],
                     ["cmake", "--build", os.path.join(ROOT, "build", "release"), "--target",
                      "canteen-demo", "-j" + jobs]):
            if subprocess.call(argv, stdout=out, stderr=subprocess.STDOUT) != 0:
                with open(logfile, "rb") as f:
                    tail = f.read()[-2000:].decode("utf-8", "replace")
                raise RuntimeError("build failed (%s):\n%s" % (logfile, tail))
    return RELEASE_DEMO


def pin_self(core):
    """Run the calling process (the clients) on `core`, if it exists."""
    try:
        if int(core) < (os.cpu_count() or 1):
            os.sched_setaffinity(0, {int(core)})
    except (OSError, ValueError, AttributeError):
        pass


def raise_nofile():
    """The clients' own open-files limit, up to the hard limit."""
    import resource
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY:
        hard = 1 << 20
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


SERVING = re.compile(rb"serving on http://[^:]+:(\d+)")


class Demo:
    """One canteen-demo on 127.0.0.1, a free port, in its own process group.

    core: the CPU it is pinned to (None: not pinned); nofile: its open-files
    limit (soft and hard, through prlimit); env: added to the environment."""

    def __init__(self, binary, args=(), logfile=None, core="0", nofile=None, env=None):
        self.binary = binary
        self.logfile = logfile
        argv = [binary, "--host", HOST, "--port", "0"] + list(args)
        if nofile:
            argv = ["prlimit", "--nofile=%d:%d" % (nofile, nofile), "--"] + argv
        if core is not None and int(core) < (os.cpu_count() or 1):
            argv = ["taskset", "-c", str(core)] + argv
        self.argv = argv
        full_env = dict(os.environ)
        full_env.update(env or {})
        self._out = open(logfile, "wb") if logfile else subprocess.DEVNULL
        self.proc = subprocess.Popen(argv, stdout=self._out, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, env=full_env,
                                     start_new_session=True)
        self.port = None
        self.returncode = None

    @property
    def pid(self):
        # taskset and prlimit exec the demo: the same pid
        return self.proc.pid

    def wait_ready(self, timeout=30.0):
        """Wait for the 'serving on' line and a 200 from /health. Returns None
        or what went wrong."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return "exited with status %s before serving" % self.proc.returncode
            if self.port is None and self.logfile:
                with open(self.logfile, "rb") as f:
                    m = SERVING.search(f.read())
                if m:
                    self.port = int(m.group(1))
            if self.port is not None:
                r = request(self.port, "GET", "/health", timeout=2.0)
                if r.status == 200:
                    return None
            time.sleep(0.05)
        return "not serving /health after %.0f s" % timeout

    def alive(self):
        return self.proc.poll() is None

    def stop(self, grace=10.0):
        """SIGTERM (a graceful stop), SIGKILL after `grace` s. Returns the exit
        status (negative: the signal that ended it)."""
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                pass
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)  # anything left in the group
        except (ProcessLookupError, PermissionError):
            pass
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass
        if self._out is not subprocess.DEVNULL:
            self._out.close()
            self._out = subprocess.DEVNULL
        self.returncode = self.proc.returncode
        return self.returncode

    def log_text(self):
        if not self.logfile:
            return ""
        try:
            with open(self.logfile, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""


def demo_help(binary):
    try:
        out = subprocess.run([binary, "--help"], capture_output=True, text=True, timeout=10)
        return out.stdout + out.stderr
    except (OSError, subprocess.TimeoutExpired):
        return ""


# ----------------------------------------------------------------------------
# A raw HTTP/1.1 client
# ----------------------------------------------------------------------------


class Response:
    __slots__ = ("status", "headers", "body", "elapsed", "error")

    def __init__(self, status=None, headers=None, body=b"", elapsed=0.0, error=None):
        self.status = status
        self.headers = headers or {}
        self.body = body
        self.elapsed = elapsed
        self.error = error  # None, or what happened instead of a response

    def __repr__(self):
        return "Response(%s, %.1f ms%s)" % (self.status, self.elapsed * 1000,
                                            ", " + self.error if self.error else "")


class Closed(Exception):
    """The connection ended before a whole response: 'reset', 'eof', 'timeout'."""


def connect(port, timeout=5.0, rcvbuf=None, linger0=False):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if rcvbuf:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    if linger0:
        set_linger0(s)
    s.settimeout(timeout)
    try:
        s.connect((HOST, port))
    except OSError:
        s.close()
        raise
    return s


def unread_bytes(s):
    """Bytes the kernel holds for socket s that the client has not read
    (FIONREAD), or None."""
    import fcntl
    import struct
    import termios
    try:
        return struct.unpack("i", fcntl.ioctl(s.fileno(), termios.FIONREAD, b"\0\0\0\0"))[0]
    except OSError:
        return None


def set_linger0(s):
    """close() then sends a RST instead of a FIN."""
    import struct
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


def build(method, path, body=None, headers=None, close=False):
    h = ["%s %s HTTP/1.1" % (method, path), "Host: %s" % HOST]
    for k, v in (headers or {}).items():
        h.append("%s: %s" % (k, v))
    if body is not None:
        h.append("Content-Length: %d" % len(body))
    if close:
        h.append("Connection: close")
    head = ("\r\n".join(h) + "\r\n\r\n").encode()
    return head + (body or b"")


class Conn:
    """A keep-alive connection: send requests, read whole responses."""

    def __init__(self, port, timeout=10.0, rcvbuf=None):
        self.port = port
        self.sock = connect(port, timeout=timeout, rcvbuf=rcvbuf)
        self.buf = b""

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def _recv(self, deadline):
        left = deadline - time.monotonic()
        if left <= 0:
            raise Closed("timeout")
        self.sock.settimeout(left)
        try:
            d = self.sock.recv(262144)
        except socket.timeout:
            raise Closed("timeout")
        except ConnectionResetError:
            raise Closed("reset")
        except OSError as e:
            raise Closed("error: %s" % e)
        if not d:
            raise Closed("eof")
        self.buf += d

    def read_response(self, deadline, head_only=False):
        """(status, headers, body) of the next response; raises Closed."""
        while b"\r\n\r\n" not in self.buf:
            self._recv(deadline)
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        parts = lines[0].split(" ", 2)
        status = int(parts[1])
        headers = {}
        for line in lines[1:]:
            k, _, v = line.partition(":")
            headers[k.strip().lower()] = v.strip()
        if head_only:
            return status, headers, b""
        if "content-length" in headers:
            n = int(headers["content-length"])
            while len(self.buf) < n:
                self._recv(deadline)
            body, self.buf = self.buf[:n], self.buf[n:]
        elif headers.get("transfer-encoding", "").lower() == "chunked":
            body = self._read_chunked(deadline)
        elif status in (204, 304) or 100 <= status < 200:
            body = b""
        else:  # until the connection ends
            try:
                while True:
                    self._recv(deadline)
            except Closed as e:
                if str(e) != "eof":
                    raise
            body, self.buf = self.buf, b""
        return status, headers, body

    def _read_chunked(self, deadline):
        out = []
        while True:
            while b"\r\n" not in self.buf:
                self._recv(deadline)
            line, self.buf = self.buf.split(b"\r\n", 1)
            size = int(line.split(b";")[0].strip() or b"0", 16)
            if size == 0:
                while b"\r\n" not in self.buf:  # trailers: none expected
                    self._recv(deadline)
                _, self.buf = self.buf.split(b"\r\n", 1)
                return b"".join(out)
            while len(self.buf) < size + 2:
                self._recv(deadline)
            out.append(self.buf[:size])
            self.buf = self.buf[size + 2:]

    def request(self, method, path, body=None, headers=None, timeout=10.0):
        """A Response; its error says why there is none."""
        t0 = time.monotonic()
        try:
            self.sock.sendall(build(method, path, body, headers))
            st, h, b = self.read_response(t0 + timeout)
            return Response(st, h, b, time.monotonic() - t0)
        except Closed as e:
            return Response(None, elapsed=time.monotonic() - t0, error=str(e))
        except OSError as e:
            kind = "reset" if isinstance(e, (ConnectionResetError, BrokenPipeError)) else str(e)
            return Response(None, elapsed=time.monotonic() - t0, error=kind)


def request(port, method, path, body=None, headers=None, timeout=10.0):
    """One request on a new connection (closed after it); timing includes
    the connect."""
    t0 = time.monotonic()
    try:
        c = Conn(port, timeout=timeout)
    except OSError as e:
        return Response(None, elapsed=time.monotonic() - t0,
                        error="connect: %s" % (e.strerror or e))
    try:
        r = c.request(method, path, body, headers, timeout=max(0.01, timeout -
                                                             (time.monotonic() - t0)))
        r.elapsed = time.monotonic() - t0
        return r
    finally:
        c.close()


# ----------------------------------------------------------------------------
# /metrics
# ----------------------------------------------------------------------------

METRIC = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)")


def metrics(port, timeout=5.0):
    """{'name' or 'name{labels}': float} from GET /metrics, or {} if it fails."""
    r = request(port, "GET", "/metrics", timeout=timeout)
    return parse_metrics(r.body) if r.status == 200 else {}


def parse_metrics(body):
    """{'name' or 'name{labels}': float} from a Prometheus text body."""
    out = {}
    for line in body.decode("utf-8", "replace").splitlines():
        if line.startswith("#"):
            continue
        m = METRIC.match(line)
        if m:
            try:
                out[m.group(1) + (m.group(2) or "")] = float(m.group(3))
            except ValueError:
                pass
    return out


# ----------------------------------------------------------------------------
# Figures
# ----------------------------------------------------------------------------


def percentile(xs, p):
    """Nearest-rank percentile of xs (None if empty)."""
    if not xs:
        return None
    s = sorted(xs)
    k = max(0, min(len(s) - 1, int(round(p / 100.0 * len(s) + 0.5)) - 1))
    return s[k]


def ms(x):
    if x is None:
        return "-"
    return "%.1f ms" % (x * 1000) if x < 1 else "%.2f s" % x


class Sampler(threading.Thread):
    """Sends `path` on one keep-alive connection again and again (a pause of
    `gap` s between answers) until stop(); keeps each answer's latency."""

    def __init__(self, port, path, gap=0.01, timeout=30.0):
        super().__init__(daemon=True)
        self.port, self.path, self.gap, self.timeout = port, path, gap, timeout
        self.lat, self.errors, self.statuses = [], [], {}
        self._halt = threading.Event()
        self.conn = None

    def run(self):
        while not self._halt.is_set():
            if self.conn is None:
                try:
                    self.conn = Conn(self.port, timeout=self.timeout)
                except OSError as e:
                    self.errors.append("connect: %s" % e)
                    self._halt.wait(0.1)
                    continue
            r = self.conn.request("GET", self.path, timeout=self.timeout)
            if r.status is None:
                self.errors.append(r.error)
                self.conn.close()
                self.conn = None
            else:
                self.lat.append(r.elapsed)
                self.statuses[r.status] = self.statuses.get(r.status, 0) + 1
                if r.headers.get("connection", "").lower() == "close":
                    self.conn.close()
                    self.conn = None
            self._halt.wait(self.gap)
        if self.conn:
            self.conn.close()

    def stop(self):
        self._halt.set()
        self.join(self.timeout + 5)


class OpenLoopProbe:
    """Starts one request on a new connection every `every` s (each in a thread
    of its own, so that a slow answer does not delay the next probe), for the
    time between start() and stop(); wait() collects them."""

    def __init__(self, port, path, every=0.1, timeout=20.0):
        self.port, self.path, self.every, self.timeout = port, path, every, timeout
        self.results = []
        self._threads = []
        self._halt = threading.Event()
        self._runner = None
        self._lock = threading.Lock()

    def _one(self):
        r = request(self.port, "GET", self.path, timeout=self.timeout)
        with self._lock:
            self.results.append(r)

    def _loop(self):
        nxt = time.monotonic()
        while not self._halt.is_set():
            t = threading.Thread(target=self._one, daemon=True)
            t.start()
            self._threads.append(t)
            nxt += self.every
            self._halt.wait(max(0.0, nxt - time.monotonic()))

    def start(self):
        self._runner = threading.Thread(target=self._loop, daemon=True)
        self._runner.start()
        return self

    def stop(self):
        self._halt.set()
        self._runner.join()

    def wait(self):
        for t in self._threads:
            t.join(self.timeout + 5)
        return self.results


def summarize(results):
    """(latencies of answers, {status: n}, {error: n})"""
    lat = [r.elapsed for r in results if r.status is not None]
    st, err = {}, {}
    for r in results:
        if r.status is not None:
            st[r.status] = st.get(r.status, 0) + 1
        else:
            err[r.error] = err.get(r.error, 0) + 1
    return lat, st, err


def counts(d):
    return ", ".join("%s x %s" % (n, k) for k, n in sorted(d.items(), key=lambda kv: str(kv[0])))
