# Sourced by bench/alloc-count.sh and bench/instr-count.sh: `serve WRAPPER...` starts
# "$bin" (sxs-radiusd) under WRAPPER (heaptrack, valgrind) with RUST_LOG=info, against the
# simulator `sxs-bench` will run on $port, and sets $pid (the wrapper's), $addr and $dir
# (scratch: config, stdout "out", log "log"; removed on exit unless KEEP is set).
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

serve() {
    RUST_LOG=info "$@" "$bin" --config "$dir/sxs.toml" --listen 127.0.0.1:0 \
        >"$dir/out" 2>"$dir/log" &
    pid=$!
    addr=
    for _ in $(seq 600); do
        addr=$(sed -n 's/^sxs-radiusd listening on //p' "$dir/out")
        [ -n "$addr" ] && break
        sleep 0.05
    done
    [ -n "$addr" ] || { cat "$dir/out" "$dir/log"; exit 1; }
}

# Decision lines written so far.
decisions() { grep -c 'radius decision' "$dir/log" || true; }
