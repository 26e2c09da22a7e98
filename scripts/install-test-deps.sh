#!/usr/bin/env bash
# Installs the Debian packages the build and the tests need. Idempotent; needs root.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
packages=(
  # build
  pkg-config libpam0g-dev
  # jemalloc, sxs-radiusd's allocator in the packages, built from source (packaging/build)
  make
  # real peers of the tests
  pamtester bubblewrap freeradius-utils openssh-server openssh-client sudo sshpass binutils
  # watches libpam's pam_fail_delay sleep from outside (pam_sxs tests)
  strace
  # the tested VPN example (examples/vpn/openvpn/test.sh)
  openvpn openvpn-auth-radius openssl iproute2 iputils-ping
  # an independent RFC 6238 implementation, and curl for the demo, docs and the metrics test
  oathtool curl
  # the DP4Mobile answer checked against its DTD
  libxml2-utils
  # the RADIUS/TLS (RFC 6614) peer of radiusd/tests/it/radsec.rs
  radsecproxy
  # first factors (radiusd/tests/it/first_factor.rs): a real directory and a real RADIUS
  # server, configured by the tests in temporary directories; freeradius-common's dictionary
  slapd freeradius freeradius-common
  # the recipes of docs/radiusd.md, run as written (radiusd/tests/it/recipes.rs)
  libpam-radius-auth
  # the shared store of several sxs-radiusd instances (radiusd/tests/it/shared.rs); the
  # tests start their own on a free loopback port, the packaged service stays unused
  redis-server
)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing: ${missing[*]}"
  apt-get update -q
  apt-get install -y -q --no-install-recommends "${missing[@]}"
  # The tests run their own radsecproxy, freeradius, slapd and redis-server on free loopback
  # ports; the packages' services (where systemd runs) would only hold 1812, 389 and 6379.
  if command -v systemctl >/dev/null && systemctl is-system-running >/dev/null 2>&1; then
    for svc in radsecproxy freeradius slapd redis-server; do
      if [[ " ${missing[*]} " == *" $svc "* ]]; then
        systemctl disable --now "$svc.service" || true
      fi
    done
  fi
fi
