#!/bin/sh
# Size and write time of one textfile: the exporter's own debug line (write_us: create, chmod,
# write, fsync, rename, fsync of the directory; rendering excluded) beside a baseline doing
# the same syscalls from Python on the same directory, in the same run.
set -eu
BIN=${1:?release binary}; DIR=${2:-${TMPDIR:-/tmp}/widget-exporter-textfile-bench}
rm -rf "$DIR"; mkdir -p "$DIR"
timeout 6 "$BIN" --web.listen-address=none --textfile.path="$DIR/widget-exporter.prom" \
  --textfile.interval=50ms --widget.interval=20ms --log.level=debug 2>"$DIR.log" || true
python3 - "$DIR" "$DIR.log" <<'PY'
import os, re, statistics, sys, time
d, log = sys.argv[1], sys.argv[2]
us = sorted(int(m.group(1)) for m in (re.search(r'msg="textfile written" bytes=\d+ write_us=(\d+)', l) for l in open(log)) if m)
size = os.path.getsize(os.path.join(d, "widget-exporter.prom"))
body = open(os.path.join(d, "widget-exporter.prom"), "rb").read()
base = []
for i in range(len(us)):
    t = time.perf_counter()
    tmp = os.path.join(d, ".base.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    os.fchmod(fd, 0o644); os.write(fd, body); os.fsync(fd); os.close(fd)
    os.rename(tmp, os.path.join(d, "base.prom"))
    dfd = os.open(d, os.O_RDONLY); os.fsync(dfd); os.close(dfd)
    base.append((time.perf_counter() - t) * 1e6)
    time.sleep(0.05)
base.sort()
q = lambda v, p: v[min(len(v) - 1, int(len(v) * p))]
print(f"file: {size} bytes")
print(f"exporter: writes={len(us)} median_us={statistics.median(us):.0f} p90_us={q(us, .9)} max_us={us[-1]}")
print(f"python baseline: writes={len(base)} median_us={statistics.median(base):.0f} p90_us={q(base, .9):.0f} max_us={base[-1]:.0f}")
PY
