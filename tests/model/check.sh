#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# tests/model/check.sh: model-checks the dtx protocol (dtx.pml) with spin.
# For each configuration below it generates the verifier (spin -a), compiles
# it with the C compiler and runs its checks; each check either must hold
# (spin explores every state within the fault budget and finds nothing) or
# must be found (a violation: the reachability checks, and the mutants,
# which break one rule of the protocol each and must make a property fail,
# so that no property holds vacuously). Any other result fails the script,
# with spin's counterexample when one was found. ctest runs it as
# dtx.model.protocol; what each check means is in dtx.pml's opening comment.
#
# Usage: check.sh [SPIN [CC [WORKDIR]]]   (defaults: spin, cc, a temporary
# directory, removed at the end). DTX_MODEL_DEEP=1 raises every fault budget
# by one: a longer run (minutes, and about 1 GB for the cluster 2PC), for
# soaking a change to the model.

set -uo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
SPIN=${1:-spin}
CC=${2:-cc}
WORK=${3:-}
DEEP=${DTX_MODEL_DEEP:-0}

if ! command -v "$SPIN" >/dev/null 2>&1; then
	echo "check.sh: spin not found ($SPIN): install Debian's spin" \
		"package (.ci/install-deps does)" >&2
	exit 1
fi
if ! command -v "$CC" >/dev/null 2>&1; then
	echo "check.sh: C compiler not found: $CC" >&2
	exit 1
fi
if [[ -z $WORK ]]; then
	WORK=$(mktemp -d "${TMPDIR:-/tmp}/dtx-model.XXXXXX")
	trap 'rm -rf "$WORK"' EXIT
fi
mkdir -p "$WORK" || exit 1

# One line per configuration: name | spin -D flags | fault budget | checks.
# A check is a claim of dtx.pml; "!" in front: a violation must be found;
# the claim "terminates" is an acceptance-cycle search (pan -a).
CONFIGS=(
	"2pc||3|safe terminates !reach_commit !reach_undo !reach_late_refused !reach_recovered !reach_resolver_commit"
	"saga|-DSAGA|4|safe terminates !reach_commit !reach_undo !reach_late_refused !reach_recovered"
	"saga-group|-DSAGA -DGROUP|4|safe terminates !reach_commit !reach_undo !reach_late_refused !reach_recovered"
	"cluster-2pc|-DCLUSTER|2|safe terminates !reach_commit !reach_undo !reach_late_refused !reach_recovered !reach_resolver_commit !reach_zombie"
	"cluster-saga|-DCLUSTER -DSAGA|2|safe terminates !reach_commit !reach_undo !reach_late_refused !reach_recovered !reach_zombie"
	# Mutants: each breaks one rule and must fail a property.
	"commit-before-decision-write|-DMUT_COMMIT_EARLY|2|!safe"
	"resolver-commits-before-sync|-DMUT_RESOLVE_UNSYNCED|2|!safe"
	"zombie-writes-unfenced|-DCLUSTER -DMUT_NO_FENCE|2|!safe"
	"prepare-runs-after-abort|-DMUT_NO_HANGING_CHECK|2|!safe"
	"null-compensation-not-recorded|-DSAGA -DMUT_NO_NULL_RECORD|2|!safe"
	"forward-ok-replayed-after-undo|-DMUT_REPLAY_AFTER_UNDO|2|!safe"
	"phase-two-not-retried|-DMUT_NO_RETRY|2|!terminates"
	"saga-recovery-trusts-sent-bits|-DSAGA -DMUT_RECOVER_TRUSTS_SENT|2|!safe"
	"saga-status-before-final-record|-DSAGA -DMUT_STATUS_UNSETTLED|2|!safe"
	"group-undoes-only-steps-done|-DSAGA -DGROUP -DMUT_GROUP_UNDO_DONE_ONLY|2|!safe"
)

now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", b - a }'; }

FAILED=0
RESULTS=()

# check DIR FLAGS CLAIM EXPECT: runs one claim of the verifier in DIR.
check() {
	local dir=$1 flags=$2 claim=$3 expect=$4 args=() out t0 errs states
	args=(-N "$claim" -m20000 -w22)
	[[ $DEEP == 1 ]] && args=(-N "$claim" -m20000 -w25)
	[[ $claim == terminates ]] && args+=(-a)
	t0=$(now)
	out=$(cd "$dir" && ./pan "${args[@]}" 2>&1)
	errs=$(sed -n 's/.*errors: \([0-9]*\).*/\1/p' <<<"$out" | head -n 1)
	states=$(sed -n 's/^ *\([0-9.e+]*\) states, stored.*/\1/p' <<<"$out" |
		head -n 1)
	local verdict=ok line
	if [[ -z $errs ]]; then
		verdict=FAILED
	elif [[ $expect == hold ]]; then
		if [[ $errs != 0 ]] || grep -q 'max search depth too small' \
			<<<"$out"; then
			verdict=FAILED
		fi
	elif [[ $errs == 0 ]]; then
		verdict=FAILED
	fi
	line=$(printf '%-6s %-36s %-22s %-6s %10s states %6ss' "$verdict" \
		"$(basename "$dir")" "$claim" "$expect" "${states:-?}" \
		"$(secs "$t0" "$(now)")")
	echo "$line"
	RESULTS+=("$line")
	if [[ $verdict != ok ]]; then
		FAILED=1
		echo "---- pan output"
		echo "$out"
		if [[ -f $dir/dtx.pml.trail ]]; then
			echo "---- counterexample (the model's printf lines)"
			# shellcheck disable=SC2086
			(cd "$dir" && "$SPIN" $flags -t dtx.pml 2>&1 |
				sed 's/^ *//' |
				grep -E '^(node|branch|resolver|client|lose|duplicate|lease|deadline|spin:)')
		fi
	fi
	rm -f "$dir/dtx.pml.trail"
}

T0=$(now)
for cfg in "${CONFIGS[@]}"; do
	IFS='|' read -r name flags maxf claims <<<"$cfg"
	[[ $DEEP == 1 ]] && maxf=$((maxf + 1))
	dir=$WORK/$name
	rm -rf "$dir"
	mkdir -p "$dir" && cp "$HERE"/*.pml "$dir"/ || exit 1
	t0=$(now)
	# shellcheck disable=SC2086
	if ! (cd "$dir" && "$SPIN" -DMAXF="$maxf" $flags -a dtx.pml \
		>spin.log 2>&1); then
		echo "FAILED $name: spin -a:"
		cat "$dir/spin.log"
		FAILED=1
		continue
	fi
	# -O0: the transition function is one huge switch that an optimiser
	# spends half a minute on, for a verifier only twice as fast.
	if ! (cd "$dir" && "$CC" -O0 -w -o pan pan.c >cc.log 2>&1); then
		echo "FAILED $name: compiling the verifier:"
		cat "$dir/cc.log"
		FAILED=1
		continue
	fi
	echo "built  $name (spin $flags -DMAXF=$maxf) in $(secs "$t0" "$(now)")s"
	for c in $claims; do
		if [[ $c == !* ]]; then
			check "$dir" "-DMAXF=$maxf $flags" "${c#!}" find
		else
			check "$dir" "-DMAXF=$maxf $flags" "$c" hold
		fi
	done
done

echo
echo "==== model checks ($(secs "$T0" "$(now)")s)"
printf '%s\n' "${RESULTS[@]}"
if [[ $FAILED -ne 0 ]]; then
	echo "RESULT: FAILED"
	exit 1
fi
echo "RESULT: ok"
