#!/usr/bin/env bash
# validateOtp per second served by sxs-sim alone, driven by wrk (Debian package `wrk`).
# Prints wrk's report and the simulator's counters. Not a test: figures go to docs/benchmarks.md.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v wrk >/dev/null || apt-get install -y -q wrk
cargo build --release -q -p sxs-common --bin sxs-sim
dir=$(mktemp -d)
trap 'kill "$sim" 2>/dev/null || true; rm -rf "$dir"' EXIT
printf '[[user]]\nid = "bench"\ntoken_sn = "2000000042"\n' > "$dir/seed.toml"
target/release/sxs-sim --listen 127.0.0.1:0 --seed "$dir/seed.toml" --allow-replay > "$dir/out" 2>/dev/null &
sim=$!
for _ in $(seq 50); do grep -q listening "$dir/out" 2>/dev/null && break; sleep 0.1; done
url=$(head -1 "$dir/out" | awk '{print $4}')
otp=$(curl -s "$url/sim/otp/bench")
cat > "$dir/post.lua" <<LUA
wrk.method = "POST"
wrk.headers["OrganizationId"] = "1"
wrk.headers["Content-Type"] = "text/xml"
wrk.body = [[<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" xmlns:aut="http://authentication.ws.sxs.logos.hr"><soapenv:Header/><soapenv:Body><aut:validateOtpRequest><otp>$otp</otp><applicationProfileName>OTP_APP</applicationProfileName><UserID>bench</UserID></aut:validateOtpRequest></soapenv:Body></soapenv:Envelope>]]
LUA
wrk -t1 -c64 -d8s -s "$dir/post.lua" "$url/SxSWS/SxS5Authentication"
echo "simulator counters: $(curl -s "$url/sim/stats")"
