#!/usr/bin/env bash
# Can an outsider tell an enrolled user from an unenrolled one by how long a refusal takes?
# (#12 defect 8.) For PAM (pamtester under bubblewrap, a private /etc/pam.d) and RADIUS
# (radclient), N refusals each of: an enrolled user with a wrong OTP (SxS is asked) and a
# user absent from the token map with unenrolled = "deny" (SxS is not asked), once with the
# default floor (pam_sxs deny_floor=1000, radius.reject_delay = "1s") and once with the floor
# off, against sxs-sim on loopback. Prints min/median/p90/max in ms. Not a test: the figures
# go to docs/benchmarks.md. Needs root (pamtester with a private /etc/pam.d), pamtester,
# bwrap, radclient.   bench/timing.sh [N]
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-20}
[ "$(id -u)" = 0 ] || { echo "error: run as root (pamtester under bwrap)" >&2; exit 1; }
cargo build --release -q -p pam_sxs
cargo build --release -q -p sxs-radiusd -p sxs-common --bins
rel=${CARGO_TARGET_DIR:-target}/release
dir=$(mktemp -d)
chmod 0755 "$dir"
pids=()
trap 'for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$dir"' EXIT

printf '[[user]]\nid = "alice"\ntoken_sn = "2000038250"\n' >"$dir/seed.toml"
"$rel/sxs-sim" --listen 127.0.0.1:0 --seed "$dir/seed.toml" --lockout 1000000 >"$dir/sim.out" 2>/dev/null &
pids+=($!)
for _ in $(seq 100); do grep -q listening "$dir/sim.out" 2>/dev/null && break; sleep 0.05; done
url=$(head -1 "$dir/sim.out" | awk '{print $4}')
printf 'alice 2000038250\n' >"$dir/tokens.map"
secret=timing-secret-0123
write_config() { # reject_delay
  cat >"$dir/sxs.toml" <<TOML
[sxs]
servers = ["$url"]
organization_id = "1"
[identity]
send = "token_sn"
token_map = "$dir/tokens.map"
[policy]
unenrolled = "deny"
[radius]
reject_delay = "$1"
[[radius.clients]]
name = "local"
address = "127.0.0.1"
secret = "$secret"
require_message_authenticator = false
TOML
  chmod 0600 "$dir/sxs.toml"
}

# Reads milliseconds, one a line; prints min, median, p90, max, mean.
stats() { sort -n | awk '{v[NR]=$1; s+=$1} END {printf "min %7.1f  median %7.1f  p90 %7.1f  max %7.1f  mean %7.1f ms", v[1], v[int((NR+1)/2)], v[int(NR*0.9+0.5)], v[NR], s/NR}'; }
# Runs "$@" n times (it must fail: a refusal), printing each run's wall time in ms.
times() {
  for _ in $(seq "$n"); do
    local t0 t1
    t0=$(date +%s%N)
    if "$@" >/dev/null 2>&1; then echo "error: accepted: $*" >&2; exit 1; fi
    t1=$(date +%s%N)
    echo $(((t1 - t0) / 1000)) | awk '{printf "%.3f\n", $1/1000}'
  done
}

# --- PAM -----------------------------------------------------------------------------------
mkdir -p "$dir/pam.d"
write_config 1s
pam() { # user otp
  echo "$2" | bwrap --bind / / --dev /dev --bind "$dir/pam.d" /etc/pam.d --die-with-parent \
    pamtester sxs-timing "$1" authenticate
}
for floor in 1000 0; do
  printf 'auth required %s config=%s nodelay deny_floor=%s\n' "$PWD/$rel/libpam_sxs.so" "$dir/sxs.toml" "$floor" >"$dir/pam.d/sxs-timing"
  echo "PAM (pamtester), deny_floor=$floor, fail_delay off (libpam adds nothing), $n refusals each:"
  printf '  enrolled, wrong OTP (SxS asked)      %s\n' "$(times pam alice 000000 | stats)"
  printf '  not in token map (SxS not asked)     %s\n' "$(times pam mallory 000000 | stats)"
done

# --- RADIUS --------------------------------------------------------------------------------
radius() { # user otp
  echo "User-Name = \"$1\", User-Password = \"$2\"" |
    radclient -q -r 1 -t 10 "$addr" auth "$secret" | grep -q Access-Accept
}
for delay in 1s 0s; do
  write_config "$delay"
  "$rel/sxs-radiusd" --config "$dir/sxs.toml" --listen 127.0.0.1:0 >"$dir/radiusd.out" 2>"$dir/radiusd.err" &
  rpid=$!
  pids+=("$rpid")
  for _ in $(seq 100); do grep -q listening "$dir/radiusd.out" 2>/dev/null && break; sleep 0.05; done
  addr=$(sed -n 's/^sxs-radiusd listening on //p' "$dir/radiusd.out" | head -1)
  echo "RADIUS (radclient), reject_delay = \"$delay\", $n refusals each:"
  printf '  enrolled, wrong OTP (SxS asked)      %s\n' "$(times radius alice 000000 | stats)"
  printf '  not in token map (SxS not asked)     %s\n' "$(times radius mallory 000000 | stats)"
  kill "$rpid"
  wait "$rpid" 2>/dev/null || true
done
echo "simulator counters: $(curl -s "$url/sim/stats")"
