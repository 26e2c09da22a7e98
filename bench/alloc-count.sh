#!/usr/bin/env bash
# Heap allocations per RADIUS request in sxs-radiusd, counted by heaptrack (LD_PRELOAD: every
# malloc/calloc/realloc of the process, start-up included, which N requests make negligible).
#
#   bench/alloc-count.sh [SXS_RADIUSD] [SECONDS]     # needs heaptrack (apt-get install heaptrack)
#
# Starts the binary (default target/release/sxs-radiusd) under heaptrack with RUST_LOG=info,
# drives it with `sxs-bench radius --server` (64 in flight, the simulator in sxs-bench), stops
# it with SIGTERM, and prints allocation calls per decision line.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
bin=${1:-$here/target/release/sxs-radiusd}
seconds=${2:-5}
bench=$here/target/release/sxs-bench
. "$here/bench/serve.sh"
serve heaptrack -o "$dir/heap"
"$bench" radius --server "$addr" --secret benchmark-shared-secret \
    --sim-listen "127.0.0.1:$port" --in-flight 64 --seconds "$seconds" | tail -1
# heaptrack runs the server as its child: signal the server itself.
kill -TERM "$(pgrep -P "$pid" -f sxs-radiusd || echo "$pid")" 2>/dev/null || true
wait "$pid" || true
n=$(decisions)
echo "heaptrack data: $(ls "$dir"/heap.*)"
summary=$(heaptrack_print --print-peaks 0 --print-allocators 0 --print-temporary 0 \
    --print-leaks 0 "$dir"/heap*.zst 2>/dev/null | tail -12)
calls=$(sed -n 's/^calls to allocation functions: \([0-9]*\).*/\1/p' <<<"$summary")
echo "$(basename "$bin"): $n decisions, $calls allocation calls: $(( calls / (n > 0 ? n : 1) )) per request (start-up included)"
