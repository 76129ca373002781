"""procinfo.py -- what /proc says about one process: its resident memory,
threads and open file descriptors. Shared by bench/lib/harness.py and
bench/attacks/hostile.py. Linux only, Python 3 standard library only; each
returns None (or an empty dict) once the process is gone.
"""
import os


def rss_kib(pid):
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return None


def threads(pid):
    try:
        return len(os.listdir("/proc/%d/task" % pid))
    except OSError:
        return None


def open_fds(pid):
    try:
        return len(os.listdir("/proc/%d/fd" % pid))
    except OSError:
        return None


def fd_kinds(pid):
    """{'socket': n, 'anon_inode:[eventfd]': n, '/path': n...} of a process."""
    out = {}
    try:
        names = os.listdir("/proc/%d/fd" % pid)
    except OSError:
        return out
    for n in names:
        try:
            t = os.readlink("/proc/%d/fd/%s" % (pid, n))
        except OSError:
            continue
        k = "socket" if t.startswith("socket:") else ("pipe" if t.startswith("pipe:") else t)
        out[k] = out.get(k, 0) + 1
    return out
