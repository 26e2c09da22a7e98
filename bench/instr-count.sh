#!/usr/bin/env bash
# User-space instructions per RADIUS request in sxs-radiusd, counted by callgrind: the same
# figure in every run (±0.3 %), where CPU time on a shared machine moves by ±25 %. What the
# kernel does (a good half of the CPU time, see docs/benchmarks.md) is not counted, and fewer
# instructions is not always less time: confirm with `sxs-bench compare`.
#
#   bench/instr-count.sh [SXS_RADIUSD] [SECONDS]     # needs valgrind (apt-get install valgrind)
#
# Starts the binary (default target/release/sxs-radiusd) under callgrind with RUST_LOG=info,
# drives it with `sxs-bench radius --server` (16 in flight), zeroes the counters after two
# seconds (start-up and warm-up excluded), dumps them at the end, and prints instructions per
# decision line written in between.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
bin=${1:-$here/target/release/sxs-radiusd}
seconds=${2:-6}
[ "$seconds" -ge 4 ] || { echo "SECONDS: at least 4" >&2; exit 2; }
bench=$here/target/release/sxs-bench
. "$here/bench/serve.sh"
serve valgrind --tool=callgrind --callgrind-out-file="$dir/cg.%p"
"$bench" radius --server "$addr" --secret benchmark-shared-secret \
    --sim-listen "127.0.0.1:$port" --in-flight 16 --seconds "$seconds" >"$dir/bench" &
load=$!
sleep 2
callgrind_control --zero "$pid" >/dev/null 2>&1
before=$(decisions)
sleep $((seconds - 2))
callgrind_control --dump "$pid" >/dev/null 2>&1
after=$(decisions)
wait "$load" || true
kill -TERM "$pid" 2>/dev/null || true
wait "$pid" || true
dump=$(ls -t "$dir"/cg.*.1 | head -1)
ir=$(callgrind_annotate "$dump" | sed -n 's/^ *\([0-9,]*\) .*PROGRAM TOTALS.*/\1/p' | tr -d ,)
n=$((after - before))
echo "$(basename "$bin"): $n requests, $ir instructions, $(( ir / (n > 0 ? n : 1) )) per request"
[ -z "${KEEP:-}" ] || echo "callgrind data: $dump (callgrind_annotate --inclusive=yes)"
