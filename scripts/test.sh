#!/usr/bin/env bash
# The README's test command: installs what the tests need, then runs every test.
# Runs as root: the PAM tests install throw-away PAM services and users and start sshd.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" != 0 ]; then
  echo "error: the tests need root (PAM services, test users, sshd); run: sudo $0" >&2
  exit 1
fi
scripts/install-test-deps.sh
cargo test --workspace --all-targets --locked
# A real OpenVPN server and client through sxs-radiusd (network namespaces, /dev/net/tun).
SXS_BIN_DIR="${CARGO_TARGET_DIR:-target}/debug" examples/vpn/openvpn/test.sh
