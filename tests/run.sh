#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# tests/run.sh: the whole check, as CI runs it. From the repository root it
# builds and tests a plain RelWithDebInfo build in build/, then an
# AddressSanitizer + UBSan Debug build in build-asan/, runs every libFuzzer
# target for a bounded time in build-fuzz/ when clang is installed, and checks
# the formatting of our C files when clang-format is installed. Every stage runs
# even if an earlier one failed, so one run shows every problem; the exit
# status is non-zero if any stage failed. Ends with a summary: stages, test
# counts and elapsed time.
#
# Environment: JOBS (build parallelism, default nproc), CTEST_JOBS (default 2;
# every test uses its own ports and directories, so they may overlap),
# DTX_FUZZ_SECONDS (how long each libFuzzer target runs in the fuzz stage,
# default 20; 0 skips the stage).

set -uo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$(pwd)
JOBS=${JOBS:-$(nproc 2>/dev/null || echo 2)}
CTEST_JOBS=${CTEST_JOBS:-2}
START=$SECONDS
LOGDIR=$(mktemp -d "${TMPDIR:-/tmp}/dtx-run.XXXXXX")
trap 'rm -rf "$LOGDIR"' EXIT

SUMMARY=() # one line per stage
COUNTS=()  # one line per test run
FAILED=0

# stage NAME COMMAND...: runs one step, records its result and duration.
stage() {
	local name=$1 t0=$SECONDS rc=0
	shift
	echo
	echo "==== $name: $*"
	"$@" || rc=$?
	if [[ $rc -eq 0 ]]; then
		SUMMARY+=("$(printf '%-28s ok      %4ds' "$name" $((SECONDS - t0)))")
	else
		SUMMARY+=("$(printf '%-28s FAILED  %4ds  (exit %d)' "$name" \
			$((SECONDS - t0)) "$rc")")
		FAILED=1
	fi
	return "$rc"
}

# run_ctest BUILD_DIR: runs the suite and keeps ctest's count line
# ("100% tests passed, 0 tests failed out of 12") for the summary.
run_ctest() {
	local dir=$1 log=$LOGDIR/ctest.${1//\//_}.log rc=0 line
	ctest --test-dir "$dir" --output-on-failure -j"$CTEST_JOBS" 2>&1 |
		tee "$log" || rc=$?
	line=$(grep -E 'tests passed, [0-9]+ tests? failed out of' "$log" |
		tail -n 1)
	if [[ -z $line ]]; then
		line="no test summary from ctest"
		[[ $rc -ne 0 ]] || rc=1
	fi
	COUNTS+=("$(printf '%-12s %s' "$dir:" "$line")")
	return "$rc"
}

# build DIR: builds everything it can. Keep going past a target that fails,
# so that the tests of every other module still build and run: one broken
# suite must not hide the state of the rest.
build() {
	local keep_going=(-k)
	if grep -q '^CMAKE_GENERATOR:INTERNAL=Ninja' "$1/CMakeCache.txt"; then
		keep_going=(-k 0)
	fi
	cmake --build "$1" -j"$JOBS" -- "${keep_going[@]}"
}

# build_and_test DIR CMAKE_ARGS...: configure, build, test. The tests run
# even after a failed build (ctest reports the missing ones as not run); a
# failed configure skips that tree, not the other one.
build_and_test() {
	local dir=$1
	shift
	if stage "configure $dir" cmake -S . -B "$dir" "$@"; then
		stage "build $dir" build "$dir" || true
		stage "test $dir" run_ctest "$dir" || true
	else
		COUNTS+=("$(printf '%-12s %s' "$dir:" "not run (configure failed)")")
	fi
}

# Our C sources: everything but build trees and generated nanopb code.
check_format() {
	local files=()
	mapfile -d '' files < <(find . \
		\( -path './build*' -o -path './.git' \) -prune -o \
		-type f \( -name '*.c' -o -name '*.h' \) \
		! -name '*.pb.c' ! -name '*.pb.h' -print0 | sort -z)
	echo "checking ${#files[@]} files"
	clang-format --dry-run -Werror "${files[@]}"
}

# fuzz_all: runs every libFuzzer target of build-fuzz/ for DTX_FUZZ_SECONDS,
# starting from the generated seeds (kept and grown in build-fuzz/corpus/)
# and the committed regressions. Any crash or failed check fails the stage
# and leaves the input in build-fuzz/artifacts/.
fuzz_all() {
	local t dir=build-fuzz rc=0 secs=$DTX_FUZZ_SECONDS
	mkdir -p "$dir/corpus" "$dir/artifacts"
	for t in coord_request part_request reply record spec cert; do
		"$dir/tests/fuzz/dtx-fuzz-seedgen" "$t" "$dir/corpus/$t" ||
			return 1
		echo "fuzz $t: ${secs}s"
		if ! "$dir/tests/fuzz/dtx-fuzz-$t" -max_total_time="$secs" \
			-timeout=10 -print_final_stats=1 \
			-artifact_prefix="$dir/artifacts/$t-" \
			"$dir/corpus/$t" "tests/fuzz/regressions/$t" \
			>"$LOGDIR/fuzz-$t.log" 2>&1; then
			tail -n 40 "$LOGDIR/fuzz-$t.log"
			echo "fuzz $t: FAILED; once fixed, add the input from" \
				"$dir/artifacts/ to tests/fuzz/regressions/$t/"
			rc=1
		else
			grep -E '^(Done|stat::new_units_added)' \
				"$LOGDIR/fuzz-$t.log" | sed "s/^/fuzz $t: /"
		fi
	done
	return "$rc"
}

build_and_test build -DCMAKE_BUILD_TYPE=RelWithDebInfo
build_and_test build-asan -DDTX_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug
DTX_FUZZ_SECONDS=${DTX_FUZZ_SECONDS:-20}
if [[ $DTX_FUZZ_SECONDS -eq 0 ]]; then
	SUMMARY+=("fuzz                         skipped (DTX_FUZZ_SECONDS=0)")
elif ! command -v clang >/dev/null 2>&1; then
	echo "fuzz: clang is not installed, the libFuzzer stage is skipped"
	SUMMARY+=("fuzz                         skipped (clang not installed)")
elif stage "configure build-fuzz" cmake -S . -B build-fuzz \
	-DCMAKE_C_COMPILER=clang -DDTX_FUZZ=ON \
	-DCMAKE_BUILD_TYPE=RelWithDebInfo -DDTX_BUILD_SAMPLES=OFF \
	-DDTX_BUILD_BENCH=OFF; then
	if stage "build build-fuzz" cmake --build build-fuzz -j"$JOBS" \
		--target dtx-fuzz-all; then
		stage "fuzz (${DTX_FUZZ_SECONDS}s per target)" fuzz_all || true
	fi
fi
if command -v clang-format >/dev/null 2>&1; then
	stage "clang-format" check_format
else
	SUMMARY+=("clang-format                 skipped (not installed)")
fi

echo
echo "==== summary ($ROOT)"
printf '%s\n' "${SUMMARY[@]}"
if [[ ${#COUNTS[@]} -gt 0 ]]; then
	echo "tests:"
	printf '  %s\n' "${COUNTS[@]}"
fi
elapsed=$((SECONDS - START))
printf 'elapsed: %dm%02ds\n' $((elapsed / 60)) $((elapsed % 60))
if [[ $FAILED -ne 0 ]]; then
	echo "RESULT: FAILED"
	exit 1
fi
echo "RESULT: ok"
