#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# make-certs.sh: a certificate layout for dtx with mutual TLS, made with
# openssl (README, "Securing dtx"). Three CAs, one per role:
#
#   coordinator-ca  signs dtxd's certificate (dtxd.crt), and nothing else.
#                   Participants take branch calls only from it; clients
#                   and operators check dtxd against it.
#   services-ca     signs clients and participants (service.crt): dtxd's
#                   --listen accepts it (--tls-ca), and dtxd checks the
#                   participants it calls against it (--participant-tls-ca).
#   operator-ca     signs operators (operator.crt): only dtxd's operator
#                   listener accepts it (--operator-tls-ca).
#
# Usage:
#   make-certs.sh DIR [NAME...]
#       makes the three CAs and dtxd.crt, service.crt and operator.crt
#       (each with its .key) in DIR. Server certificates carry the names
#       localhost and 127.0.0.1 and every NAME (a host name or address).
#   make-certs.sh --ca DIR CA
#       makes one more CA, DIR/CA.crt and DIR/CA.key.
#   make-certs.sh --issue DIR CA LEAF [--expired] [NAME...]
#       issues DIR/LEAF.crt and .key from DIR/CA.crt for NAME... (default
#       localhost and 127.0.0.1; CN is the first); --expired makes one
#       valid only in January 2020 (for tests).
#
# Keys are ECDSA P-256, unencrypted, readable by their owner only. Leaf
# certificates are valid for 825 days, CAs for ten years. mbed TLS (under
# nng) matches a server's name against the certificate's DNS names, so an
# address goes in as DNS:<address> too (as well as IP:<address>).

set -euo pipefail

die() {
	echo "make-certs: $*" >&2
	exit 2
}

command -v openssl >/dev/null 2>&1 || die "openssl is not installed"

# new_key FILE: an ECDSA P-256 private key, mode 0600.
new_key() {
	(umask 077 && openssl genpkey -algorithm EC \
		-pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null)
}

# make_ca DIR NAME
make_ca() {
	new_key "$1/$2.key"
	openssl req -x509 -new -key "$1/$2.key" -out "$1/$2.crt" -days 3650 \
		-subj "/CN=dtx $2" \
		-addext "basicConstraints=critical,CA:TRUE" \
		-addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
}

# san NAME...: the subjectAltName value for the names.
san() {
	local n out=""
	for n in "$@"; do
		if [[ $n =~ ^[0-9.]+$ || $n == *:* ]]; then
			out+="DNS:$n,IP:$n,"
		else
			out+="DNS:$n,"
		fi
	done
	echo "${out%,}"
}

# issue DIR CA LEAF EXPIRED NAME...
issue() {
	local dir=$1 ca=$2 leaf=$3 expired=$4 tmp
	shift 4
	[[ -f $dir/$ca.crt && -f $dir/$ca.key ]] || die "no CA $dir/$ca"
	tmp=$(mktemp -d)
	new_key "$dir/$leaf.key"
	openssl req -new -key "$dir/$leaf.key" -out "$tmp/req.csr" \
		-subj "/CN=$1" 2>/dev/null
	cat >"$tmp/ext.cnf" <<-EXT
		basicConstraints = CA:FALSE
		keyUsage = critical, digitalSignature, keyAgreement
		extendedKeyUsage = serverAuth, clientAuth
		subjectAltName = $(san "$@")
	EXT
	if [[ $expired == yes ]]; then
		# openssl x509 cannot set a start date; openssl ca can.
		mkdir "$tmp/db"
		: >"$tmp/db/index.txt"
		echo 01 >"$tmp/db/serial"
		cat >"$tmp/ca.cnf" <<-CNF
			[ca]
			default_ca = d
			[d]
			database = $tmp/db/index.txt
			new_certs_dir = $tmp/db
			serial = $tmp/db/serial
			default_md = sha256
			policy = p
			unique_subject = no
			[p]
			commonName = supplied
		CNF
		openssl ca -batch -config "$tmp/ca.cnf" -cert "$dir/$ca.crt" \
			-keyfile "$dir/$ca.key" -in "$tmp/req.csr" \
			-out "$dir/$leaf.crt" -extfile "$tmp/ext.cnf" -notext \
			-startdate 20200101000000Z -enddate 20200131000000Z \
			>/dev/null 2>&1 || die "openssl ca failed for $leaf"
	else
		openssl x509 -req -in "$tmp/req.csr" -CA "$dir/$ca.crt" \
			-CAkey "$dir/$ca.key" -CAcreateserial -days 825 \
			-sha256 -extfile "$tmp/ext.cnf" -out "$dir/$leaf.crt" \
			2>/dev/null || die "openssl x509 failed for $leaf"
	fi
	rm -rf "$tmp"
}

case ${1:-} in
--ca)
	[[ $# -eq 3 ]] || die "usage: $0 --ca DIR CA"
	make_ca "$2" "$3"
	;;
--issue)
	[[ $# -ge 4 ]] || die "usage: $0 --issue DIR CA LEAF [--expired] [NAME...]"
	dir=$2 ca=$3 leaf=$4 expired=no
	shift 4
	if [[ ${1:-} == --expired ]]; then
		expired=yes
		shift
	fi
	[[ $# -gt 0 ]] || set -- localhost 127.0.0.1
	issue "$dir" "$ca" "$leaf" "$expired" "$@"
	;;
"" | -*)
	die "usage: $0 DIR [NAME...] | --ca DIR CA | --issue DIR CA LEAF ..."
	;;
*)
	dir=$1
	shift
	mkdir -p "$dir"
	for ca in coordinator-ca services-ca operator-ca; do
		make_ca "$dir" "$ca"
	done
	issue "$dir" coordinator-ca dtxd no localhost 127.0.0.1 "$@"
	issue "$dir" services-ca service no localhost 127.0.0.1 "$@"
	issue "$dir" operator-ca operator no operator
	;;
esac
