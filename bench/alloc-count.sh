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
dir=$(mktemp -d)
trap '[ -n "${KEEP:-}" ] || rm -rf "$dir"' EXIT
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cat >"$dir/sxs.toml" <<CONF
[sxs]
servers = ["http://127.0.0.1:$port/SxSWS"]
organization_id = "1"
timeout = "10s"
[radius]
reject_delay = "0s"
[[radius.clients]]
name = "bench"
address = "127.0.0.1"
secret = "benchmark-shared-secret"
require_message_authenticator = true
CONF
chmod 600 "$dir/sxs.toml"
RUST_LOG=info heaptrack -o "$dir/heap" "$bin" --config "$dir/sxs.toml" --listen 127.0.0.1:0 \
    >"$dir/out" 2>"$dir/log" &
pid=$!
for _ in $(seq 200); do
    addr=$(sed -n 's/^sxs-radiusd listening on //p' "$dir/out")
    [ -n "$addr" ] && break
    sleep 0.05
done
[ -n "$addr" ] || { cat "$dir/out" "$dir/log"; exit 1; }
"$bench" radius --server "$addr" --secret benchmark-shared-secret \
    --sim-listen "127.0.0.1:$port" --in-flight 64 --seconds "$seconds" | tail -1
# heaptrack runs the server as its child: signal the server itself.
kill -TERM "$(pgrep -P "$pid" -f sxs-radiusd || echo "$pid")" 2>/dev/null || true
wait "$pid" || true
decisions=$(grep -c 'radius decision' "$dir/log" || true)
echo "heaptrack data: $(ls "$dir"/heap.*)"
summary=$(heaptrack_print --print-peaks 0 --print-allocators 0 --print-temporary 0 \
    --print-leaks 0 "$dir"/heap*.zst 2>/dev/null | tail -12)
calls=$(sed -n 's/^calls to allocation functions: \([0-9]*\).*/\1/p' <<<"$summary")
echo "$(basename "$bin"): $decisions decisions, $calls allocation calls: $(( calls / (decisions > 0 ? decisions : 1) )) per request (start-up included)"
