#!/usr/bin/env bash
# Builds every fuzz target (fuzz/fuzz_targets/) with the nightly toolchain in
# one `cargo fuzz build`, then runs each for its share of SECONDS_TOTAL
# (default 60), starting from its seeds (fuzz/seeds/TARGET, committed) and
# what earlier runs found (fuzz/corpus/TARGET, not committed). Every seed is
# run first, so a seed is a regression test too.
#
#   fuzz/run.sh [SECONDS_TOTAL]
#
# Exits 1 if any target crashed (a panic, a failed check, a timeout of 10 s
# or more, 2 GiB of memory), after printing each crash's input
# (fuzz/artifacts/TARGET/crash-...) and the command that replays it. Without
# a nightly toolchain it says so and exits 0: cargo-fuzz needs nightly
# (sancov), and a machine may have stable alone. cargo-fuzz itself is
# installed from crates.io when missing.
#
# The build: `-O` for speed, `-a` to keep debug assertions and overflow
# checks (cargo-fuzz drops them with -O), and no sanitizer: the code fuzzed
# has no unsafe, bounds are checked anyway, and AddressSanitizer would halve
# the executions a second for nothing.
set -euo pipefail
cd "$(dirname "$0")/.."

total=${1:-60}
if ! [[ $total =~ ^[0-9]+$ ]] || ((total == 0)); then
  echo "usage: fuzz/run.sh [SECONDS_TOTAL]" >&2
  exit 2
fi

if ! rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
  echo "fuzz: SKIPPED, nothing fuzzed: no nightly toolchain (rustup toolchain install nightly)"
  exit 0
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "fuzz: installing cargo-fuzz"
  cargo install cargo-fuzz --locked
fi

flags=(-O -a --sanitizer none)
echo "fuzz: building the targets ($(cargo +nightly fuzz --version), $(rustc +nightly --version))"
cargo +nightly fuzz build "${flags[@]}"

mapfile -t targets < <(cargo +nightly fuzz list)
share=$((total / ${#targets[@]}))
((share > 0)) || share=1
mkdir -p fuzz/artifacts
passed=0
failed=()
for t in "${targets[@]}"; do
  mkdir -p "fuzz/corpus/$t" "fuzz/artifacts/$t"
  log="fuzz/artifacts/$t.log"
  before=$(date +%s)
  # new inputs go to the first directory; -timeout: a unit that runs 10 s
  # hangs; -rss_limit_mb: libFuzzer's default, said aloud
  if cargo +nightly fuzz run "${flags[@]}" "$t" "fuzz/corpus/$t" "fuzz/seeds/$t" -- \
    -max_total_time="$share" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
    >"$log" 2>&1; then
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
    units=$(find "fuzz/corpus/$t" -type f | wc -l)
    echo "fuzz: $t: ok, ${runs:-?} runs in $(($(date +%s) - before)) s (${rate:-?} exec/s), corpus $units"
    passed=$((passed + 1))
  else
    failed+=("$t")
    echo "fuzz: $t: FAILED; from $log:"
    # the panic and its message, or libFuzzer's own report (timeout,
    # out of memory, a signal), without the input's bytes
    { grep -A 12 -m 1 'panicked at' "$log" || grep -B 2 -A 4 -m 1 '^==[0-9]*== ERROR' "$log" || tail -n 20 "$log"; } |
      cut -c 1-300 | sed 's/^/    /'
    grep -o 'Test unit written to .*' "$log" | sed 's/^Test unit written to //' | while read -r input; do
      echo "fuzz: $t: crash input: $input"
      echo "fuzz: $t: replay it: cargo +nightly fuzz run ${flags[*]} $t $input"
    done
  fi
done
# a closing line CI reads as a count
echo "fuzz: ${passed} passed, ${#failed[@]} failed"
((${#failed[@]} == 0))
