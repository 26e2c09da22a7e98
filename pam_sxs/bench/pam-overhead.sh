#!/usr/bin/env bash
# Measures what pam_sxs.so costs: the time of one authentication through pamtester with
# pam_sxs against the simulator (no added latency), minus the same with pam_permit only, and
# the size of the stripped release module. Prints the figures; docs/benchmarks.md records them.
#
# Needs root, pamtester and bubblewrap (the PAM services live in a private /etc/pam.d).
# Usage: pam_sxs/bench/pam-overhead.sh [ITERATIONS]   (default 300)
set -euo pipefail

N="${1:-300}"
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
TARGET="${CARGO_TARGET_DIR:-$ROOT/target}"
for tool in pamtester bwrap strip; do
    command -v "$tool" >/dev/null || { echo "error: $tool is required" >&2; exit 1; }
done
[ "$(id -u)" = 0 ] || { echo "error: run as root (pamtester reads /etc/shadow-level PAM services)" >&2; exit 1; }

cd "$ROOT"
cargo build --release -q -p pam_sxs
cargo build --release -q -p sxs-common --bin sxs-sim

WORK="$(mktemp -d /tmp/sxs-pam-bench.XXXXXX)"
SIM_PID=""
cleanup() {
    [ -n "$SIM_PID" ] && kill "$SIM_PID" 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT

MODULE="$WORK/pam_sxs.so"
cp "$TARGET/release/libpam_sxs.so" "$MODULE"
strip "$MODULE"
SIZE=$(stat -c %s "$MODULE")

cat > "$WORK/seed.toml" <<SEED
[[user]]
id = "alice"
token_sn = "2000038252"
secret = "JBSWY3DPEHPK3PXP"
SEED
# --allow-replay: the same OTP is accepted on every iteration (benchmarks only).
"$TARGET/release/sxs-sim" --listen 127.0.0.1:0 --seed "$WORK/seed.toml" --allow-replay \
    > "$WORK/sim.out" 2> "$WORK/sim.err" &
SIM_PID=$!
for _ in $(seq 100); do
    grep -q '^sxs-sim listening on' "$WORK/sim.out" 2>/dev/null && break
    sleep 0.05
done
URL=$(head -1 "$WORK/sim.out" | awk '{print $4}')
HOSTPORT=${URL#http://}
exec 3<>"/dev/tcp/${HOSTPORT%:*}/${HOSTPORT#*:}"
printf 'GET /sim/otp/alice HTTP/1.0\r\nHost: x\r\n\r\n' >&3
OTP=$(tail -1 <&3 | tr -d '\r\n')
exec 3>&-

cat > "$WORK/sxs.toml" <<CONF
[sxs]
servers = ["$URL"]
organization_id = "1"
timeout = "2s"
CONF
mkdir "$WORK/pam.d"
echo "auth required $MODULE config=$WORK/sxs.toml" > "$WORK/pam.d/bench-sxs"
echo "auth required pam_permit.so" > "$WORK/pam.d/bench-permit"

# Runs N authentications of SERVICE inside one bubblewrap; prints microseconds per auth.
per_auth_us() {
    bwrap --bind / / --dev /dev --bind "$WORK/pam.d" /etc/pam.d bash -c '
        svc=$1; n=$2; otp=$3
        for i in 1 2 3 4 5; do echo "$otp" | pamtester "$svc" alice authenticate >/dev/null 2>&1 || exit 1; done
        start=$(date +%s%N)
        for ((i = 0; i < n; i++)); do
            echo "$otp" | pamtester "$svc" alice authenticate >/dev/null 2>&1 || { echo "authentication failed" >&2; exit 1; }
        done
        end=$(date +%s%N)
        echo $(( (end - start) / n / 1000 ))
    ' _ "$1" "$N" "$OTP"
}

SXS_US=$(per_auth_us bench-sxs)
PERMIT_US=$(per_auth_us bench-permit)
OVER_US=$((SXS_US - PERMIT_US))

printf 'iterations                 %d\n' "$N"
printf 'pamtester + pam_permit     %d.%03d ms per authentication\n' $((PERMIT_US / 1000)) $((PERMIT_US % 1000))
printf 'pamtester + pam_sxs        %d.%03d ms per authentication\n' $((SXS_US / 1000)) $((SXS_US % 1000))
printf 'pam_sxs overhead           %d.%03d ms (target <= 5 ms)\n' $((OVER_US / 1000)) $((OVER_US % 1000))
printf 'stripped pam_sxs.so        %d bytes = %s MiB (target <= 6 MiB)\n' "$SIZE" \
    "$(awk -v s="$SIZE" 'BEGIN { printf "%.2f", s / 1048576 }')"
