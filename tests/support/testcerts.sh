#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# testcerts.sh MAKE_CERTS DIR: the certificates of the TLS tests, made at
# test time with openssl: samples/tls/make-certs.sh's layout (passed as
# MAKE_CERTS) in a fresh DIR, plus the ones that must be refused:
#
#   rogue-ca, rogue      a CA nobody trusts, and a service certificate of it
#   expired              a services-CA certificate that expired in 2020
#   wrongname            a services-CA certificate for wrong.example only
#   dtxd-wrongname       a coordinator-CA certificate for wrong.example only

set -euo pipefail

if [[ $# -ne 2 ]]; then
	echo "usage: $0 MAKE_CERTS DIR" >&2
	exit 2
fi
mk=$1 dir=$2
rm -rf "$dir"
bash "$mk" "$dir"
bash "$mk" --ca "$dir" rogue-ca
bash "$mk" --issue "$dir" rogue-ca rogue
bash "$mk" --issue "$dir" services-ca expired --expired
bash "$mk" --issue "$dir" services-ca wrongname wrong.example
bash "$mk" --issue "$dir" coordinator-ca dtxd-wrongname wrong.example
echo "testcerts: made in $dir"
