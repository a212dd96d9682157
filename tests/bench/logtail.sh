#!/usr/bin/env bash
# Benchmark of the log source (issue 8), side by side with mtail in one run: not a test,
# it prints figures. Generates LINES lines (default 2 million, 75-100 bytes, shaped like
# issue 8's example, 5 % failures), then
#   mtail:  `mtail --one_shot` over the whole file with one regex and two captures;
#   ours:   the release binary follows an empty log, the big file is renamed into its place
#           (a rotation, so it is read from its start as a backlog), and /metrics is scraped
#           in a loop until every line is counted.
# Prints lines/s to catch up, CPU seconds, peak RSS and the counts each reports (they must
# agree), and our scrape latency (p50/p99/max) while catching up.
#
# Usage: tests/bench/logtail.sh [LINES]     (needs mtail and python3; builds the release binary)
# Everything runs on loopback, in a temp dir removed at the end; only processes it started
# are stopped, by PID.
set -euo pipefail
cd "$(dirname "$0")/../.."
lines=${1:-2000000}
command -v mtail >/dev/null || { echo "mtail not found (apt-get install mtail)"; exit 1; }
cargo build --release --quiet
bin=$PWD/target/release/widget-exporter
work=$(mktemp -d /tmp/widget-exporter-bench-log.XXXXXX)
trap 'rm -rf "$work"' EXIT

# Issue 8's example line, padded with a request id to 75-100 bytes; every 20th fails.
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
# The equivalent mtail program: one regex, two captures.
cat >"$work/progs/widgets.mtail" <<'EOF'
counter widgets_processed_total
counter widgets_failed_total
counter widget_duration_ms_sum

/ widget \d+ done status=(ok|failed) took=(\d+)ms req=\w+$/ {
  widgets_processed_total++
  widget_duration_ms_sum += $2
  $1 == "failed" {
    widgets_failed_total++
  }
}
EOF

python3 - "$bin" "$work" <<'PY'
import http.client, os, re, resource, socket, subprocess, sys, time

bin_, work = sys.argv[1], sys.argv[2]
big = os.path.join(work, "big.log")
size = os.path.getsize(big)
with open(big, "rb") as f:
    n_lines = sum(1 for _ in f)
print(f"log: {n_lines} lines, {size / 2**20:.1f} MiB, mean {size / n_lines:.1f} bytes/line")

def value(text, name):
    m = re.search(r"^" + re.escape(name) + r"(?:\{[^}]*\})? (\S+)$", text, re.M)
    return int(float(m.group(1))) if m else None

# mtail: one shot over the whole file.
before = resource.getrusage(resource.RUSAGE_CHILDREN)
t0 = time.monotonic()
out = subprocess.run(
    ["mtail", "--progs", os.path.join(work, "progs"), "--logs", big, "--one_shot",
     "--one_shot_format", "prometheus", "--address", "127.0.0.1", "--port", "0"],
    capture_output=True, text=True, check=True)
mt_wall = time.monotonic() - t0
after = resource.getrusage(resource.RUSAGE_CHILDREN)
mt_cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
mt_rss = after.ru_maxrss * 1024  # the peak of any child so far: mtail is the first
mt = (value(out.stdout, "widgets_processed_total"), value(out.stdout, "widgets_failed_total"))

# Ours: follow an empty log, then rotate the big file in and scrape until it is all counted.
log = os.path.join(work, "app.log")
open(log, "w").close()
proc = subprocess.Popen(
    [bin_, "--web.listen-address=127.0.0.1:0", "--widget.source=log", f"--widget.log.path={log}",
     "--widget.log.finished=* widget * done status=ok took={duration} req=*",
     "--widget.log.failed=* widget * done status=failed took={duration} req=*"],
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
print("| | lines/s to catch up | CPU seconds | peak RSS | processed | failed |")
print("|---|---:|---:|---:|---:|---:|")
print(f"| mtail 3.0.0-rc50 (--one_shot) | {n_lines / mt_wall:,.0f} | {mt_cpu:.2f} | {mib(mt_rss):.1f} MiB | {mt[0]} | {mt[1]} |")
print(f"| widget-exporter (log source) | {n_lines / our_wall:,.0f} | {our_cpu:.2f} | {mib(our_rss):.1f} MiB | {ours[0]} | {ours[1]} |")
print(f"| ratio (ours / mtail) | {mt_wall / our_wall:.1f}x | {our_cpu / mt_cpu:.2f}x | {our_rss / mt_rss:.2f}x | | |")
print()
print(f"scrapes while catching up: {len(latencies)}, latency p50 {pick(latencies, 0.5):.2f} ms, "
      f"p99 {pick(latencies, 0.99):.2f} ms, max {latencies[-1] * 1000:.2f} ms")
print(f"baseline, the same loop after catching up: p50 {pick(idle, 0.5):.2f} ms, "
      f"p99 {pick(idle, 0.99):.2f} ms, max {idle[-1] * 1000:.2f} ms")
print("counts agree" if mt == ours else f"COUNTS DIFFER: mtail {mt}, ours {ours}")
PY
