#!/usr/bin/python3
"""make profile: what one notification costs the httpd child, in counts.

Requests per second move by +-10 % on a shared machine; what a request costs
does not: this starts the bench's server (bench.py's configuration: one
event-MPM child of 64 threads, a pooled connection each), drives each
scenario with wrk as make bench does, and prints, per request, for the
child process(es) only:

- CPU: task-clock from `perf stat` (user and system from /proc/PID/stat),
  in a run of its own with software counters only; beside it the busy
  fraction of the whole machine's CPUs meanwhile (wrk, and whatever else
  runs: below 1, the server waited for something else than CPU);
- context switches (perf's context-switches), the cost that does not show
  as a system call of its own;
- system calls: the total and each kind (perf stat on the raw_syscalls and
  syscalls:sys_enter_* tracepoints, in a second run: they slow each call);
- fdatasync calls (the commits, and the checkpoints' syncs).

With --strace, one more run of each scenario under `strace -f -y` sorts the
system calls by cause (the file or socket they act on: the .htaccess walk,
the password file, the database, its WAL, its -shm locks...).  strace slows
the server a lot, so its own counts per request differ a little (a slower
server groups more notifications per commit): its table is for the causes,
perf's for the counts.

Needs root (perf on another user's process, the tracepoints) and the
Debian packages linux-perf and strace (tools/deps.sh profile).

  bench/profile.py [--seconds 4] [--connections 16] [--strace]
                   [--scenarios static,lookup,full,webhook,dup]
                   [--layout one-child|stock-event|stock-prefork]
                   [--variant LABEL=MODULE[:SQL] ... [--rounds N]]

--variant compares builds (or one more DBDInitSQL statement) side by side:
a server each, measured in turn, A, B, A, B..., so that the machine's drift
weighs on all alike; e.g. the module of main against this tree's:

  bench/profile.py --variant main=/tmp/main.so --variant new=build/mod_k2notify.so \\
      --rounds 3 --scenarios lookup,full
"""
import argparse
import collections
import os
import re
import subprocess
import sys
import tempfile
import time
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import bench  # noqa: E402
import conftest  # noqa: E402
from conftest import STOCK_LAYOUTS  # noqa: E402

SCENARIOS = {   # name: (path, wrk mode, label)
    "static": ("/static/reply.json", "same", "static JSON, same auth"),
    "lookup": ("/k2/lookup", "distinct", "account lookup only"),
    "full": ("/k2/notify", "distinct", "full path, SQLite"),
    "webhook": ("/k2/webhook", "webhook", "K2 Connect full path"),
    "dup": ("/k2/notify", "same", "duplicate (resend)"),
}
LAYOUTS = {     # name: (mpm, MPM lines)
    "one-child": ("event", None),           # bench.py's MPM
    "stock-event": ("event", STOCK_LAYOUTS["stock-event"][1]
                    + bench.SAMPLE_POOL),
    "stock-prefork": ("prefork", STOCK_LAYOUTS["stock-prefork"][1]),
}
SYSCALLS = ["futex", "read", "write", "writev", "pread64", "pwrite64",
            "fcntl", "openat", "newfstatat", "close", "epoll_wait",
            "epoll_ctl", "fdatasync"]


def children(s):
    with open(os.path.join(s.dir, "httpd.pid")) as f:
        ppid = f.read().strip()
    out = subprocess.run(["ps", "-o", "pid=", "--ppid", ppid],
                         capture_output=True, text=True).stdout
    return [int(p) for p in out.split()]


def proc_cpu(pids):
    """(user, system) seconds of the processes, all their threads."""
    hz = os.sysconf("SC_CLK_TCK")
    u = s = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except FileNotFoundError:
            continue
        u += int(fields[11])
        s += int(fields[12])
    return u / hz, s / hz


def served(s):
    return len(s.access_lines())


def run_wrk(s, name, prefix, seconds, connections):
    path, mode, _ = SCENARIOS[name]
    extra = None
    if mode == "webhook":
        extra = bench.webhooks_file(s.dir, prefix, seconds * 20000)
    return bench.wrk(s.base + path, mode, prefix, seconds=seconds,
                     connections=connections, extra=extra)


def perf_stat(s, name, prefix, args, events):
    """One wrk run under perf stat -e events on the children: (requests the
    server answered meanwhile, wrk's result, {event: count}, (user, system)
    seconds from /proc, the machine's busy fraction)."""
    pids = children(s)
    with tempfile.NamedTemporaryFile("r", suffix=".perf") as out:
        perf = subprocess.Popen(
            ["perf", "stat", "-x,", "-o", out.name, "-e", ",".join(events),
             "-p", ",".join(map(str, pids))],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(0.3)                 # attached
        n0, cpu0, busy0 = served(s), proc_cpu(pids), machine_cpu()
        r = run_wrk(s, name, prefix, args.seconds, args.connections)
        time.sleep(0.3)                 # replies wrk stopped waiting for
        n1, cpu1, busy1 = served(s), proc_cpu(pids), machine_cpu()
        perf.send_signal(2)
        perf.wait()
        counts = {}
        for line in out.read().splitlines():
            f = line.split(",")
            if len(f) > 2 and not line.startswith("#"):
                try:
                    counts[f[2]] = float(f[0])
                except ValueError:
                    counts[f[2]] = float("nan")
    busy = ((busy1[0] - busy0[0]) / (busy1[1] - busy0[1])
            if busy1[1] > busy0[1] else float("nan"))
    return (n1 - n0, r, counts,
            (cpu1[0] - cpu0[0], cpu1[1] - cpu0[1]), busy)


def machine_cpu():
    """(busy, total) jiffies of the whole machine, from /proc/stat."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    idle = v[3] + v[4]                  # idle, iowait
    return sum(v) - idle, sum(v)


def measure(s, name, run, args):
    """Two wrk runs after a warm-up: CPU with software counters only (the
    syscall tracepoints cost each call a little), then the calls."""
    prefix = f"{run}-{name}"
    # a warm-up run first: pools, caches, the MPM's threads or children
    run_wrk(s, name, prefix + "w", 2, args.connections)
    n, r, c, (user, system), busy = perf_stat(
        s, name, prefix + "c", args,
        ["task-clock", "context-switches", "page-faults"])
    res = {"requests": n, "rps": r["rps"], "p99_ms": r["p99_us"] / 1000,
           "non2xx": r["non2xx"], "other": r["other"],
           "cpu_us": c.get("task-clock", 0) * 1000 / n,     # msec
           "user_us": user * 1e6 / n, "sys_us": system * 1e6 / n,
           "switches": c.get("context-switches", 0) / n,
           "faults": c.get("page-faults", 0) / n, "busy": busy}
    n, r, c, _, _ = perf_stat(
        s, name, prefix, args, ["raw_syscalls:sys_enter"]
        + [f"syscalls:sys_enter_{c}" for c in SYSCALLS])
    res["requests"] += n
    res["non2xx"] += r["non2xx"]
    res["other"] += r["other"]
    res["syscalls"] = c.get("raw_syscalls:sys_enter", 0) / n
    for k in SYSCALLS:
        res[k] = c.get(f"syscalls:sys_enter_{k}", 0) / n
    if res["fdatasync"]:
        res["per_commit"] = 1 / res["fdatasync"]
    return res


# -- the causes, from strace -f -y ------------------------------------------

def cause(name, rest):
    """What a system call (name, its arguments as strace printed them) was
    for."""
    fd = re.match(r"(-?\d+)<([^>]*)>", rest)
    target = fd.group(2) if fd else ""
    if name in ("openat", "newfstatat") and rest.startswith("AT_FDCWD"):
        path = re.search(r'"([^"]*)"', rest).group(1)
        if "htpasswd" in path:
            return "auth: password file"
        if path.endswith(".htaccess"):
            return "file-system walk: .htaccess look-ups"
        return "file-system walk: stat of each directory"
    if "htpasswd" in target:
        return "auth: password file"
    if target.endswith("-wal"):
        return f"sqlite: WAL {name}"
    if target.endswith("-shm"):
        return "sqlite: -shm locks (fcntl)"
    if target.endswith(".db"):
        return f"sqlite: database {name}"
    if target.startswith(("socket:", "TCP")):
        return f"socket: {name}"
    if "access.log" in target:
        return "access log: write"
    if "error.log" in target:
        return "error log: write"
    if name == "futex":
        return "futex: " + ("wake" if "WAKE" in rest else "wait")
    if "eventpoll" in target:
        return f"MPM: {name}"
    if target.endswith(".so") or "mod_k2notify" in target:
        return "other"
    return f"other: {name}"


def strace_causes(s, name, run, args):
    prefix = f"{run}-{name}-st"
    run_wrk(s, name, prefix + "w", 1, args.connections)
    pids = children(s)
    with tempfile.TemporaryDirectory() as d:
        out = os.path.join(d, "trace")
        st = subprocess.Popen(["strace", "-f", "-qq", "-y", "-o", out]
                              + [a for p in pids for a in ("-p", str(p))],
                              stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
        time.sleep(1)
        n0 = served(s)
        run_wrk(s, name, prefix, args.seconds, args.connections)
        time.sleep(0.5)
        n1 = served(s)
        st.terminate()
        st.wait()
        c = collections.Counter()
        with open(out, errors="replace") as f:
            for line in f:
                m = re.match(r"\d+ (\w+)\((.*)", line)
                if m:
                    c[cause(*m.groups())] += 1
    n = n1 - n0
    return {k: v / n for k, v in c.items()}, n


def table(title, columns, results):
    """One column per (label, result)."""
    print(f"\n{title}\n")
    print(f"{'':28}" + "".join(f"{c:>12}" for c in columns))
    rows = [("requests measured", "requests", "{:12.0f}"),
            ("req/s (not a benchmark)", "rps", "{:12.0f}"),
            ("machine's CPU busy", "busy", "{:12.2f}"),
            ("CPU us (task-clock)", "cpu_us", "{:12.1f}"),
            ("  user us", "user_us", "{:12.1f}"),
            ("  system us", "sys_us", "{:12.1f}"),
            ("context switches", "switches", "{:12.2f}"),
            ("page faults", "faults", "{:12.2f}"),
            ("system calls", "syscalls", "{:12.2f}")]
    rows += [(f"  {c}", c, "{:12.2f}") for c in SYSCALLS]
    rows += [("notifications per fdatasync", "per_commit", "{:12.1f}")]
    for label, key, fmt in rows:
        print(f"{label:28}" + "".join(
            fmt.format(r[key]) if key in r else f"{'-':>12}" for r in results))


def average(runs):
    """The counts of several runs of one scenario, weighted by requests."""
    n = sum(r["requests"] for r in runs)
    out = {"requests": n}
    for k in runs[0]:
        if k in ("requests", "non2xx", "other"):
            out[k] = sum(r[k] for r in runs)
        elif k == "per_commit":
            f = sum(r["fdatasync"] * r["requests"] for r in runs) / n
            if f:
                out[k] = 1 / f
        elif k in ("rps", "p99_ms"):
            out[k] = sum(r[k] for r in runs) / len(runs)
        else:
            out[k] = sum(r[k] * r["requests"] for r in runs) / n
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seconds", type=int, default=4)
    ap.add_argument("--connections", type=int, default=16)
    ap.add_argument("--scenarios", default="static,lookup,full,webhook")
    ap.add_argument("--layout", default="one-child", choices=sorted(LAYOUTS))
    ap.add_argument("--strace", action="store_true")
    ap.add_argument("--variant", action="append", metavar="LABEL=MODULE[:SQL]",
                    help="a server loading MODULE (and running SQL as one more "
                    "DBDInitSQL); several are measured in turn (A, B, A, "
                    "B...), --rounds times; default: build/mod_k2notify.so")
    ap.add_argument("--rounds", type=int, default=1)
    args = ap.parse_args()
    names = args.scenarios.split(",")
    mpm, lines = LAYOUTS[args.layout]
    variants = []
    for v in args.variant or [f"module={conftest.MODULE}"]:
        label, _, rest = v.partition("=")
        module, _, sql = rest.partition(":")
        variants.append((label, os.path.abspath(module), sql))
    servers = []
    for i, (label, module, sql) in enumerate(variants):
        conftest.MODULE = module
        servers.append(bench.server(
            f"profile{i}", bench.RECORD, mpm=mpm, mpm_lines=lines,
            dbd_extra=f'DBDInitSQL "{sql}"\n' if sql else ""))
    run = uuid.uuid4().hex[:8]
    results = collections.defaultdict(list)
    causes = {}
    bad = []
    try:
        for s in servers:
            s.start()
        for name in names:
            for k in range(args.rounds):
                for i, s in enumerate(servers):
                    results[(name, i)].append(
                        measure(s, name, f"{run}-{i}-{k}", args))
        if args.strace:
            for name in names:
                for i, s in enumerate(servers):
                    causes[(name, i)] = strace_causes(s, name, f"{run}-{i}", args)
        for s in servers:
            bad += s.unexpected_errors()
    finally:
        for s in servers:
            s.stop()
            s.cleanup()

    avg = {k: average(v) for k, v in results.items()}
    how = (f"{args.layout}; wrk -t1 -c{args.connections} -d{args.seconds}s"
           + (f", {args.rounds} rounds alternating" if args.rounds > 1 else "")
           + "; perf stat")
    labels = [label for label, _, _ in variants]
    if len(variants) == 1:
        table(f"per request, the httpd child(ren) only ({how}):", names,
              [avg[(n, 0)] for n in names])
    else:
        for n in names:
            table(f"{n}: per request, the httpd child(ren) only ({how}):",
                  labels, [avg[(n, i)] for i in range(len(variants))])
    if causes:
        cols = [(n, i) for n in names for i in range(len(variants))]
        heads = [n if len(variants) == 1 else f"{n}:{labels[i]}"
                 for n, i in cols]
        print("\nsystem calls per request by cause (strace -f -y, a run "
              "each; strace slows the server, see above):\n")
        print(f"{'':44}" + "".join(f"{h:>14}" for h in heads))
        keys = sorted({k for c, _ in causes.values() for k in c})
        for k in keys:
            print(f"{k:44}" + "".join(f"{causes[c][0].get(k, 0):14.2f}"
                                      for c in cols))
        print(f"{'total':44}" + "".join(f"{sum(causes[c][0].values()):14.2f}"
                                         for c in cols))
        print(f"{'(requests traced)':44}" + "".join(f"{causes[c][1]:14d}"
                                                     for c in cols))
    failed = [f"{n} ({labels[i]}): {r['non2xx']} non-2xx, {r['other']} other"
              for (n, i), r in avg.items() if r["non2xx"] or r["other"]]
    if bad:
        failed.append("error log:\n" + "\n".join(bad[:5]))
    if failed:
        print("\nFAILED:\n  " + "\n  ".join(failed))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
