// SPDX-License-Identifier: MIT
//
// certinfo: the validity dates of an X.509 certificate in PEM text, read
// without a TLS library. nng 1.5.2 offers no way to look into a
// certificate, and its handshake failures do not say that a certificate has
// expired; dtx reads its own certificates' dates so that an expired one is
// refused when it is loaded, by name and date, instead of failing every
// handshake later. A pure module: text in, dates out.

#ifndef DTX_CERTINFO_H
#define DTX_CERTINFO_H

#include <stddef.h>
#include <stdint.h>

// Validity of the first certificate ("-----BEGIN CERTIFICATE-----") in
// the len bytes of pem, in seconds since the epoch (UTC). Returns 0, or -1
// when there is no certificate or it cannot be read (bad base64, DER that
// is not an X.509 certificate, a date out of range).
int dtxi_cert_validity(
    const char *pem, size_t len, int64_t *not_before, int64_t *not_after);

// Writes t (seconds since the epoch) as "YYYY-MM-DD HH:MM:SS UTC" to out,
// which has room for cap bytes (24 are enough).
void dtxi_cert_time_str(int64_t t, char *out, size_t cap);

#endif // DTX_CERTINFO_H
