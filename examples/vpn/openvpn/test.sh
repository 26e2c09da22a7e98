#!/usr/bin/env bash
# End-to-end test of this example: a real OpenVPN server with the openvpn-auth-radius plugin
# (configured from radiusplugin.cnf and server.conf.snippet in this folder) asks a real
# sxs-radiusd (its client entry from sxs.toml.snippet), which checks the password with a real
# slapd (LDAPS, a test CA) and then the OTP with sxs-sim. Real OpenVPN clients, with user name
# alice and her directory password followed by an OTP:
#   0. with require_message_authenticator = true (the default): the plugin's requests are
#      dropped for lack of a Message-Authenticator, AUTH_FAILED, SxS never asked
#   1. password + current OTP: "Initialization Sequence Completed", ping through the tunnel, a
#      TLS renegotiation that keeps the tunnel up without a second OTP (auth-gen-token)
#   2. password + wrong OTP: AUTH_FAILED
#   3. wrong password + current OTP: AUTH_FAILED, and SxS never asked
# and sxs-sim's counters show 2 validations, 1 accept, 1 reject.
#
# Two throw-away network namespaces stand for the two hosts, joined by a veth pair:
#   server ns: sxs-sim, slapd on ldaps://127.0.0.1:6636,
#              sxs-radiusd on 127.0.0.1:1812 and :1813 (radius.accounting = true),
#              the OpenVPN server on UDP 10.199.0.1:1194 (tunnel 10.199.8.0/24, server .1)
#   client ns: the OpenVPN clients (10.199.0.2)
# These addresses exist only inside the two namespaces, which are deleted on exit.
#
# Accounting: radiusplugin 2.1 refuses a connection whose Accounting-Request Start is not
# answered, so sxs-radiusd answers accounting (radius.accounting = true; nothing is kept).
#
# Needs root (namespaces, tun). Usage: examples/vpn/openvpn/test.sh
#   SXS_BIN_DIR=DIR   where sxs-radiusd and sxs-sim are (default ${CARGO_TARGET_DIR:-target}/debug;
#                     built with cargo when absent and SXS_BIN_DIR is not set)
#   KEEP_TMP=1        keep the temporary directory (configs, certificates, logs)
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../../.." && pwd)

# Bounds, in seconds.
START_TIMEOUT=20   # a daemon prints its "listening" line / the server its init line
CONNECT_TIMEOUT=30 # a client reaches "Initialization Sequence Completed" or AUTH_FAILED
RENEG_SECS=5       # client 1 renegotiates its TLS session after this
LIFETIME=150       # hard upper bound on every process this script starts

TAG="sxsovpn$$"
NS_S="${TAG}s"
NS_C="${TAG}c"
VETH_S="${TAG}s" # interface names: at most 15 characters
VETH_C="${TAG}c"
UNDERLAY_S=10.199.0.1
UNDERLAY_C=10.199.0.2
TUN_NET=10.199.8.0
TUN_SERVER=10.199.8.1
VPN_PORT=1194
RADIUS_PORT=1812
ACCT_PORT=1813
LDAPS_PORT=6636
LDAP_BASE="dc=example,dc=com" # as in sxs.toml.snippet
ALICE_PW="alice-directory-pw"

log() { printf '[openvpn-test] %s\n' "$*"; }
fail() {
  printf '[openvpn-test] FAIL: %s\n' "$*" >&2
  exit 1
}

if [ "$(id -u)" != 0 ]; then
  fail "needs root (network namespaces, /dev/net/tun); run: sudo $0"
fi

# --- packages --------------------------------------------------------------------------------
PKGS=(openvpn openvpn-auth-radius openssl curl iproute2 iputils-ping slapd)
missing=()
[ -x /usr/sbin/slapd ] || missing+=(slapd)
command -v openvpn >/dev/null || missing+=(openvpn)
[ -f /usr/lib/openvpn/radiusplugin.so ] || missing+=(openvpn-auth-radius)
command -v openssl >/dev/null || missing+=(openssl)
command -v curl >/dev/null || missing+=(curl)
command -v ip >/dev/null || missing+=(iproute2)
command -v ping >/dev/null || missing+=(iputils-ping)
if [ ${#missing[@]} -gt 0 ]; then
  log "installing Debian packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  {
    timeout 300 apt-get install -y -qq "${missing[@]}" >/dev/null 2>&1 ||
      { timeout 300 apt-get update -qq && timeout 300 apt-get install -y -qq "${missing[@]}" >/dev/null; }
  } || fail "could not install ${missing[*]}"
fi
log "packages: ${PKGS[*]} (openvpn $(dpkg-query -W -f='${Version}' openvpn 2>/dev/null || echo '?'), openvpn-auth-radius $(dpkg-query -W -f='${Version}' openvpn-auth-radius 2>/dev/null || echo '?'))"
[ -c /dev/net/tun ] || fail "/dev/net/tun does not exist"

# --- binaries --------------------------------------------------------------------------------
if [ -n "${SXS_BIN_DIR:-}" ]; then
  BIN=$SXS_BIN_DIR
else
  BIN=${CARGO_TARGET_DIR:-$ROOT/target}/debug
  case $BIN in /*) ;; *) BIN=$ROOT/$BIN ;; esac
  if [ ! -x "$BIN/sxs-radiusd" ] || [ ! -x "$BIN/sxs-sim" ]; then
    log "building sxs-radiusd and sxs-sim (cargo build -p sxs-radiusd -p sxs-common)"
    (cd "$ROOT" && cargo build -q -p sxs-radiusd -p sxs-common) || fail "cargo build failed"
  fi
fi
for b in sxs-radiusd sxs-sim; do
  [ -x "$BIN/$b" ] || fail "$BIN/$b not found (set SXS_BIN_DIR to the directory holding it)"
done
log "binaries: $BIN/{sxs-radiusd,sxs-sim}"
# sxs-radiusd reads every SXS_* variable as a configuration override (SXS_BIN_DIR would be the
# unknown key `bin_dir`, and the configuration refused): the daemons get none of them.
for v in $(compgen -e | grep '^SXS_' || true); do unset "$v"; done

# --- cleanup ---------------------------------------------------------------------------------
TMP=$(mktemp -d /tmp/sxs-openvpn-test.XXXXXX)
PIDS=()
stop() { # stop PID...: SIGTERM, then SIGKILL after 5 s
  local p
  for p in "$@"; do kill "$p" 2>/dev/null || true; done
  for p in "$@"; do
    timeout 5 tail --pid="$p" -f /dev/null 2>/dev/null || kill -9 "$p" 2>/dev/null || true
  done
}
cleanup() {
  local rc=$?
  set +e
  stop "${PIDS[@]}"
  ip netns del "$NS_C" 2>/dev/null # takes its tun and its end of the veth pair with it
  ip netns del "$NS_S" 2>/dev/null
  if [ "$rc" != 0 ]; then
    for f in sim.err slapd.err radiusd-strict.err radiusd.err server.log \
      client-strict.log client-ok.log client-bad.log client-badpw.log; do
      [ -s "$TMP/$f" ] || continue
      printf '\n----- %s (last 30 lines) -----\n' "$f" >&2
      tail -n 30 "$TMP/$f" >&2
    done
  fi
  if [ -n "${KEEP_TMP:-}" ]; then log "kept $TMP"; else rm -rf "$TMP"; fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# wait_for FILE REGEX SECS [PID]: until FILE has a line matching REGEX; 1 after SECS seconds,
# 2 when PID has exited without it.
wait_for() {
  local file=$1 re=$2 secs=$3 pid=${4:-} i
  for ((i = 0; i < secs * 10; i++)); do
    grep -qE "$re" "$file" 2>/dev/null && return 0
    if [ -n "$pid" ] && ! kill -0 "$pid" 2>/dev/null; then
      grep -qE "$re" "$file" 2>/dev/null && return 0
      return 2
    fi
    sleep 0.1
  done
  return 1
}
# bg_in NS LOGOUT LOGERR CMD...: runs CMD in namespace NS in the background, bounded by LIFETIME;
# sets BGPID.
bg_in() {
  local ns=$1 out=$2 err=$3
  shift 3
  timeout "$LIFETIME" ip netns exec "$ns" "$@" >"$out" 2>"$err" &
  BGPID=$!
  PIDS+=("$BGPID")
}

# --- two hosts -------------------------------------------------------------------------------
ip netns add "$NS_S"
ip netns add "$NS_C"
ip link add "$VETH_S" netns "$NS_S" type veth peer name "$VETH_C" netns "$NS_C"
ip -n "$NS_S" link set lo up
ip -n "$NS_C" link set lo up
ip -n "$NS_S" addr add "$UNDERLAY_S/24" dev "$VETH_S"
ip -n "$NS_C" addr add "$UNDERLAY_C/24" dev "$VETH_C"
ip -n "$NS_S" link set "$VETH_S" up
ip -n "$NS_C" link set "$VETH_C" up
log "hosts: netns $NS_S ($UNDERLAY_S) <-veth-> netns $NS_C ($UNDERLAY_C)"

# --- certificates: a throw-away CA, a server and a client certificate (openssl) ---------------
PKI=$TMP/pki
mkdir -p "$PKI"
(
  cd "$PKI"
  umask 077
  ec() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }
  ec ca.key
  openssl req -x509 -new -key ca.key -subj "/CN=sxs-openvpn-test CA" -days 2 -out ca.crt \
    -addext basicConstraints=critical,CA:true -addext keyUsage=critical,keyCertSign,cRLSign
  for who in server client ldap; do
    ec "$who.key"
    openssl req -new -key "$who.key" -subj "/CN=$who" -out "$who.csr"
    if [ "$who" = client ]; then eku=clientAuth; else eku=serverAuth; fi
    printf 'basicConstraints=CA:false\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=%s\n' \
      "$eku" >"$who.ext"
    if [ "$who" = ldap ]; then printf 'subjectAltName=IP:127.0.0.1\n' >>"$who.ext"; fi
    openssl x509 -req -in "$who.csr" -CA ca.crt -CAkey ca.key -CAcreateserial -days 2 \
      -extfile "$who.ext" -out "$who.crt" 2>/dev/null
  done
) || fail "openssl could not make the test certificates"
log "certificates: throw-away CA, server, client and LDAP certificates (openssl, EC P-256)"

# --- slapd: the directory with alice's password ------------------------------------------------
mkdir -p "$TMP/slapd.d" "$TMP/ldapdb"
cat >"$TMP/slapd-config.ldif" <<LDIF
dn: cn=config
objectClass: olcGlobal
cn: config
olcPidFile: $TMP/slapd.pid
olcTLSCACertificateFile: $PKI/ca.crt
olcTLSCertificateFile: $PKI/ldap.crt
olcTLSCertificateKeyFile: $PKI/ldap.key

dn: cn=module{0},cn=config
objectClass: olcModuleList
cn: module{0}
olcModulePath: /usr/lib/ldap
olcModuleLoad: back_mdb

dn: cn=schema,cn=config
objectClass: olcSchemaConfig
cn: schema

include: file:///etc/ldap/schema/core.ldif

include: file:///etc/ldap/schema/cosine.ldif

include: file:///etc/ldap/schema/inetorgperson.ldif

dn: olcDatabase={-1}frontend,cn=config
objectClass: olcDatabaseConfig
objectClass: olcFrontendConfig
olcDatabase: {-1}frontend

dn: olcDatabase={1}mdb,cn=config
objectClass: olcDatabaseConfig
objectClass: olcMdbConfig
olcDatabase: {1}mdb
olcSuffix: $LDAP_BASE
olcDbDirectory: $TMP/ldapdb
olcDbMaxSize: 10485760
olcAccess: {0}to attrs=userPassword by anonymous auth by self read by * none
olcAccess: {1}to * by users read by * none
LDIF
cat >"$TMP/slapd-data.ldif" <<LDIF
dn: $LDAP_BASE
objectClass: dcObject
objectClass: organization
dc: example
o: Example

dn: ou=people,$LDAP_BASE
objectClass: organizationalUnit
ou: people

dn: uid=alice,ou=people,$LDAP_BASE
objectClass: inetOrgPerson
uid: alice
cn: Alice
sn: Alice
userPassword: $ALICE_PW
LDIF
slapadd -q -n 0 -F "$TMP/slapd.d" -l "$TMP/slapd-config.ldif" || fail "slapadd (config) failed"
slapadd -q -n 1 -F "$TMP/slapd.d" -l "$TMP/slapd-data.ldif" || fail "slapadd (data) failed"
bg_in "$NS_S" "$TMP/slapd.out" "$TMP/slapd.err" /usr/sbin/slapd -d 256 -F "$TMP/slapd.d" -h "ldaps://127.0.0.1:$LDAPS_PORT/"
wait_for "$TMP/slapd.err" 'slapd starting' "$START_TIMEOUT" "$BGPID" || fail "slapd did not start"
log "slapd: ldaps://127.0.0.1:$LDAPS_PORT (uid=alice,ou=people,$LDAP_BASE)"

# --- sxs-sim ---------------------------------------------------------------------------------
cat >"$TMP/seed.toml" <<'EOF'
[[user]]
id = "alice"
token_sn = "2000038252"
secret = "JBSWY3DPEHPK3PXP"
EOF
bg_in "$NS_S" "$TMP/sim.out" "$TMP/sim.err" "$BIN/sxs-sim" --listen 127.0.0.1:0 --seed "$TMP/seed.toml"
wait_for "$TMP/sim.out" '^sxs-sim listening on http://' "$START_TIMEOUT" "$BGPID" ||
  fail "sxs-sim did not start"
SIM=$(sed -n 's/^sxs-sim listening on //p' "$TMP/sim.out" | head -n1)
sim() { ip netns exec "$NS_S" curl -sf --max-time 5 "$@"; }
stat_of() { sed -n "s/.*\"$2\":\([0-9]*\).*/\1/p" <<<"$1"; }
log "sxs-sim: $SIM"

# --- the shared secret ---------------------------------------------------------------------------
SECRET="sxs-openvpn-test-$(openssl rand -hex 8)"
(umask 077 && printf '%s\n' "$SECRET" >"$TMP/openvpn.secret")

# --- sxs-radiusd: [[radius.clients]] from sxs.toml.snippet -------------------------------------
# make_config FILE [strict]: the test's sxs.toml; "strict" sets require_message_authenticator
# back to the default (true).
make_config() {
  local file=$1 strict=${2:-}
  (
    umask 077
    {
      printf '[sxs]\nservers = ["%s"]\norganization_id = "1"\n\n' "$SIM"
      # As sxs.toml.snippet says: loopback only, accounting answered on the accounting port.
      printf '[radius]\nlisten = ["127.0.0.1:%s", "127.0.0.1:%s"]\naccounting = true\nmode = "otp"\nreject_delay = "0s"\n\n' "$RADIUS_PORT" "$ACCT_PORT"
      # The example's client entry and directory, with this test's secret file, slapd and CA.
      sed -e "s|^secret_file = .*|secret_file = \"$TMP/openvpn.secret\"|" \
        -e "s|^urls = .*|urls = [\"ldaps://127.0.0.1:$LDAPS_PORT\"]|" \
        -e "s|^ca_file = .*|ca_file = \"$PKI/ca.crt\"|" "$HERE/sxs.toml.snippet"
    } >"$file"
    if [ -n "$strict" ]; then
      sed -i 's/^require_message_authenticator = .*/require_message_authenticator = true/' "$file"
    fi
  )
}
start_radiusd() { # start_radiusd CONFIG NAME: sets RADIUSD_PID
  bg_in "$NS_S" "$TMP/$2.out" "$TMP/$2.err" "$BIN/sxs-radiusd" --config "$1"
  RADIUSD_PID=$BGPID
  wait_for "$TMP/$2.out" '^sxs-radiusd listening on ' "$START_TIMEOUT" "$RADIUSD_PID" ||
    fail "sxs-radiusd did not start ($2)"
}
make_config "$TMP/sxs.toml"
make_config "$TMP/sxs-strict.toml" strict
grep -q '^require_message_authenticator = false' "$TMP/sxs.toml" ||
  fail "sxs.toml.snippet no longer sets require_message_authenticator = false"

# --- OpenVPN server: radiusplugin.cnf + server.conf.snippet ------------------------------------
# The plugin's configuration: the example's, with this test's paths and shared secret.
(
  umask 077
  sed -e "s|^OpenVPNConfig=.*|OpenVPNConfig=$TMP/server.conf|" \
    -e "s|^\([[:space:]]*\)sharedsecret=.*|\1sharedsecret=$SECRET|" \
    "$HERE/radiusplugin.cnf" >"$TMP/radiusplugin.cnf"
)
for want in "name=127.0.0.1" "authport=$RADIUS_PORT" "acctport=$ACCT_PORT"; do
  grep -Eq "^[[:space:]]*${want//./\\.}\$" "$TMP/radiusplugin.cnf" ||
    fail "radiusplugin.cnf no longer has $want (the test runs sxs-radiusd on 127.0.0.1:$RADIUS_PORT)"
done
{
  cat <<EOF
# Test server: a minimal routed OpenVPN server. The lines after the marker are the example's
# server.conf.snippet with this test's paths.
dev tun
topology subnet
server $TUN_NET 255.255.255.0
proto udp
local $UNDERLAY_S
port $VPN_PORT
ca $PKI/ca.crt
cert $PKI/server.crt
key $PKI/server.key
dh none
keepalive 10 60
status $TMP/status.log
status-version 1
tmp-dir $TMP
verb 3
# ---- server.conf.snippet ----
EOF
  sed -e "s|/etc/openvpn/radiusplugin.cnf|$TMP/radiusplugin.cnf|" "$HERE/server.conf.snippet"
} >"$TMP/server.conf"
bg_in "$NS_S" "$TMP/server.log" /dev/null openvpn --config "$TMP/server.conf"
SERVER_PID=$BGPID
wait_for "$TMP/server.log" 'Initialization Sequence Completed' "$START_TIMEOUT" "$SERVER_PID" ||
  fail "the OpenVPN server did not start (see server.log)"
grep -q 'PLUGIN_INIT: POST .*radiusplugin.so' "$TMP/server.log" ||
  fail "the OpenVPN server did not load radiusplugin.so"
log "openvpn server: udp $UNDERLAY_S:$VPN_PORT, tun $TUN_SERVER/24, radiusplugin.so -> 127.0.0.1:$RADIUS_PORT (acct :$ACCT_PORT)"

# --- clients ---------------------------------------------------------------------------------
# start_client NAME PASSWORD: an OpenVPN client in the client namespace, user alice; its log is
# $TMP/NAME.log; sets CLIENT_PID.
start_client() {
  local name=$1 password=$2
  (umask 077 && printf 'alice\n%s\n' "$password" >"$TMP/$name.pass")
  cat >"$TMP/$name.conf" <<EOF
client
dev tun
proto udp
remote $UNDERLAY_S $VPN_PORT
nobind
ca $PKI/ca.crt
cert $PKI/client.crt
key $PKI/client.key
remote-cert-tls server
auth-user-pass $TMP/$name.pass
auth-nocache
auth-retry none
connect-retry-max 1
explicit-exit-notify 1
reneg-sec $RENEG_SECS
verb 3
EOF
  bg_in "$NS_C" "$TMP/$name.log" /dev/null openvpn --config "$TMP/$name.conf"
  CLIENT_PID=$BGPID
}
# expect_auth_failed NAME: the client gets AUTH_FAILED (and never completes).
expect_auth_failed() {
  wait_for "$TMP/$1.log" 'AUTH_FAILED|Initialization Sequence Completed' "$CONNECT_TIMEOUT" "$CLIENT_PID" || true
  ! grep -q 'Initialization Sequence Completed' "$TMP/$1.log" || fail "$1 connected; it must not"
  grep -q 'AUTH_FAILED' "$TMP/$1.log" || fail "$1 did not get AUTH_FAILED within ${CONNECT_TIMEOUT}s"
  stop "$CLIENT_PID"
}

OTP=$(sim "$SIM/sim/otp/alice") || fail "could not read alice's OTP from sxs-sim"
[[ $OTP =~ ^[0-9]{6}$ ]] || fail "unexpected OTP from sxs-sim: '$OTP'"

# 0. The default require_message_authenticator = true: the plugin's requests are dropped.
start_radiusd "$TMP/sxs-strict.toml" radiusd-strict
log "client 0: alice + password + current OTP, sxs-radiusd with require_message_authenticator = true"
start_client client-strict "$ALICE_PW$OTP"
expect_auth_failed client-strict
grep -q 'it has no Message-Authenticator' "$TMP/radiusd-strict.err" ||
  fail "client 0 failed, but sxs-radiusd did not drop it for a missing Message-Authenticator; if radiusplugin now sends one, set require_message_authenticator = true in sxs.toml.snippet"
STATS=$(sim "$SIM/sim/stats") || fail "could not read sxs-sim's stats"
[ "$(stat_of "$STATS" validate_otp)" = 0 ] || fail "SxS was asked although the request was dropped: $STATS"
log "client 0: AUTH_FAILED; sxs-radiusd: $(grep -m1 -o 'packet dropped: it has no Message-Authenticator[^(]*' "$TMP/radiusd-strict.err")"
stop "$RADIUSD_PID"

# 1. The example's configuration and the current OTP: the tunnel comes up.
start_radiusd "$TMP/sxs.toml" radiusd
log "client 1: alice + password + current OTP, the example's configuration"
T0=$(date +%s%N)
start_client client-ok "$ALICE_PW$OTP"
OK_PID=$CLIENT_PID
wait_for "$TMP/client-ok.log" 'Initialization Sequence Completed|AUTH_FAILED' "$CONNECT_TIMEOUT" "$OK_PID" || true
grep -q 'Initialization Sequence Completed' "$TMP/client-ok.log" ||
  fail "client 1 (right OTP) did not reach 'Initialization Sequence Completed'"
log "client 1: Initialization Sequence Completed after $((($(date +%s%N) - T0) / 1000000)) ms"
grep -q 'reply="accept"' "$TMP/radiusd.err" || fail "sxs-radiusd logged no accept"
grep -Eq 'accounting answered.* user="alice" status="Start"' "$TMP/radiusd.err" ||
  fail "sxs-radiusd answered no Accounting-Request Start for alice"
ip netns exec "$NS_C" ping -c 3 -i 0.2 -W 2 "$TUN_SERVER" >"$TMP/ping.log" 2>&1 ||
  fail "client 1 could not ping $TUN_SERVER through the tunnel: $(cat "$TMP/ping.log")"
log "client 1: ping $TUN_SERVER through the tunnel: $(grep -Eo '[0-9]+ packets transmitted, [0-9]+ received' "$TMP/ping.log")"

# The client renegotiates after RENEG_SECS: with auth-gen-token it sends the session token, not
# the (used) OTP, and the tunnel stays up without asking SxS again.
wait_for "$TMP/client-ok.log" 'TLS: soft reset' "$((RENEG_SECS + 10))" "$OK_PID" ||
  fail "client 1 did not renegotiate within $((RENEG_SECS + 10))s"
wait_for "$TMP/server.log" "Username/auth-token authentication succeeded for username 'alice'" 10 "$OK_PID" ||
  fail "the server did not accept client 1's auth-token at renegotiation"
sleep 1
grep -q 'AUTH_FAILED' "$TMP/client-ok.log" && fail "client 1 got AUTH_FAILED at renegotiation"
kill -0 "$OK_PID" 2>/dev/null || fail "client 1 exited after renegotiation"
ip netns exec "$NS_C" ping -c 2 -i 0.2 -W 2 "$TUN_SERVER" >"$TMP/ping2.log" 2>&1 ||
  fail "the tunnel is down after renegotiation: $(cat "$TMP/ping2.log")"
[ "$(grep -c 'radius decision' "$TMP/radiusd.err")" = 1 ] ||
  fail "renegotiation asked sxs-radiusd again"
log "client 1: TLS renegotiation after ${RENEG_SECS}s: server: $(grep -m1 -o 'Username/auth-token authentication succeeded.*' "$TMP/server.log"); tunnel still up, no second RADIUS request"
stop "$OK_PID"
wait_for "$TMP/radiusd.err" 'accounting answered.* user="alice" status="Stop"' 10 ||
  fail "no Accounting-Request Stop after client 1 disconnected"

# 2. A wrong OTP: AUTH_FAILED.
sim -X POST -d '{"advance_secs":30}' "$SIM/sim/time" >/dev/null || fail "could not move sxs-sim's clock"
GOOD=$(sim "$SIM/sim/otp/alice") || fail "could not read alice's OTP from sxs-sim"
BAD=${GOOD:0:5}$(((${GOOD:5:1} + 1) % 10))
log "client 2: alice + password + wrong OTP"
start_client client-bad "$ALICE_PW$BAD"
expect_auth_failed client-bad
grep -q 'reply="reject" decision="deny"' "$TMP/radiusd.err" || fail "sxs-radiusd logged no reject by SxS"
log "client 2: $(grep -m1 -o 'AUTH: Received control message: AUTH_FAILED.*' "$TMP/client-bad.log" || echo AUTH_FAILED)"

# 3. A wrong password with the current OTP: AUTH_FAILED, and SxS is not asked.
sim -X POST -d '{"advance_secs":30}' "$SIM/sim/time" >/dev/null || fail "could not move sxs-sim's clock"
GOOD=$(sim "$SIM/sim/otp/alice") || fail "could not read alice's OTP from sxs-sim"
log "client 3: alice + wrong password + current OTP"
start_client client-badpw "not-her-password$GOOD"
expect_auth_failed client-badpw
grep -q 'decision="first-factor-reject"' "$TMP/radiusd.err" || fail "sxs-radiusd did not refuse the password"
log "client 3: AUTH_FAILED; sxs-radiusd: $(grep -m1 -o 'first factor refused.*' "$TMP/radiusd.err")"

# --- what SxS and sxs-radiusd saw ---------------------------------------------------------------
STATS=$(sim "$SIM/sim/stats") || fail "could not read sxs-sim's stats"
log "sxs-sim stats: $STATS"
[ "$(stat_of "$STATS" validate_otp)" = 2 ] || fail "expected 2 validate_otp calls: $STATS"
[ "$(stat_of "$STATS" accepts)" = 1 ] || fail "expected 1 accept: $STATS"
[ "$(stat_of "$STATS" rejects)" = 1 ] || fail "expected 1 reject: $STATS"
! grep -q 'it has no Message-Authenticator' "$TMP/radiusd.err" ||
  fail "sxs-radiusd (example configuration) dropped requests for a missing Message-Authenticator"
log "sxs-radiusd decisions:"
grep 'radius decision' "$TMP/radiusd.err" | sed -e 's/^[^ ]* *//' -e 's/^/    /'
log "accounting: $(grep -c 'accounting answered' "$TMP/radiusd.err") requests answered by sxs-radiusd ($(grep -o 'status="[A-Za-z-]*"' "$TMP/radiusd.err" | tr '\n' ' '))"

log "PASS: OpenVPN + openvpn-auth-radius + sxs-radiusd (LDAP password, then OTP) + slapd + sxs-sim"
echo "4 passed, 0 failed"
