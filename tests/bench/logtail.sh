#!/usr/bin/env bash
# Benchmark of the log source, side by side with mtail and GNU grep in one run: not a test,
# it prints figures. Generates LINES lines (default 2 million, 75-100 bytes, 8 workers, 5 %
# failures), then, each over the same file (in the page cache after the first read):
#   mtail:  `mtail --one_shot` with the equivalent program: one regex, the worker and the
#           status captured as labels;
#   grep:   `grep -cE` with the equivalent regex in the C locale (its fastest; the floor:
#           matching and counting, no more);
#   ours:   the release binary with two label captures (worker, status) follows an empty log,
#           the big file is renamed into its place (a rotation, so it is read from its start as
#           a backlog), and /metrics is scraped in a loop until every line is counted.
# Prints lines/s, CPU seconds, peak RSS and the counts each reports (they must agree), the
# ratios against the targets (>= 10x mtail's lines/s, <= 1/4 of its peak RSS, CPU <= 1.5x
# grep's), and our scrape latency (p50/p99/max) while catching up.
#
# Usage: tests/bench/logtail.sh [LINES]     (needs mtail, grep and python3; builds the release
# binary)
# Everything runs on loopback, in a temp dir removed at the end; only processes it started
# are stopped, by PID.
set -euo pipefail
cd "$(dirname "$0")/../.."
lines=${1:-2000000}
command -v mtail >/dev/null || { echo "mtail not found (apt-get install mtail)"; exit 1; }
command -v grep >/dev/null || { echo "grep not found"; exit 1; }
cargo build --release --quiet
bin=$PWD/target/release/widget-exporter
work=$(mktemp -d /tmp/widget-exporter-bench-log.XXXXXX)
trap 'rm -rf "$work"' EXIT

# The README's example line, padded with a request id to 75-100 bytes; every 20th fails.
awk -v n="$lines" 'BEGIN {
  srand(8);
  for (i = 0; i < n; i++) {
    status = (i % 20 == 19) ? "failed" : "ok";
    pad = substr("abcdefghijklmnopqrstuvwxyz0123456789", 1, 6 + (i * 7) % 26);
    printf "2026-12-01T10:00:%02dZ worker-%d widget %d done status=%s took=%dms req=%s\n",
      i % 60, i % 8, i, status, 20 + (i * 13) % 900, pad;
  }
}' >"$work/big.log"

mkdir "$work/progs"
# The equivalent mtail program: one regex, the worker and the status as labels.
cat >"$work/progs/widgets.mtail" <<'EOF'
counter widgets_processed_total by worker, status
counter widgets_failed_total by worker
counter widget_duration_ms_sum by worker, status

/ (worker-\d+) widget \d+ done status=(ok|failed) took=(\d+)ms req=\w+$/ {
  widgets_processed_total[$1][$2]++
  widget_duration_ms_sum[$1][$2] += $3
  $2 == "failed" {
    widgets_failed_total[$1]++
  }
}
EOF

python3 - "$bin" "$work" <<'PY'
import http.client, os, re, subprocess, sys, threading, time

bin_, work = sys.argv[1], sys.argv[2]
big = os.path.join(work, "big.log")
size = os.path.getsize(big)
with open(big, "rb") as f:
    n_lines = sum(1 for _ in f)
print(f"log: {n_lines} lines, {size / 2**20:.1f} MiB, mean {size / n_lines:.1f} bytes/line")

def value(text, name):
    """The sum of every sample of `name`, whatever its labels; None if there is none."""
    found = re.findall(r"^" + re.escape(name) + r"(?:\{[^}]*\})? (\S+)$", text, re.M)
    return sum(int(float(v)) for v in found) if found else None

def child_usage(argv, env=None):
    """Runs argv to its end: wall seconds, CPU seconds, peak RSS (bytes) and its stdout.

    The peak is the child's own VmHWM, sampled until it exits: the children's ru_maxrss would
    also hold this Python process's memory at the moment of the fork."""
    t0 = time.monotonic()
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env)
    out = []
    reader = threading.Thread(target=lambda: out.append(proc.stdout.read()))
    reader.start()
    peak = 0
    while True:
        try:
            status = open(f"/proc/{proc.pid}/status").read()
            m = re.search(r"VmHWM:\s+(\d+) kB", status)
            if m:
                peak = max(peak, int(m.group(1)) * 1024)
        except OSError:
            pass
        pid, code, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            break
        time.sleep(0.005)
    wall = time.monotonic() - t0
    proc.returncode = os.waitstatus_to_exitcode(code)
    reader.join()
    if proc.returncode not in (0,):
        sys.exit(f"{argv[0]} failed with {proc.returncode}")
    return wall, usage.ru_utime + usage.ru_stime, peak, out[0].decode()

# grep, in the C locale (its fastest: no multibyte decoding), as the floor of matching.
regex = r" worker-[0-9]+ widget [0-9]+ done status=(ok|failed) took=[0-9]+ms req=[a-z0-9]+$"
subprocess.run(["cat", big], stdout=subprocess.DEVNULL, check=True)  # into the page cache
gr_wall, gr_cpu, gr_rss, out = child_usage(
    ["grep", "-cE", regex, big], env=dict(os.environ, LC_ALL="C"))
gr = (int(out), None)

# mtail: one shot over the whole file.
mt_wall, mt_cpu, mt_rss, out = child_usage(
    ["mtail", "--progs", os.path.join(work, "progs"), "--logs", big, "--one_shot",
     "--one_shot_format", "prometheus", "--address", "127.0.0.1", "--port", "0"])
mt = (value(out, "widgets_processed_total"), value(out, "widgets_failed_total"))

# Ours: follow an empty log, then rotate the big file in and scrape until it is all counted.
log = os.path.join(work, "app.log")
open(log, "w").close()
proc = subprocess.Popen(
    [bin_, "--web.listen-address=127.0.0.1:0", "--widget.source=log", f"--widget.log.path={log}",
     "--widget.log.finished=* {label:worker} widget * done status={label:status} took={duration} req=*",
     "--widget.log.failed=* {label:worker} widget * done status=failed took={duration} req=*"],
    stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
try:
    addr = None
    while addr is None:
        line = proc.stderr.readline()
        if not line:
            sys.exit("exporter exited: " + (proc.stderr.read() or ""))
        m = re.search(r"msg=listening address=(\S+)", line)
        if m:
            addr = m.group(1)
    while "following the log" not in line:
        line = proc.stderr.readline()
    host, port = addr.rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=10)

    def scrape():
        t = time.monotonic()
        conn.request("GET", "/metrics")
        body = conn.getresponse().read().decode()
        return time.monotonic() - t, body

    def cpu():
        fields = open(f"/proc/{proc.pid}/stat").read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    scrape()
    cpu0 = cpu()
    latencies = []
    t0 = time.monotonic()
    os.rename(big, log)
    while True:
        took, body = scrape()
        latencies.append(took)
        ours = (value(body, "widgets_processed_total"), value(body, "widgets_failed_total"))
        if ours[0] is not None and ours[0] >= n_lines:
            break
        if time.monotonic() - t0 > 600:
            sys.exit("ours did not catch up within 600 s")
    our_wall = time.monotonic() - t0
    our_cpu = cpu() - cpu0
    status = open(f"/proc/{proc.pid}/status").read()
    our_rss = int(re.search(r"VmHWM:\s+(\d+) kB", status).group(1)) * 1024
    # Baseline in the same run: the same scrape loop once the backlog is gone.
    idle = sorted(scrape()[0] for _ in range(len(latencies)))
finally:
    proc.kill()
    proc.wait()

latencies.sort()
pick = lambda xs, q: xs[min(len(xs) - 1, int(q * len(xs)))] * 1000
mib = lambda b: b / 2**20
print()
mtail_version = subprocess.run(["mtail", "--version"], capture_output=True, text=True)
mtail_version = (re.search(r"version (\S+)", mtail_version.stdout + mtail_version.stderr) or [None, "?"])[1]
print()
print("| two label captures (worker, status) | lines/s | CPU seconds | peak RSS | processed | failed |")
print("|---|---:|---:|---:|---:|---:|")
print(f"| mtail {mtail_version} (--one_shot) | {n_lines / mt_wall:,.0f} | {mt_cpu:.2f} | {mib(mt_rss):.1f} MiB | {mt[0]} | {mt[1]} |")
print(f"| GNU grep -cE (LC_ALL=C) | {n_lines / gr_wall:,.0f} | {gr_cpu:.2f} | {mib(gr_rss):.1f} MiB | {gr[0]} | |")
print(f"| widget-exporter (log source, catching up) | {n_lines / our_wall:,.0f} | {our_cpu:.2f} | {mib(our_rss):.1f} MiB | {ours[0]} | {ours[1]} |")
print()
verdict = lambda ok: "met" if ok else "MISSED"
print(f"lines/s: {mt_wall / our_wall:.1f}x mtail's (target >= 10x: {verdict(mt_wall / our_wall >= 10)})")
print(f"peak RSS: {our_rss / mt_rss:.2f}x mtail's (target <= 0.25x: {verdict(our_rss <= mt_rss / 4)})")
print(f"CPU seconds: {our_cpu / gr_cpu:.2f}x grep's (target <= 1.5x: {verdict(our_cpu <= 1.5 * gr_cpu)})")
print()
print(f"scrapes while catching up: {len(latencies)}, latency p50 {pick(latencies, 0.5):.2f} ms, "
      f"p99 {pick(latencies, 0.99):.2f} ms, max {latencies[-1] * 1000:.2f} ms")
print(f"baseline, the same loop after catching up: p50 {pick(idle, 0.5):.2f} ms, "
      f"p99 {pick(idle, 0.99):.2f} ms, max {idle[-1] * 1000:.2f} ms")
agree = mt == ours and gr[0] == ours[0]
print("counts agree" if agree else f"COUNTS DIFFER: mtail {mt}, grep {gr[0]}, ours {ours}")
PY
