#!/usr/bin/env bash
# The benchmark: widget-exporter against a bare tiny_http loop (the design's own limit) and
# a raw-socket ceiling, measured side by side in one run (this machine is shared and noisy;
# ratios from one run hold where absolute times drift).
#
#   bash tests/bench/run.sh [all|throughput|startup]
#
# `throughput` runs only the interleaved throughput rounds, `startup` only the scrape right
# after start (100 fresh starts per case); `all` (the default) runs everything. With
# WE_BASELINE_BIN=PATH (an earlier build of the exporter), those two sections measure it too,
# interleaved with the others in the same run: before and after, side by side.
#
# Loopback only, about three minutes, bounded: every wait has a deadline and every process it
# starts is ended by PID on exit. Needs wrk, python3, ss and file (Debian packages wrk,
# python3, iproute2, file). Prints a markdown table on stdout and writes it to
# target/bench/results.md; raw outputs (wrk, logs) go to target/bench/raw/. Each row names
# its target; the 16-connection one is 0.9 x the bare loop, every pool warmed first.
set -euo pipefail
cd "$(dirname "$0")/../.."

ROUNDS=3      # interleaved ours/bare/ceiling rounds per connection count
FRESH=6       # fresh starts for the 16-connection burst, ours and bare interleaved
BURST_SECS=3  # wrk run per fresh start
WRK_SECS=5    # per wrk run
STARTS=10     # exec-to-first-scrape samples
SETTLE=3      # seconds before idle RSS and threads are read
IDLE_SECS=10  # idle CPU and context-switch window
LOAD_SECS=10  # wrk run during the lateness measurement
STARTUP_STARTS=${STARTUP_STARTS:-100} # fresh starts per case in the startup figure
MODE=${1:-all}
case $MODE in all | throughput | startup) ;; *) printf 'usage: run.sh [all|throughput|startup]\n' >&2; exit 2 ;; esac
base_bin=${WE_BASELINE_BIN:-}

say() { printf '%s\n' "$*" >&2; }
die() { say "run.sh: $*"; exit 1; }

command -v wrk >/dev/null || die "wrk not found: install the Debian package (apt-get install wrk)"
command -v python3 >/dev/null || die "python3 not found"
command -v ss >/dev/null || die "ss not found: install the Debian package iproute2"
command -v file >/dev/null || die "file not found: install the Debian package file"

out=target/bench
raw=$out/raw
rm -rf "$raw"
mkdir -p "$raw"

# Every process we start, by PID; the trap ends those still alive and nothing else.
pids=()
cleanup() {
    local pid
    for pid in "${pids[@]}"; do
        if kill -0 "$pid" 2>/dev/null; then
            kill "$pid" 2>/dev/null || true
            wait "$pid" 2>/dev/null || true
        fi
    done
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Small helpers in Python: precise clocks and sockets without extra tools.
py() {
    python3 - "$@" <<'PY'
import os, signal, socket, statistics, sys, time

def get(host, port, path="/metrics", timeout=2.0):
    """One GET on a fresh connection; returns (status, body) or raises OSError."""
    s = socket.create_connection((host, port), timeout=timeout)
    try:
        s.sendall(f"GET {path} HTTP/1.1\r\nHost: bench\r\n\r\n".encode())
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = s.recv(65536)
            if not chunk:
                raise OSError("closed before the headers")
            data += chunk
        head, body = data.split(b"\r\n\r\n", 1)
        length = None
        for line in head.split(b"\r\n")[1:]:
            k, _, v = line.partition(b":")
            if k.strip().lower() == b"content-length":
                length = int(v)
        if length is None:
            raise OSError("no content-length")
        while len(body) < length:
            chunk = s.recv(65536)
            if not chunk:
                raise OSError("closed mid-body")
            body += chunk
        return int(head.split()[1]), body
    finally:
        s.close()

def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port

cmd, args = sys.argv[1], sys.argv[2:]
if cmd == "body":  # ADDR: the /metrics body
    host, port = args[0].rsplit(":", 1)
    status, body = get(host, int(port))
    if status != 200:
        sys.exit(f"GET /metrics on {args[0]}: status {status}")
    sys.stdout.buffer.write(body)
elif cmd == "start":  # N FLAG-TEMPLATE BIN ARGS...: ms from exec to first 200 on /metrics
    # posix_spawn (vfork + exec) keeps the harness's own cost small; "floor" measures it.
    n, flag, argv = int(args[0]), args[1], args[2:]
    quiet = [(os.POSIX_SPAWN_OPEN, fd, "/dev/null", os.O_RDWR, 0) for fd in (0, 1, 2)]
    samples = []
    for _ in range(n):
        port = free_port()
        full = argv + [flag.replace("{addr}", f"127.0.0.1:{port}")]
        t0 = time.perf_counter()
        pid = os.posix_spawn(full[0], full, os.environ, file_actions=quiet)
        try:
            while True:
                try:
                    if get("127.0.0.1", port)[0] == 200:
                        break
                except OSError:
                    pass
                if time.perf_counter() - t0 > 5:
                    sys.exit(f"{argv[0]} did not answer within 5 s")
            samples.append((time.perf_counter() - t0) * 1000)
        finally:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
    print(f"{statistics.median(samples):.2f} {min(samples):.2f} {max(samples):.2f}")
elif cmd == "silent":  # N ADDR: N silent connections, then 20 scrapes on fresh connections
    # Prints "max_ms over_100ms answered". The connections are opened back to back and the
    # first scrape follows at once: the burst a thread pool can queue behind idle threads.
    n, (host, port) = int(args[0]), args[1].rsplit(":", 1)
    held = [socket.create_connection((host, int(port)), timeout=2) for _ in range(n)]
    took = []
    for _ in range(20):
        t0 = time.perf_counter()
        try:
            ok = get(host, int(port), timeout=2.0)[0] == 200
        except OSError:
            ok = False
        took.append((time.perf_counter() - t0) * 1000 if ok else float("inf"))
    for s in held:
        s.close()
    answered = sum(1 for t in took if t != float("inf"))
    print(f"{max(took):.2f} {sum(1 for t in took if t > 100)} {answered}")
elif cmd == "warm":  # N ADDR: N connections one after another, each answered once, then closed
    # tiny_http 0.12's pool queues a burst of connections behind idle threads that have not
    # woken yet (see tests/bench/README.md): a bare loop met by wrk's 16 at once serves only
    # a few of them, and its throughput then measures 4 connections, not 16. Held one after
    # another, each connection gets a thread of its own; closed, they leave N idle threads
    # that take wrk's connections. Every server gets the same warm-up.
    n, (host, port) = int(args[0]), args[1].rsplit(":", 1)
    held = []
    for _ in range(n):
        s = socket.create_connection((host, int(port)), timeout=2)
        s.sendall(b"GET /metrics HTTP/1.1\r\nHost: bench\r\n\r\n")
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = s.recv(65536)
            if not chunk:
                sys.exit(f"warm-up: {args[1]} closed a connection unanswered")
            data += chunk
        held.append(s)
    for s in held:
        s.close()
    time.sleep(0.2)
elif cmd == "startup":  # N NS FLAG-TEMPLATE BIN ARGS...: a scrape right after start
    # N fresh starts per count of silent connections (NS, comma-separated), the counts
    # interleaved. Each start: poll the port every 1-25 ms (random, random phase) until a
    # connection succeeds, and close it (a readiness check); open the silent connections;
    # time one scrape on a fresh connection (1 s at most). Prints "silent ms" per start.
    import random
    n, ns, flag, argv = int(args[0]), [int(x) for x in args[1].split(",")], args[2], args[3:]
    quiet = [(os.POSIX_SPAWN_OPEN, fd, "/dev/null", os.O_RDWR, 0) for fd in (0, 1, 2)]
    rng = random.Random()
    for _ in range(n):
        for silent in ns:
            port = free_port()
            full = argv + [flag.replace("{addr}", f"127.0.0.1:{port}")]
            every = rng.uniform(0.001, 0.025)
            pid = os.posix_spawn(full[0], full, os.environ, file_actions=quiet)
            held = []
            try:
                time.sleep(rng.uniform(0, every))
                t_start = time.perf_counter()
                while True:
                    try:
                        socket.create_connection(("127.0.0.1", port), timeout=1).close()
                        break
                    except OSError:
                        if time.perf_counter() - t_start > 5:
                            sys.exit(f"{argv[0]} did not listen within 5 s")
                        time.sleep(every)
                held = [socket.create_connection(("127.0.0.1", port), timeout=2) for _ in range(silent)]
                t0 = time.perf_counter()
                try:
                    ok = get("127.0.0.1", port, timeout=1.0)[0] == 200
                except OSError:
                    ok = False
                print(silent, f"{(time.perf_counter() - t0) * 1000:.2f}" if ok else "inf", flush=True)
            finally:
                for s in held:
                    s.close()
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
elif cmd == "floor":  # N: median ms to spawn /bin/true and reap it (the harness's own cost)
    samples = []
    for _ in range(int(args[0])):
        t0 = time.perf_counter()
        pid = os.posix_spawn("/bin/true", ["/bin/true"], os.environ)
        os.waitpid(pid, 0)
        samples.append((time.perf_counter() - t0) * 1000)
    print(f"{statistics.median(samples):.2f}")
elif cmd == "stalls":  # PID PORT SECS: connections that sent nothing for a whole 0.25 s sample
    # A server thread that serves a connection answers every request on it within
    # milliseconds; a connection holding unread bytes whose bytes_sent does not move for
    # 0.25 s while the load runs is waiting for a thread (idle connections, such as the
    # exporter's own parked ones, hold none). Prints "most_stalled_at_once
    # stalled_conn_seconds max_threads established".
    import subprocess
    pid, port, secs = args[0], args[1], float(args[2])
    prev, most, stalled, threads, est = {}, 0, 0.0, 0, 0
    end = time.monotonic() + secs
    while time.monotonic() < end:
        time.sleep(0.25)
        out = subprocess.run(["ss", "-tinH", "state", "established", f"( sport = :{port} )"],
                             capture_output=True, text=True).stdout
        sent, unread, peer = {}, set(), None
        for line in out.splitlines():
            if line[:1].isdigit():
                peer = line.split()[3]
                sent[peer] = 0
                if int(line.split()[0]) > 0:
                    unread.add(peer)
            elif peer and "bytes_sent:" in line:
                sent[peer] = int(line.split("bytes_sent:")[1].split()[0])
        now_stalled = sum(1 for p, b in sent.items() if p in prev and prev[p] == b and p in unread)
        most, stalled = max(most, now_stalled), stalled + 0.25 * now_stalled
        est = max(est, len(sent))
        try:
            with open(f"/proc/{pid}/status") as f:
                threads = max(threads, int(next(l for l in f if l.startswith("Threads:")).split()[1]))
        except (OSError, StopIteration):
            pass
        prev = sent
    print(most, f"{stalled:.2f}", threads, est)
elif cmd == "lateness":  # LOG: p50 p99 max count of lateness_us in "widget event" lines
    values = []
    with open(args[0], errors="replace") as f:
        for line in f:
            if ' msg="widget event" ' not in line:
                continue
            for field in line.split():
                if field.startswith("lateness_us="):
                    values.append(int(field.split("=", 1)[1].strip('"')))
    if not values:
        print("- - - 0")
    else:
        values.sort()
        pick = lambda q: values[min(len(values) - 1, int(q * len(values)))]
        print(pick(0.50), pick(0.99), values[-1], len(values))
PY
}

# start NAME LOGFILE CMD...: runs CMD in the background, sets $started_pid.
start() {
    local log=$1
    shift
    "$@" </dev/null >/dev/null 2>"$log" &
    started_pid=$!
    pids+=("$started_pid")
}

# stop PID: ends a process we started.
stop() {
    kill "$1" 2>/dev/null || true
    wait "$1" 2>/dev/null || true
}

# wait_addr LOGFILE PID: the address a server logged once bound (5 s deadline).
wait_addr() {
    local log=$1 pid=$2 addr=
    for _ in $(seq 500); do
        addr=$(sed -n -e 's/.*msg=listening address=\([^ ]*\).*/\1/p' -e 's/^listening \(.*\)$/\1/p' "$log" | head -n 1)
        [ -n "$addr" ] && { echo "$addr"; return; }
        kill -0 "$pid" 2>/dev/null || { cat "$log" >&2; die "server exited before listening (log above)"; }
        sleep 0.01
    done
    die "no listening address in $log after 5 s"
}

median() { printf '%s\n' "$@" | sort -g | awk '{v[NR]=$1} END {print (NR % 2) ? v[(NR+1)/2] : (v[NR/2]+v[NR/2+1])/2}'; }
calc() { awk "BEGIN {print $*}"; }
# status PID KEY: a /proc/PID/status field's number (VmRSS in KiB, Threads, ...).
status() { awk -v k="$2:" '$1 == k {print $2}' "/proc/$1/status"; }
# cpu_ticks PID: utime + stime of the whole process, in clock ticks.
cpu_ticks() { sed 's/.*) //' "/proc/$1/stat" | awk '{print $12 + $13}'; }
# cpu_ns PID: nanoseconds on CPU summed over the threads alive now (schedstat; finer than ticks).
cpu_ns() { cat /proc/"$1"/task/*/schedstat 2>/dev/null | awk '{s += $1} END {printf "%.0f\n", s}'; }
# vcs PID [TID]: voluntary context switches summed over all threads, or of one thread.
vcs() {
    if [ $# -eq 2 ]; then cat "/proc/$1/task/$2/status"; else cat /proc/"$1"/task/*/status; fi 2>/dev/null |
        awk '$1 == "voluntary_ctxt_switches:" {s += $2} END {print s + 0}'
}
processed() { py body "$1" | awk '$1 == "widgets_processed_total" {print $2}'; }

# wrk_run LABEL THREADS CONNS SECS ADDR: prints "req/s p50_us p99_us non2xx socket_errors".
wrk_run() {
    local file=$raw/wrk-$1.txt
    timeout $(($4 + 30)) wrk -t"$2" -c"$3" -d"$4"s --latency "http://$5/metrics" >"$file" 2>&1 \
        || die "wrk failed, see $file"
    awk '
        function us(v) { if (v ~ /us$/) return v + 0; if (v ~ /ms$/) return v * 1000; if (v ~ /s$/) return v * 1000000; return v }
        $1 == "Requests/sec:" { rps = $2 }
        $1 == "50%" { p50 = us($2) }
        $1 == "99%" { p99 = us($2) }
        $1 == "Non-2xx" { bad = $NF }
        $1 == "Socket" { gsub(",", ""); sock = $4 + $6 + $8 + $10 }
        END { printf "%s %s %s %d %d\n", rps, p50, p99, bad, sock }
    ' "$file"
}

bin=target/release/widget-exporter
ceiling=target/release/examples/ceiling
bare=target/release/examples/bare
started_at=$(date +%s)

say "== build"
cargo build --release >&2
cargo build --release --example ceiling --example bare >&2
if [ "$MODE" = all ]; then
    cargo bench --bench render --no-run >&2 2>&1
    cargo test --test alloc --no-run >&2 2>&1
fi
if [ -n "$base_bin" ]; then
    [ -x "$base_bin" ] || die "WE_BASELINE_BIN=$base_bin is not an executable"
fi
# who: the servers of the throughput rounds, in the order they are interleaved.
who_all="ours${base_bin:+ base} bare ceiling"

say "== payload size"
start "$raw/payload.log" "$bin" --web.listen-address=127.0.0.1:0
pid=$started_pid
addr=$(wait_addr "$raw/payload.log" "$pid")
bytes=$(py body "$addr" | wc -c)
stop "$pid"
say "payload: $bytes bytes"

if [ "$MODE" = all ]; then
say "== footprint: idle (settle ${SETTLE}s, then ${IDLE_SECS}s idle)"
start "$raw/idle.log" "$bin" --web.listen-address=127.0.0.1:0
idle_pid=$started_pid
idle_addr=$(wait_addr "$raw/idle.log" "$idle_pid")
start "$raw/ceiling-idle.log" "$ceiling" --bytes "$bytes"
ceil_idle_pid=$started_pid
wait_addr "$raw/ceiling-idle.log" "$ceil_idle_pid" >/dev/null
sleep "$SETTLE"
idle_rss=$(status "$idle_pid" VmRSS)
idle_threads=$(status "$idle_pid" Threads)
ceil_idle_rss=$(status "$ceil_idle_pid" VmRSS)
ceil_idle_threads=$(status "$ceil_idle_pid" Threads)
stop "$ceil_idle_pid"
# The scrape that counts widgets wakes the loop and spawns a connection thread: let them
# settle before the window opens.
p0=$(processed "$idle_addr")
sleep 0.5
t0=$(cpu_ticks "$idle_pid") c0=$(cpu_ns "$idle_pid") v0=$(vcs "$idle_pid") m0=$(vcs "$idle_pid" "$idle_pid")
sleep "$IDLE_SECS"
t1=$(cpu_ticks "$idle_pid") c1=$(cpu_ns "$idle_pid") v1=$(vcs "$idle_pid") m1=$(vcs "$idle_pid" "$idle_pid")
p1=$(processed "$idle_addr")
stop "$idle_pid"
hz=$(getconf CLK_TCK)
idle_ticks=$(calc "($t1 - $t0) / $IDLE_SECS")
idle_cpu_us=$(calc "($c1 - $c0) / 1000 / $IDLE_SECS")
idle_vcs=$(calc "($v1 - $v0) / $IDLE_SECS")
idle_main_vcs=$(calc "($m1 - $m0) / $IDLE_SECS")
# A widget is two events (start, end); the window's count is off by at most one each side.
idle_events=$(calc "($p1 - $p0) * 2 / ($IDLE_SECS + 0.5)")
idle_events_max=$(((p1 - p0) * 2 + 2))

say "== footprint: exec to first scrape (median of $STARTS)"
read -r start_ms start_min start_max < <(py start "$STARTS" "--web.listen-address={addr}" "$bin")
read -r ceil_start_ms _ _ < <(py start "$STARTS" "--listen={addr}" "$ceiling" --bytes "$bytes")
spawn_floor_ms=$(py floor "$STARTS")
fi

if [ "$MODE" != startup ]; then

say "== throughput: $ROUNDS rounds, ours/bare/ceiling interleaved, ${WRK_SECS}s per run"
start "$raw/ours.log" "$bin" --web.listen-address=127.0.0.1:0
ours_pid=$started_pid
ours_addr=$(wait_addr "$raw/ours.log" "$ours_pid")
start "$raw/ceiling.log" "$ceiling" --bytes "$bytes"
ceil_pid=$started_pid
ceil_addr=$(wait_addr "$raw/ceiling.log" "$ceil_pid")
start "$raw/bare.log" "$bare" --bytes "$bytes"
bare_pid=$started_pid
bare_addr=$(wait_addr "$raw/bare.log" "$bare_pid")
if [ -n "$base_bin" ]; then
    start "$raw/base.log" "$base_bin" --web.listen-address=127.0.0.1:0
    base_pid=$started_pid
    base_addr=$(wait_addr "$raw/base.log" "$base_pid")
fi
declare -A rps p50 p99
declare -A non2xx sockerr
for round in $(seq "$ROUNDS"); do
    for conns in 1 16; do
        threads=$((conns == 1 ? 1 : 2))
        for who in $who_all; do
            a=$ours_addr
            [ "$who" = ceiling ] && a=$ceil_addr
            [ "$who" = bare ] && a=$bare_addr
            [ "$who" = base ] && a=$base_addr
            sampler=
            [ "$conns" = 1 ] || py warm "$conns" "$a"
            if [ "$round" = 1 ] && [ "$conns" = 16 ]; then
                # Mid-run: how many of the 16 connections hold a request nobody has read yet.
                pid=$ours_pid
                [ "$who" = ceiling ] && pid=$ceil_pid
                [ "$who" = bare ] && pid=$bare_pid
                [ "$who" = base ] && pid=$base_pid
                py stalls "$pid" "${a##*:}" $((WRK_SECS - 1)) >"$raw/stalls-$who.txt" &
                sampler=$!
                pids+=("$sampler")
            fi
            read -r r l50 l99 bad sock < <(wrk_run "$who-c$conns-r$round" "$threads" "$conns" "$WRK_SECS" "$a")
            [ -z "$sampler" ] || wait "$sampler" || true
            non2xx[$who,$conns]=$((${non2xx[$who,$conns]:-0} + bad))
            sockerr[$who,$conns]=$((${sockerr[$who,$conns]:-0} + sock))
            rps[$who,$conns]+="$r "
            p50[$who,$conns]+="$l50 "
            p99[$who,$conns]+="$l99 "
            say "round $round c$conns $who: $r req/s, p50 ${l50}us, p99 ${l99}us, non-2xx $bad, socket errors $sock"
        done
    done
done
sleep 1 # connection threads end when wrk hangs up
read -r st_most st_secs st_threads st_est <"$raw/stalls-ours.txt"
read -r cst_most cst_secs cst_threads cst_est <"$raw/stalls-ceiling.txt"
read -r bst_most bst_secs bst_threads bst_est <"$raw/stalls-bare.txt"
load_rss=$(status "$ours_pid" VmRSS)
load_hwm=$(status "$ours_pid" VmHWM)
ceil_load_rss=$(status "$ceil_pid" VmRSS)
bare_load_rss=$(status "$bare_pid" VmRSS)
stop "$ours_pid"
stop "$ceil_pid"
stop "$bare_pid"
[ -z "$base_bin" ] || stop "$base_pid"

m() { median ${1}; } # word-splits a space-separated list into arguments
for who in $who_all; do
    for c in 1 16; do
        k=$who,$c
        declare "rps_${who}_$c=$(m "${rps[$k]}")" "p50_${who}_$c=$(m "${p50[$k]}")" "p99_${who}_$c=$(m "${p99[$k]}")"
    done
done

# rescued LOG: the starved connections the guard rescued, per its last info line (0 if none).
rescued() { sed -n 's/.*msg="rescuing connections tiny_http left without a thread".* starved_total=\([0-9]*\).*/\1/p' "$1" | tail -n 1 | grep . || echo 0; }
rescued_load=$(rescued "$raw/ours.log")
fi

# startup_figure WHO: "over_100ms max_ms median_ms" per count of silent connections, as
# "N:over:max:median" words, from $raw/startup-WHO.txt.
startup_figure() {
    awk '{ v[$1] = v[$1] " " $2 } END { for (n in v) print n, v[n] }' "$raw/startup-$1.txt" | sort -n |
        while read -r n rest; do
            # shellcheck disable=SC2086
            printf '%s\n' $rest | sort -g | awk -v n="$n" '
                { x[NR] = $1; if ($1 == "inf" || $1 > 100) over++ }
                END { printf "%s:%d:%s:%s:%d\n", n, over, x[NR], x[int((NR + 1) / 2)], NR }'
        done
}
if [ "$MODE" != throughput ]; then
    say "== a scrape right after start: $STARTUP_STARTS fresh starts per case, readiness check, 0/1/20/200 silent connections"
    : >"$raw/startup-ours.txt"
    : >"$raw/startup-bare.txt"
    [ -z "$base_bin" ] || : >"$raw/startup-base.txt"
    # Interleaved in chunks, so that a busy spell of the machine falls on all of them.
    chunk=$(((STARTUP_STARTS + 3) / 4))
    for part in 1 2 3 4; do
        n=$((STARTUP_STARTS - (part - 1) * chunk))
        [ "$n" -gt "$chunk" ] && n=$chunk
        [ "$n" -gt 0 ] || break
        py startup "$n" 0,1,20,200 "--web.listen-address={addr}" "$bin" >>"$raw/startup-ours.txt"
        [ -z "$base_bin" ] || py startup "$n" 0,1,20,200 "--web.listen-address={addr}" "$base_bin" >>"$raw/startup-base.txt"
        py startup "$n" 0,1,20,200 "--listen={addr}" "$bare" --bytes "$bytes" >>"$raw/startup-bare.txt"
    done
    declare -A startup
    for who in ours${base_bin:+ base} bare; do
        for f in $(startup_figure "$who"); do
            IFS=: read -r n over max med count <<<"$f"
            startup[$who,$n]="$over of $count over 100 ms (max $max ms, median $med ms)"
            [ "$who" = ours ] && startup_over=$((${startup_over:-0} + over))
        done
        say "startup $who: $(startup_figure "$who" | tr '\n' ' ')"
    done
fi
startup_cell() { printf '%s' "${startup[$1,$2]:-}"; }

if [ "$MODE" != all ]; then
    t=$(
        printf '## %s, %s\n\n' "$MODE" "$(date -u '+%Y-%m-%d %H:%M UTC')"
        printf 'Exporter %s%s; bare tiny_http loop %s. Reproduce: `%sbash tests/bench/run.sh %s`.\n\n' \
            "$bin" "${base_bin:+, baseline $base_bin}" "$bare" "${base_bin:+WE_BASELINE_BIN=$base_bin }" "$MODE"
        if [ "$MODE" = throughput ]; then
            printf '| figure (medians of %s interleaved rounds of %s s) |%s\n' "$ROUNDS" "$WRK_SECS" "$(for w in $who_all; do printf ' %s |' "$w"; done) ours / bare |${base_bin:+ base / bare |}"
            printf '|---|%s---|%s\n' "$(for _ in $who_all; do printf -- '---|'; done)" "${base_bin:+---|}"
            for c in 1 16; do
                printf '| throughput, %s connection(s), req/s |' "$c"
                for w in $who_all; do v=rps_${w}_$c; printf ' %s |' "$(calc "sprintf(\"%.0f\", ${!v})")"; done
                printf ' %s |' "$(calc "sprintf(\"%.2f\", $(eval echo \$rps_ours_$c) / $(eval echo \$rps_bare_$c))")"
                [ -z "$base_bin" ] || printf ' %s |' "$(calc "sprintf(\"%.2f\", $(eval echo \$rps_base_$c) / $(eval echo \$rps_bare_$c))")"
                printf '\n| p99 latency, %s connection(s), ms |' "$c"
                for w in $who_all; do v=p99_${w}_$c; printf ' %s |' "$(calc "sprintf(\"%.2f\", ${!v} / 1000)")"; done
                printf ' %s |' "$(calc "sprintf(\"%.2f\", $(eval echo \$p99_ours_$c) / $(eval echo \$p99_bare_$c))")"
                [ -z "$base_bin" ] || printf ' %s |' "$(calc "sprintf(\"%.2f\", $(eval echo \$p99_base_$c) / $(eval echo \$p99_bare_$c))")"
                printf '\n'
            done
            printf '| c16 round 1: connections stalled at once / threads | %s |\n' \
                "$(for w in $who_all; do read -r a _ t e <"$raw/stalls-$w.txt"; printf '%s of %s / %s |' "$a" "$e" "$t"; done)"
            printf '| starved connections rescued (ours) | %s |\n' "$rescued_load"
            printf '| target: 16-connection throughput at least 0.9 x bare, every server warmed first | %s |\n' \
                "$(calc "($rps_ours_16 / $rps_bare_16 >= 0.9) ? \"met\" : \"not met\"")"
        else
            printf '| silent connections | ours |%s bare tiny_http | target |\n|---|---|%s---|---|\n' "${base_bin:+ baseline |}" "${base_bin:+---|}"
            for n in 0 1 20 200; do
                printf '| %s | %s |%s %s | none over 100 ms |\n' "$n" "$(startup_cell ours "$n")" "${base_bin:+ $(startup_cell base "$n") |}" "$(startup_cell bare "$n")"
            done
        fi
    )
    printf '%s\n' "$t" | tee "$out/results-$MODE.md"
    exit 0
fi

# Starts "ours" or "bare" fresh, logging to $2; sets started_pid and fresh_addr, and waits
# 0.3 s (what the fresh-start figures mean by "fresh").
start_fresh() {
    if [ "$1" = ours ]; then
        start "$2" "$bin" --web.listen-address=127.0.0.1:0
    else
        start "$2" "$bare" --bytes "$bytes"
    fi
    fresh_addr=$(wait_addr "$2" "$started_pid")
    sleep 0.3
}

say "== fresh 16-connection burst: $FRESH fresh starts each, ours/bare interleaved, wrk ${BURST_SECS}s"
declare -A burst_p99 burst_stall
rescued_burst=0
for i in $(seq "$FRESH"); do
    for who in ours bare; do
        log=$raw/fresh-$who-$i.log
        start_fresh "$who" "$log"
        pid=$started_pid a=$fresh_addr
        py stalls "$pid" "${a##*:}" $((BURST_SECS - 1)) >"$raw/fresh-stalls-$who-$i.txt" &
        sampler=$!
        pids+=("$sampler")
        read -r _ _ l99 _ _ < <(wrk_run "fresh-$who-$i" 2 16 "$BURST_SECS" "$a")
        wait "$sampler" || true
        stop "$pid"
        read -r most _ _ _ <"$raw/fresh-stalls-$who-$i.txt"
        burst_p99[$who]+="$l99 "
        burst_stall[$who]+="$most "
        n=0
        [ "$who" = ours ] && n=$(rescued "$log") && rescued_burst=$((rescued_burst + n))
        say "fresh $i $who: p99 ${l99}us, most connections stalled at once $most, rescued $n"
    done
done
range() { printf '%s\n' ${1} | sort -g | awk 'NR == 1 {lo = $1} {hi = $1} END {print lo "–" hi}'; }
bp99_ours=$(m "${burst_p99[ours]}") bp99_bare=$(m "${burst_p99[bare]}")
bp99_ours_range=$(range "${burst_p99[ours]}") bp99_bare_range=$(range "${burst_p99[bare]}")
bstall_ours=$(range "${burst_stall[ours]}") bstall_bare=$(range "${burst_stall[bare]}")

say "== a scrape with silent connections open (fresh start each, ours/bare interleaved)"
declare -A silent
for n in 20 200; do
    for who in ours bare; do
        log=$raw/silent-$who-$n.log
        start_fresh "$who" "$log"
        pid=$started_pid a=$fresh_addr
        silent[$who,$n]=$(py silent "$n" "$a")
        stop "$pid"
        if [ "$who" = ours ]; then
            k=$(rescued "$log")
            rescued_burst=$((rescued_burst + k))
        fi
        say "silent $n $who: max ms, over 100 ms, answered of 20: ${silent[$who,$n]}"
    done
done
# silent_cell WHO N: "max X ms, Y of 20 over 100 ms" (unanswered within 2 s count as over).
silent_cell() {
    local max over answered
    read -r max over answered <<<"${silent[$1,$2]}"
    if [ "$max" = inf ]; then max="> 2000"; fi
    echo "max ${max} ms, $((20 - over)) of 20 within 100 ms"
}
silent_met() {
    local max over answered
    read -r max over answered <<<"${silent[ours,$1]}"
    if [ "$over" = 0 ]; then echo yes; else echo "**no**"; fi
}

say "== simulation accuracy: 1ms widgets, idle 3s then wrk -t2 -c16 for ${LOAD_SECS}s"
start "$raw/lateness.log" "$bin" --web.listen-address=127.0.0.1:0 \
    --widget.min-duration=1ms --widget.max-duration=1ms --widget.interval=1ms --log.level=debug
late_pid=$started_pid
late_addr=$(wait_addr "$raw/lateness.log" "$late_pid")
n0=$(wc -l <"$raw/lateness.log")
sleep 3
lp0=$(processed "$late_addr")
n1=$(wc -l <"$raw/lateness.log")
read -r late_rps _ _ _ _ < <(wrk_run lateness 2 16 "$LOAD_SECS" "$late_addr")
n2=$(wc -l <"$raw/lateness.log")
lp1=$(processed "$late_addr")
# Every widget is two events; how many the load window held, logged or not.
late_events=$(((lp1 - lp0) * 2))
stop "$late_pid"
sed -n "$((n0 + 1)),${n1}p" "$raw/lateness.log" >"$raw/lateness-idle.log"
sed -n "$((n1 + 1)),${n2}p" "$raw/lateness.log" >"$raw/lateness-load.log"
read -r li50 li99 limax lin < <(py lateness "$raw/lateness-idle.log")
read -r ll50 ll99 llmax lln < <(py lateness "$raw/lateness-load.log")

say "== render micro-benchmark"
cargo bench --bench render 2>/dev/null | tee "$raw/render.txt" >&2
# field KIND FORMAT KEY: a value from the bench's `KIND format=F key=value ...` lines.
field() { awk -v c="$1" -v f="$2" -v k="$3" '$1 == c && $2 == "format=" f { for (i = 3; i <= NF; i++) if (index($i, k "=") == 1) print substr($i, length(k) + 2) }' "$raw/render.txt"; }
render_text=$(field render text ns) render_text_min=$(field render text min_ns)
render_om=$(field render openmetrics ns) render_om_min=$(field render openmetrics min_ns)
render_bytes=$(field render text bytes)
scrape_text=$(field scrape text ns) scrape_text_min=$(field scrape text min_ns)

say "== allocations per scrape (tests/alloc.rs)"
alloc_status=passed
cargo test --test alloc -- --nocapture >"$raw/alloc.txt" 2>&1 || alloc_status=FAILED
alloc_of() { awk -v f="$1" '$2 == "scrape" && $3 == "format=" f { sub("allocations=", "", $4); print $4 / 1000 }' "$raw/alloc.txt"; }
alloc_text=$(alloc_of Text)
alloc_om=$(alloc_of OpenMetrics)

# ---- the table
size=$(stat -c %s "$bin")
ceil_size=$(stat -c %s "$ceiling")
kind=$(file -b "$bin")
case $kind in
*"static-pie linked"* | *"statically linked"*) linkage=static ;;
*) linkage="NOT static" ;;
esac
case $kind in
*"not stripped"*) stripped="NOT stripped" ;;
*stripped*) stripped=stripped ;;
*) stripped="strip state unknown" ;;
esac
kib() { calc "sprintf(\"%.0f KiB\", $1)"; }
mib() { calc "sprintf(\"%.2f MiB\", $1 / 1024)"; }
num() { calc "sprintf(\"%.0f\", $1)"; }
ms() { calc "sprintf(\"%.2f ms\", $1 / 1000)"; }
ratio() { calc "sprintf(\"%.2f\", $1 / $2)"; }
# met VALUE OP LIMIT
met() { if awk "BEGIN {exit !($1 $2 $3)}"; then echo yes; else echo "**no**"; fi; }
lat_met() { if [ "$1" = - ]; then echo "no data"; else met "$1" "<=" 2000; fi; }
us_or_dash() { if [ "$1" = - ]; then echo -; else ms "$1"; fi; }

cpu=$(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)
table=$(
    cat <<EOF
## Benchmark: widget-exporter vs a bare tiny_http loop and a raw-socket ceiling

$(date -u '+%Y-%m-%d %H:%M UTC') · Linux $(uname -r) · ${cpu} · $(nproc) CPUs · $(rustc --version | cut -d' ' -f1-2) · $(wrk --version 2>&1 | head -n 1 | cut -d' ' -f1-2)
Payload ${bytes} bytes (text format, fresh exporter; the bare loop and the ceiling return a body of the same size).
*Bare tiny_http* is \`tests/bench/bare.rs\`: tiny_http 0.12, one thread answering out of \`recv_timeout\` through tiny_http's \`Response\`, \`TCP_NODELAY\` on its listener; the design's own limit.
wrk keep-alive, medians of ${ROUNDS} interleaved rounds of ${WRK_SECS} s; 1 connection = \`wrk -t1 -c1\`, 16 = \`wrk -t2 -c16\`. Ratios are ours / ceiling unless marked.

| figure | ours | bare tiny_http | ceiling | ratio / target | met? |
|---|---|---|---|---|---|
| throughput, 1 connection | $(num "$rps_ours_1") req/s | $(num "$rps_bare_1") req/s | $(num "$rps_ceiling_1") req/s | $(ratio "$rps_ours_1" "$rps_ceiling_1") (≥ 0.5) | $(met "$rps_ours_1 / $rps_ceiling_1" ">=" 0.5) |
| throughput, 16 connections (each server's pool warmed first: \`py warm\`) | $(num "$rps_ours_16") req/s${base_bin:+ (baseline $(num "$rps_base_16") req/s)} | $(num "$rps_bare_16") req/s | $(num "$rps_ceiling_16") req/s | $(ratio "$rps_ours_16" "$rps_bare_16") x bare (≥ 0.9)${base_bin:+; baseline $(ratio "$rps_base_16" "$rps_bare_16") x bare}; $(ratio "$rps_ours_16" "$rps_ceiling_16") | $(met "$rps_ours_16 / $rps_bare_16" ">=" 0.9) |
| p50 latency, 1 connection | $(ms "$p50_ours_1") | $(ms "$p50_bare_1") | $(ms "$p50_ceiling_1") | $(ratio "$p50_ours_1" "$p50_ceiling_1") | |
| p99 latency, 1 connection | $(ms "$p99_ours_1") | $(ms "$p99_bare_1") | $(ms "$p99_ceiling_1") | $(ratio "$p99_ours_1" "$p99_ceiling_1") (≤ 3) | $(met "$p99_ours_1 / $p99_ceiling_1" "<=" 3) |
| p50 latency, 16 connections | $(ms "$p50_ours_16") | $(ms "$p50_bare_16") | $(ms "$p50_ceiling_16") | $(ratio "$p50_ours_16" "$p50_ceiling_16") | |
| p99 latency, 16 connections | $(ms "$p99_ours_16")${base_bin:+ (baseline $(ms "$p99_base_16"))} | $(ms "$p99_bare_16") | $(ms "$p99_ceiling_16") | $(ratio "$p99_ours_16" "$p99_ceiling_16"); $(ratio "$p99_ours_16" "$p99_bare_16") x bare | |
| p99 latency, fresh 16-connection burst (\`wrk -t2 -c16 -d${BURST_SECS}s\` 0.3 s after start; median of ${FRESH} fresh starts, range) | $(ms "$bp99_ours") ($(calc "sprintf(\"%.2f\", ${bp99_ours_range%–*} / 1000)")–$(calc "sprintf(\"%.2f\", ${bp99_ours_range#*–} / 1000)") ms) | $(ms "$bp99_bare") ($(calc "sprintf(\"%.2f\", ${bp99_bare_range%–*} / 1000)")–$(calc "sprintf(\"%.2f\", ${bp99_bare_range#*–} / 1000)") ms) | | $(ratio "$bp99_ours" "$bp99_bare") x bare (≤ 3) | $(met "$bp99_ours / $bp99_bare" "<=" 3) |
| fresh burst: most of the 16 connections stalled at once (no answer for a whole 0.25-s sample; range over starts) | ${bstall_ours} | ${bstall_bare} | | | |
| a scrape on a fresh connection, 20 silent connections open (20 tries, first right behind them) | $(silent_cell ours 20) | $(silent_cell bare 20) | | 20 of 20 within 100 ms | $(silent_met 20) |
| the same, 200 silent connections open | $(silent_cell ours 200) | $(silent_cell bare 200) | | 20 of 20 within 100 ms | $(silent_met 200) |
| a scrape on a fresh connection right after start: a readiness check, then 0 / 1 / 20 / 200 silent connections (${STARTUP_STARTS} fresh starts each) | $(for n in 0 1 20 200; do printf '%s: %s; ' "$n" "$(startup_cell ours "$n")"; done) | $(for n in 0 1 20 200; do printf '%s: %s; ' "$n" "$(startup_cell bare "$n")"; done) | | none over 100 ms | $(met "${startup_over:-1}" "==" 0) |
| starved connections the guard had to rescue: throughput rounds / fresh starts and silent runs | ${rescued_load} / ${rescued_burst} | | | 0 | $(met "$rescued_load + $rescued_burst" "==" 0) |
| 16 connections, round 1: connections that got no answer for a whole 0.25-s sample: most at once / connection-seconds stalled; max threads | ${st_most} of ${st_est} / ${st_secs} s; ${st_threads} threads | ${bst_most} of ${bst_est} / ${bst_secs} s; ${bst_threads} threads | ${cst_most} of ${cst_est} / ${cst_secs} s; ${cst_threads} threads | | |
| 16 connections, all rounds: non-2xx answers / socket errors seen by wrk | ${non2xx[ours,16]} / ${sockerr[ours,16]} | ${non2xx[bare,16]} / ${sockerr[bare,16]} | ${non2xx[ceiling,16]} / ${sockerr[ceiling,16]} | | |
| render, text, ${render_bytes} bytes (\`cargo bench --bench render\`; fastest batch) | $(num "$render_text") ns ($(num "$render_text_min")) | | | ≤ 2000 ns | $(met "$render_text" "<=" 2000) |
| render, OpenMetrics (fastest batch) | $(num "$render_om") ns ($(num "$render_om_min")) | | | ≤ 2000 ns | $(met "$render_om" "<=" 2000) |
| whole scrape without HTTP: \`/proc\` + snapshot + render, text (fastest batch) | $(num "$scrape_text") ns ($(num "$scrape_text_min")) | | | | |
| allocations per scrape, text / OpenMetrics (\`tests/alloc.rs\`, ${alloc_status}) | ${alloc_text:-?} / ${alloc_om:-?} | | | 0 | $(met "${alloc_text:-1} + ${alloc_om:-1}" "==" 0) |
| static, stripped release binary | $(kib "$size / 1024") (${linkage}, ${stripped}) | $(kib "$(stat -c %s "$bare") / 1024") | $(kib "$ceil_size / 1024") | ≤ 2048 KiB | $(met "$size" "<=" $((2048 * 1024))) |
| exec to first successful scrape (median of ${STARTS}; spawning and reaping /bin/true takes ${spawn_floor_ms} ms here) | $(calc "sprintf(\"%.2f\", $start_ms)") ms (min ${start_min}, max ${start_max}) | | $(calc "sprintf(\"%.2f\", $ceil_start_ms)") ms | ≤ 5 ms | $(met "$start_ms" "<=" 5) |
| idle RSS after ${SETTLE} s | $(mib "$idle_rss") | | $(mib "$ceil_idle_rss") | ≤ 2 MiB | $(met "$idle_rss" "<=" 2048) |
| idle threads | ${idle_threads} | | ${ceil_idle_threads} | | |
| idle CPU, default flags (${IDLE_SECS} s) | $(calc "sprintf(\"%.1f\", $idle_cpu_us)") µs/s (utime+stime: $(calc "sprintf(\"%.1f\", $idle_ticks)") ticks/s at ${hz} Hz) | | | | |
| idle voluntary context switches, all threads | $(calc "sprintf(\"%.1f\", $idle_vcs)")/s | | | | |
| idle wakeups of the main loop vs widget events | $(calc "sprintf(\"%.1f\", $idle_main_vcs)")/s vs $(calc "sprintf(\"%.1f\", $idle_events)")/s | | | one per event + ≤ 2/s probe/guard/watchdog ticks | $(met "$m1 - $m0" "<=" "$idle_events_max + 2 * $IDLE_SECS") |
| RSS after the 16-connection load | $(mib "$load_rss") (peak $(mib "$load_hwm")) | $(mib "$bare_load_rss") | $(mib "$ceil_load_rss") | ≤ 4 MiB | $(met "$load_rss" "<=" 4096) |
| widget event lateness, idle (1 ms widgets, ${lin} events) | p50 $(us_or_dash "$li50"), p99 $(us_or_dash "$li99"), max $(us_or_dash "$limax") | | | | |
| widget event lateness under 16-connection load ($(num "${late_rps:-0}") req/s; ${lln} logged steps of ~${late_events} events) | p50 $(us_or_dash "$ll50"), p99 $(us_or_dash "$ll99"), max $(us_or_dash "$llmax") | | | p99 ≤ 2 ms | $(lat_met "$ll99") |

Reproduce: \`bash tests/bench/run.sh\` ($(($(date +%s) - started_at)) s here; raw outputs in \`target/bench/raw/\`).
EOF
)
printf '%s\n' "$table" | tee "$out/results.md"
