#!/usr/bin/env bash
# Builds and runs the C tests (bindings/c/tests) and the C example (examples/c) against
# libddaebm.so and the shared bindings fixture.
#
#   bindings/c/test.sh
#
# Environment (all optional):
#   DDAEBM_LIB_DIR      directory holding libddaebm.so   (default: <repo>/target/debug)
#   DDAEBM_INCLUDE_DIR  directory holding ddaebm.h       (default: <repo>/include)
#   DDAEBM_FIXTURE_DIR  the bindings fixture             (default: <repo>/target/bindings-fixture)
#   DDAEBM_VALGRIND     0 skips the Valgrind run         (default: run it when valgrind exists)
#   DDAEBM_STRESS_THREADS, DDAEBM_STRESS_SECONDS
#                       threads and duration of the mixed-call stress test (default 16, 2 s;
#                       the Valgrind run uses 4 threads and one round each)
#   CC                  C compiler                        (default: cc)
#
# Build products go under <repo>/target/bindings/c/.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
lib_dir="${DDAEBM_LIB_DIR:-$repo/target/debug}"
include_dir="${DDAEBM_INCLUDE_DIR:-$repo/include}"
fixture_dir="${DDAEBM_FIXTURE_DIR:-$repo/target/bindings-fixture}"
out="$repo/target/bindings/c"
cc="${CC:-cc}"

die() {
  echo "bindings/c/test.sh: $*" >&2
  exit 1
}

[[ -f "$lib_dir/libddaebm.so" ]] ||
  die "$lib_dir/libddaebm.so not found; run scripts/test-bindings.sh (or set DDAEBM_LIB_DIR)"
[[ -f "$include_dir/ddaebm.h" ]] ||
  die "$include_dir/ddaebm.h not found (set DDAEBM_INCLUDE_DIR)"
for f in fixture.txt model.safetensors rows.f32 rows.csv energy.f32 pvalue.f32 explain.f32 drift.f64 is_ood.u8 \
  sample.f32 truncated.safetensors random.safetensors future.safetensors \
  image_model.safetensors image_rows.f32 image_energy.f32; do
  [[ -f "$fixture_dir/$f" ]] ||
    die "$fixture_dir/$f not found; run scripts/test-bindings.sh (or set DDAEBM_FIXTURE_DIR)"
done

fixture_value() { awk -v key="$1" '$1 == key { print $2 }' "$fixture_dir/fixture.txt"; }

mkdir -p "$out"
warnings=(-std=c11 -Wall -Wextra -Wpedantic -Werror)
sanitizers=(-fsanitize=address,undefined -fno-omit-frame-pointer)
link=(-L"$lib_dir" -lddaebm -Wl,-rpath,"$lib_dir")
tests=("$repo"/bindings/c/tests/*.c)

export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1
export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1

# ---- tests under AddressSanitizer + UBSan ---------------------------------------------------
echo "== C tests (ASan + UBSan)"
"$cc" "${warnings[@]}" -g "${sanitizers[@]}" -pthread -I"$include_dir" "${tests[@]}" \
  "${link[@]}" -o "$out/test_ddaebm_asan"
# As in rustls-ffi's CI: make sure the sanitizers really are in the binary.
nm "$out/test_ddaebm_asan" | grep __asan_init >/dev/null ||
  die "$out/test_ddaebm_asan was built without AddressSanitizer"
start=$SECONDS
"$out/test_ddaebm_asan" "$fixture_dir"
echo "(ASan run: $((SECONDS - start)) s)"

# ---- the example ----------------------------------------------------------------------------
echo "== examples/c/screen"
"$cc" "${warnings[@]}" -g "${sanitizers[@]}" -I"$include_dir" "$repo/examples/c/screen.c" \
  "${link[@]}" -o "$out/screen"
output="$("$out/screen" "$fixture_dir/model.safetensors" "$fixture_dir/rows.csv")"
first_line="${output%%$'\n'*}"
expected="flagged $(fixture_value flagged) of $(fixture_value rows) rows (threshold "
[[ "$first_line" == "$expected"* ]] ||
  die "screen printed \"$first_line\", expected \"$expected...\""
echo "ok - screen: $first_line"

# A row with the wrong number of columns is refused with a message and exit status 1.
head -n 1 "$fixture_dir/rows.csv" >"$out/bad-row.csv"
echo "1,2" >>"$out/bad-row.csv"
status=0
message="$("$out/screen" "$fixture_dir/model.safetensors" "$out/bad-row.csv" 2>&1 >/dev/null)" ||
  status=$?
want="bad-row.csv:2: expected $(fixture_value dim) columns, found 2"
[[ $status -eq 1 && "$message" == *"$want"* ]] ||
  die "screen on a short row: exit $status, \"$message\""
echo "ok - screen rejects a short row: $message"

# A library error is reported through ddaebm_last_error().
status=0
message="$("$out/screen" "$fixture_dir/truncated.safetensors" "$fixture_dir/rows.csv" \
  2>&1 >/dev/null)" || status=$?
[[ $status -eq 1 && "$message" == "error: "*"truncated.safetensors"* ]] ||
  die "screen on a truncated model: exit $status, \"$message\""
echo "ok - screen reports library errors: $message"

# ---- tests under Valgrind (no sanitizers, one round per thread) -----------------------------
if [[ "${DDAEBM_VALGRIND:-1}" != 0 ]] && command -v valgrind >/dev/null; then
  echo "== C tests (Valgrind)"
  "$cc" "${warnings[@]}" -g -O0 -pthread -I"$include_dir" "${tests[@]}" "${link[@]}" \
    -o "$out/test_ddaebm"
  if nm "$out/test_ddaebm" | grep __asan_init >/dev/null; then
    die "$out/test_ddaebm must be built without AddressSanitizer"
  fi
  start=$SECONDS
  # "possibly lost" blocks are the thread-local storage and crossbeam-epoch handles of rayon
  # worker threads still alive at exit (the global pool is never shut down); only definite
  # leaks fail the run.
  if ! DDAEBM_TEST_ITERATIONS=1 DDAEBM_STRESS_SECONDS=0 DDAEBM_STRESS_THREADS=4 \
    valgrind --quiet --error-exitcode=1 --leak-check=full --errors-for-leak-kinds=definite \
    --show-leak-kinds=definite --log-file="$out/valgrind.log" "$out/test_ddaebm" "$fixture_dir"; then
    cat "$out/valgrind.log" >&2
    die "Valgrind found errors (log: $out/valgrind.log)"
  fi
  echo "(Valgrind run: $((SECONDS - start)) s; log: $out/valgrind.log)"
else
  echo "== Valgrind run skipped"
fi
