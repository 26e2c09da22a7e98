#!/usr/bin/env bash
# Runs every fuzz target in fuzz/ for SECONDS each (default 30) with cargo-fuzz on the nightly
# toolchain, starting from the checked-in seeds (fuzz/seeds/TARGET, never written to), and
# prints one line of figures per target. A crash stops the run: the input is saved under
# fuzz/artifacts/TARGET/ and the script exits non-zero.
#   scripts/fuzz.sh [SECONDS] [TARGET...]
# Needs: rustup's nightly toolchain and cargo-fuzz (`cargo install cargo-fuzz --locked`).
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
seconds=${1:-30}
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  mapfile -t targets < <(cargo +nightly fuzz list)
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
printf '%-18s %12s %10s %8s %8s %8s\n' target execs execs/s cov ft corpus
for t in "${targets[@]}"; do
  mkdir -p "$work/$t"
  log=$work/$t.log
  # -rss_limit_mb: a leak or blow-up is a finding too. -timeout: one input taking >10 s is.
  if ! cargo +nightly fuzz run --release "$t" "$work/$t" "seeds/$t" -- \
      -max_total_time="$seconds" -print_final_stats=1 -timeout=10 -rss_limit_mb=2048 \
      >"$log" 2>&1; then
    tail -n 60 "$log" >&2
    echo "error: fuzz target $t failed; the input is in fuzz/artifacts/$t/" >&2
    exit 1
  fi
  done_line=$(grep -aE '^#[0-9]+[[:space:]]+DONE' "$log" | tail -n 1 || true)
  if [ -z "$done_line" ]; then
    tail -n 30 "$log" >&2
    echo "error: fuzz target $t ended without libFuzzer's DONE line" >&2
    exit 1
  fi
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
  speed=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log")
  cov=$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<<"$done_line")
  ft=$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<<"$done_line")
  corp=$(sed -n 's/.* corp: \([0-9]*\).*/\1/p' <<<"$done_line")
  printf '%-18s %12s %10s %8s %8s %8s\n' "$t" "$execs" "$speed" "$cov" "$ft" "$corp"
done
