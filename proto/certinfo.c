// SPDX-License-Identifier: MIT
//
// certinfo: validity dates of a PEM certificate (see certinfo.h). The PEM
// block is base64-decoded and its DER walked just far enough: Certificate
// ::= SEQUENCE { tbsCertificate SEQUENCE { [0] version OPTIONAL, serial
// INTEGER, signature SEQUENCE, issuer SEQUENCE, validity SEQUENCE {
// notBefore Time, notAfter Time }, ... } ... } (RFC 5280 4.1). Every
// length is checked against what is left, so any input ends in a result or
// -1. Times are RFC 5280's two forms only: UTCTime "YYMMDDHHMMSSZ" (years
// 1950-2049) and GeneralizedTime "YYYYMMDDHHMMSSZ".

#include "certinfo.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PEM_BEGIN "-----BEGIN CERTIFICATE-----"
#define PEM_END   "-----END CERTIFICATE-----"

// Where needle first occurs in the n bytes at hay, or NULL.
static const char *
find(const char *hay, size_t n, const char *needle)
{
	size_t k = strlen(needle);

	for (size_t i = 0; k <= n && i <= n - k; i++) {
		if (memcmp(hay + i, needle, k) == 0) {
			return hay + i;
		}
	}
	return NULL;
}

static int
b64_value(char c)
{
	if (c >= 'A' && c <= 'Z') {
		return c - 'A';
	}
	if (c >= 'a' && c <= 'z') {
		return c - 'a' + 26;
	}
	if (c >= '0' && c <= '9') {
		return c - '0' + 52;
	}
	if (c == '+') {
		return 62;
	}
	if (c == '/') {
		return 63;
	}
	return -1;
}

// Decodes the base64 text of n bytes at in (whitespace ignored, '='
// padding only at the end) into out (room for n bytes); returns the length
// or -1.
static long
b64_decode(const char *in, size_t n, unsigned char *out)
{
	unsigned long acc  = 0;
	int           bits = 0;
	long          len  = 0;
	bool          pad  = false;

	for (size_t i = 0; i < n; i++) {
		char c = in[i];
		int  v;
		if (c == ' ' || c == '\t' || c == '\r' || c == '\n') {
			continue;
		}
		if (c == '=') {
			pad = true;
			continue;
		}
		if (pad || (v = b64_value(c)) < 0) {
			return -1;
		}
		acc = ((acc << 6) | (unsigned long)v) & 0xffffff;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			out[len++] = (unsigned char)(acc >> bits);
		}
	}
	return len;
}

// A DER element: its tag, and its content [p, p + len).
typedef struct tlv {
	unsigned             tag;
	const unsigned char *p;
	size_t               len;
} tlv;

// Reads the element at *pp (before end) into t and moves *pp past it.
static int
der_next(const unsigned char **pp, const unsigned char *end, tlv *t)
{
	const unsigned char *p = *pp;
	size_t               len;

	if (end - p < 2) {
		return -1;
	}
	t->tag = *p++;
	len    = *p++;
	if (len & 0x80) {
		unsigned nb = len & 0x7f;
		if (nb == 0 || nb > 4 || (size_t)(end - p) < nb) {
			return -1;
		}
		len = 0;
		for (unsigned i = 0; i < nb; i++) {
			len = (len << 8) | *p++;
		}
	}
	if (len > (size_t)(end - p)) {
		return -1;
	}
	t->p   = p;
	t->len = len;
	*pp    = p + len;
	return 0;
}

// Days from 1970-01-01 to y-m-d in the proleptic Gregorian calendar (the
// "days from civil" algorithm of H. Hinnant).
static int64_t
days_from_civil(int64_t y, unsigned m, unsigned d)
{
	y -= m <= 2;
	int64_t  era = (y >= 0 ? y : y - 399) / 400;
	unsigned yoe = (unsigned)(y - era * 400);
	unsigned doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
	unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + (int64_t)doe - 719468;
}

// n decimal digits at s, or -1.
static int
digits(const unsigned char *s, int n)
{
	int v = 0;

	for (int i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9') {
			return -1;
		}
		v = v * 10 + (s[i] - '0');
	}
	return v;
}

static int
der_time(const tlv *t, int64_t *out)
{
	const unsigned char *s = t->p;
	int                  year;

	if (t->tag == 0x17 && t->len == 13) { // UTCTime
		if ((year = digits(s, 2)) < 0) {
			return -1;
		}
		year += year < 50 ? 2000 : 1900;
		s += 2;
	} else if (t->tag == 0x18 && t->len == 15) { // GeneralizedTime
		if ((year = digits(s, 4)) < 0) {
			return -1;
		}
		s += 4;
	} else {
		return -1;
	}
	int mon = digits(s, 2), day = digits(s + 2, 2), hh = digits(s + 4, 2);
	int mm = digits(s + 6, 2), ss = digits(s + 8, 2);
	if (mon < 1 || mon > 12 || day < 1 || day > 31 || hh < 0 || hh > 23 ||
	    mm < 0 || mm > 59 || ss < 0 || ss > 59 || s[10] != 'Z') {
		return -1;
	}
	*out = days_from_civil(year, (unsigned)mon, (unsigned)day) * 86400 +
	    hh * 3600 + mm * 60 + ss;
	return 0;
}

static int
der_validity(const unsigned char *der, size_t n, int64_t *nb, int64_t *na)
{
	const unsigned char *p = der, *end = der + n;
	tlv                  t;

	if (der_next(&p, end, &t) != 0 || t.tag != 0x30) {
		return -1; // Certificate
	}
	p   = t.p;
	end = t.p + t.len;
	if (der_next(&p, end, &t) != 0 || t.tag != 0x30) {
		return -1; // tbsCertificate
	}
	p   = t.p;
	end = t.p + t.len;
	if (der_next(&p, end, &t) != 0) {
		return -1;
	}
	if (t.tag == 0xa0 && der_next(&p, end, &t) != 0) {
		return -1; // [0] version, then the serial number
	}
	if (t.tag != 0x02) {
		return -1;
	}
	for (int i = 0; i < 2; i++) { // signature, issuer
		if (der_next(&p, end, &t) != 0 || t.tag != 0x30) {
			return -1;
		}
	}
	if (der_next(&p, end, &t) != 0 || t.tag != 0x30) {
		return -1; // validity
	}
	p   = t.p;
	end = t.p + t.len;
	if (der_next(&p, end, &t) != 0 || der_time(&t, nb) != 0 ||
	    der_next(&p, end, &t) != 0 || der_time(&t, na) != 0) {
		return -1;
	}
	return 0;
}

int
dtxi_cert_validity(
    const char *pem, size_t len, int64_t *not_before, int64_t *not_after)
{
	const char    *b, *e;
	unsigned char *der;
	long           n;
	int64_t        nb, na;
	int            rv = -1;

	if (pem == NULL || (b = find(pem, len, PEM_BEGIN)) == NULL) {
		return -1;
	}
	b += strlen(PEM_BEGIN);
	if ((e = find(b, len - (size_t)(b - pem), PEM_END)) == NULL) {
		return -1;
	}
	if ((der = malloc((size_t)(e - b) + 1)) == NULL) {
		return -1;
	}
	n = b64_decode(b, (size_t)(e - b), der);
	if (n > 0 && der_validity(der, (size_t)n, &nb, &na) == 0) {
		*not_before = nb;
		*not_after  = na;
		rv          = 0;
	}
	free(der);
	return rv;
}

void
dtxi_cert_time_str(int64_t t, char *out, size_t cap)
{
	// The inverse of days_from_civil ("civil from days", H. Hinnant).
	int64_t  z   = (t >= 0 ? t : t - 86399) / 86400 + 719468;
	int64_t  sec = t - (z - 719468) * 86400;
	int64_t  era = (z >= 0 ? z : z - 146096) / 146097;
	unsigned doe = (unsigned)(z - era * 146097);
	unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	unsigned mp  = (5 * doy + 2) / 153;
	unsigned d   = doy - (153 * mp + 2) / 5 + 1;
	unsigned m   = mp < 10 ? mp + 3 : mp - 9;
	int64_t  y   = (int64_t)yoe + era * 400 + (m <= 2);

	snprintf(out, cap, "%04lld-%02u-%02u %02u:%02u:%02u UTC", (long long)y,
	    m, d, (unsigned)(sec / 3600), (unsigned)(sec / 60 % 60),
	    (unsigned)(sec % 60));
}
