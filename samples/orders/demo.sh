#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# demo.sh BUILD_DIR [--tls]: the orders sample end to end. Starts dtxd, the
# inventory service (seeded with widget=3) and the order service on loopback
# ports, places four orders (2PC that commits, 2PC that aborts for lack of
# stock, saga that commits, saga that is compensated), stops everything and
# prints what each service holds. Exits 0 only if the four outcomes and the
# final state are the expected ones, and every process stopped cleanly.
# Every process it starts is stopped on exit, whatever happens. With --tls,
# every connection is mutual TLS (tls+tcp://), with certificates made for
# the run by samples/tls/make-certs.sh (README, "Securing dtx").
#
# Environment: DTX_DEMO_KEEP=1 keeps the data directory and logs;
# DTX_DEMO_LOG_LEVEL sets dtxd's --log-level (default warn);
# DTX_DEMO_STORE_CONN (a libpq connection string) runs dtxd on PostgreSQL
# (--store postgres) instead of its own RocksDB directory.

set -euo pipefail

if [[ $# -lt 1 || ! -d $1 || $# -gt 2 || ($# -eq 2 && $2 != --tls) ]]; then
	echo "usage: $0 BUILD_DIR [--tls]   (the CMake build directory)" >&2
	exit 2
fi
TLS=${2:-}
BUILD=$(cd "$1" && pwd)
DTXD=$BUILD/coordinator/dtxd
BIN=$BUILD/samples/orders
for exe in "$DTXD" "$BIN/inventory" "$BIN/order" "$BIN/order-client"; do
	if [[ ! -x $exe ]]; then
		echo "demo: $exe not found; build first:" \
			"cmake --build $1" >&2
		exit 2
	fi
done

TMP=$(mktemp -d "${TMPDIR:-/tmp}/dtx-orders-demo.XXXXXX")
PIDS=()       # every process we started and have not reaped yet
USED_PORTS=() # ports handed out by this run
FAILED=0

log() { echo "demo: $*"; }

# True while pid runs. A child that exited stays a zombie until we wait for
# it, so kill -0 alone would call it alive: read its state instead.
alive() {
	local stat
	stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
	stat=${stat##*) }
	[[ ${stat%% *} != Z ]]
}

forget() {
	local p keep=()
	for p in "${PIDS[@]}"; do
		[[ $p == "$1" ]] || keep+=("$p")
	done
	PIDS=("${keep[@]}")
}

# Stops one process: SIGTERM, up to 10 s to exit, then SIGKILL. Returns its
# exit status (non-zero if it had to be killed).
stop_proc() {
	local name=$1 pid=$2 i rc
	kill -TERM "$pid" 2>/dev/null || true
	for ((i = 0; i < 100; i++)); do
		alive "$pid" || break
		sleep 0.1
	done
	if alive "$pid"; then
		log "$name did not stop within 10 s of SIGTERM; killing it"
		kill -KILL "$pid" 2>/dev/null || true
	fi
	rc=0
	wait "$pid" 2>/dev/null || rc=$?
	forget "$pid"
	return "$rc"
}

cleanup() {
	local rc=$? pid i
	trap - EXIT INT TERM
	# SIGTERM to all first, so they shut down in parallel, then make sure.
	for pid in "${PIDS[@]}"; do
		kill -TERM "$pid" 2>/dev/null || true
	done
	for ((i = 0; i < 100 && ${#PIDS[@]} > 0; i++)); do
		for pid in "${PIDS[@]}"; do
			alive "$pid" || forget "$pid"
		done
		((${#PIDS[@]} == 0)) || sleep 0.1
	done
	for pid in "${PIDS[@]}"; do
		kill -KILL "$pid" 2>/dev/null || true
	done
	wait 2>/dev/null || true
	if [[ ${DTX_DEMO_KEEP:-0} == 1 ]]; then
		log "kept $TMP"
	else
		rm -rf "$TMP"
	fi
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# A loopback port nobody listens on, below Linux's ephemeral range so that
# outgoing connections do not take it meanwhile. Sets the variable named $1.
pick_port() {
	local p i
	for ((i = 0; i < 200; i++)); do
		p=$((20000 + RANDOM % 12000))
		[[ " ${USED_PORTS[*]-} " == *" $p "* ]] && continue
		if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
			USED_PORTS+=("$p")
			printf -v "$1" '%s' "$p"
			return 0
		fi
	done
	log "no free port found"
	return 1
}

# Waits until port accepts connections while pid runs. Returns 1 if the
# process died (a port taken meanwhile, say) or 20 s passed.
wait_port() {
	local port=$1 pid=$2 i
	for ((i = 0; i < 200; i++)); do
		alive "$pid" || return 1
		if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
			return 0
		fi
		sleep 0.1
	done
	return 1
}

# start NAME VAR LOG ARGS...: starts ARGS with "--listen $SCHEME://127.0.0.1:PORT"
# appended, output to LOG ("-" for ours), and waits until it listens. Retries
# on another port if the process dies, since a port free when picked may be
# taken by a parallel test before we bind it. Sets VAR to the URL and
# NAME_PID to the process id.
start() {
	local name=$1 var=$2 out=$3 port pid try
	shift 3
	for ((try = 1; try <= 3; try++)); do
		pick_port port
		if [[ $out == - ]]; then
			"$@" --listen "$SCHEME://127.0.0.1:$port" &
		else
			"$@" --listen "$SCHEME://127.0.0.1:$port" >"$out" 2>&1 &
		fi
		pid=$!
		PIDS+=("$pid")
		if wait_port "$port" "$pid"; then
			printf -v "$var" '%s' "$SCHEME://127.0.0.1:$port"
			printf -v "${name}_PID" '%s' "$pid"
			log "$name is up on $SCHEME://127.0.0.1:$port (pid $pid)"
			return 0
		fi
		stop_proc "$name" "$pid" || true
		log "$name did not come up on port $port (try $try)"
		if [[ $out != - ]]; then
			tail -n 20 "$out" | sed "s/^/  $name| /"
		fi
	done
	return 1
}

mkdir -p "$TMP/dtxd" "$TMP/inventory" "$TMP/order"
log "data and logs in $TMP"
SCHEME=tcp
DTXD_TLS=()
TLS_ARGS=()
if [[ $TLS == --tls ]]; then
	CERTS=$TMP/certs
	bash "$(dirname "${BASH_SOURCE[0]}")/../tls/make-certs.sh" "$CERTS"
	log "mutual TLS, certificates in $CERTS"
	SCHEME=tls+tcp
	DTXD_TLS=(--tls-cert "$CERTS/dtxd.crt" --tls-key "$CERTS/dtxd.key"
		--tls-ca "$CERTS/services-ca.crt"
		--participant-tls-ca "$CERTS/services-ca.crt")
	TLS_ARGS=(--tls "$CERTS")
fi
if [[ -n ${DTX_DEMO_STORE_CONN:-} ]]; then
	STORE=(--store postgres --store-conn "$DTX_DEMO_STORE_CONN")
else
	STORE=(--data-dir "$TMP/dtxd")
fi
start dtxd DTXD_URL "$TMP/dtxd.log" "$DTXD" "${STORE[@]}" \
	--log-level "${DTX_DEMO_LOG_LEVEL:-warn}" "${DTXD_TLS[@]}"
start inventory INVENTORY_URL - "$BIN/inventory" \
	--data-dir "$TMP/inventory" --stock widget=3 "${TLS_ARGS[@]}"
start order ORDER_URL - "$BIN/order" --data-dir "$TMP/order" \
	"${TLS_ARGS[@]}"

# run_order LABEL EXPECTED ARGS...: places one order and checks its outcome.
run_order() {
	local label=$1 want=$2 out=$TMP/client.${1// /-} rc got
	shift 2
	echo
	log "--- $label: order-client $*"
	# Through tee, so the client's lines interleave with the services'
	# story as they happen; pipefail gives the client's exit status.
	rc=0
	"$BIN/order-client" --coordinator "$DTXD_URL" --order "$ORDER_URL" \
		--inventory "$INVENTORY_URL" "${TLS_ARGS[@]}" "$@" 2>&1 |
		tee "$out" || rc=$?
	got=$(sed -n 's/^order-client: outcome: \([A-Z]*\).*/\1/p' "$out")
	if [[ $rc -ne 0 ]]; then
		log "RESULT $label: order-client failed (exit $rc)," \
			"expected $want  <-- WRONG"
		FAILED=1
	elif [[ $got != "$want" ]]; then
		log "RESULT $label: ${got:-no outcome}, expected $want  <-- WRONG"
		FAILED=1
	else
		log "RESULT $label: $got (as expected)"
	fi
}

run_order "2pc success" COMMITTED --mode 2pc --sku widget --qty 2 \
	--order-id o-1
run_order "2pc refused" ABORTED --mode 2pc --sku widget --qty 5 \
	--order-id o-2
run_order "saga success" COMMITTED --mode saga --sku widget --qty 1 \
	--order-id o-3
run_order "saga refused" COMPENSATED --mode saga --sku widget --qty 4 \
	--order-id o-4

# Stop everything before reading the services' state: the summary then
# shows what survives a shutdown, and each clean exit is checked.
echo
for name in order inventory dtxd; do
	pid_var=${name}_PID
	rc=0
	stop_proc "$name" "${!pid_var}" || rc=$?
	if [[ $rc -ne 0 ]]; then
		log "$name exited with status $rc on SIGTERM  <-- WRONG"
		FAILED=1
		if [[ $name == dtxd ]]; then
			tail -n 30 "$TMP/dtxd.log" | sed 's/^/  dtxd| /'
		fi
	fi
done

echo
log "--- final state"
"$BIN/inventory" --data-dir "$TMP/inventory" --dump >"$TMP/inventory.dump"
"$BIN/order" --data-dir "$TMP/order" --dump >"$TMP/order.dump"
sed 's/^/  inventory: /' "$TMP/inventory.dump"
sed 's/^/  order:     /' "$TMP/order.dump"
# widget=3, minus 2 (o-1) and 1 (o-3); o-2 was deleted by its abort and o-4
# cancelled by its compensation; no reservation is left open.
expect_state() {
	local file=$1 pattern=$2 what=$3
	if ! grep -qx -- "$pattern" "$file"; then
		log "final state: $what  <-- WRONG"
		FAILED=1
	fi
}
expect_state "$TMP/inventory.dump" 'stock widget 0' "widget stock should be 0"
expect_state "$TMP/order.dump" 'order o-1 status=CONFIRMED;.*' \
	"o-1 should be CONFIRMED"
expect_state "$TMP/order.dump" 'order o-3 status=CONFIRMED;.*' \
	"o-3 should be CONFIRMED"
expect_state "$TMP/order.dump" 'order o-4 status=CANCELLED;.*' \
	"o-4 should be CANCELLED"
if grep -q '^order o-2 ' "$TMP/order.dump"; then
	log "final state: o-2 should not exist  <-- WRONG"
	FAILED=1
fi
if grep -q '^reservation ' "$TMP/inventory.dump"; then
	log "final state: a reservation is still open  <-- WRONG"
	FAILED=1
fi

echo
if [[ $FAILED -ne 0 ]]; then
	log "FAILED (see the lines marked WRONG)"
	exit 1
fi
log "all four outcomes as expected, stock and orders consistent"
