// SPDX-License-Identifier: MIT
//
// certinfo: the validity dates of PEM certificates read without a TLS
// library: a v3 certificate with UTCTime dates, a v1 one (no version field)
// with a UTCTime start in 2049 and a GeneralizedTime end on a leap day in
// 2060, the first of several, and anything else (truncated, corrupted, not
// base64, no certificate, no end line) refused rather than misread.

#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <criterion/criterion.h>

#include "certinfo.h"

// Made with openssl ca -startdate 20200101000000Z -enddate
// 20200131000000Z (samples/tls/make-certs.sh --issue --expired).
static const char v3_2020[] =
    "-----BEGIN CERTIFICATE-----\n"
    "MIIBuTCCAV+gAwIBAgIBATAKBggqhkjOPQQDAjARMQ8wDQYDVQQDDAZkdHggY2Ew\n"
    "HhcNMjAwMTAxMDAwMDAwWhcNMjAwMTMxMDAwMDAwWjAUMRIwEAYDVQQDDAlsb2Nh\n"
    "bGhvc3QwWTATBgcqhkjOPQIBBggqhkjOPQMBBwNCAAS0NdoFHpjgoEcAxXk+sufQ\n"
    "GceN3nNpEYaPd+mIMSpVJU51sT3IiD1Rf7nVJqsYfEk1zPlpUC5lWLxEM1XMeEw1\n"
    "o4GkMIGhMAkGA1UdEwQCMAAwDgYDVR0PAQH/BAQDAgOIMB0GA1UdJQQWMBQGCCsG\n"
    "AQUFBwMBBggrBgEFBQcDAjAlBgNVHREEHjAcgglsb2NhbGhvc3SCCTEyNy4wLjAu\n"
    "MYcEfwAAATAdBgNVHQ4EFgQUwpXQOLuFDlU63ZjcY/WtfeUv6/AwHwYDVR0jBBgw\n"
    "FoAUFJ+gmewaEe+Hbe3gZQ6cj+fbzt0wCgYIKoZIzj0EAwIDSAAwRQIgA4/idOVT\n"
    "DPq9fNlMe1xqzoNEctAdjpww3pFcO2CpQz4CIQD/XdzAQru/MLoMkePUH46VS6Un\n"
    "XZjOlJQawWAJ6MzQjQ==\n"
    "-----END CERTIFICATE-----\n";

// openssl ca without extensions (a v1 certificate), -startdate
// 20491231235959Z -enddate 20600229120000Z.
static const char v1_2060[] =
    "-----BEGIN CERTIFICATE-----\n"
    "MIIBCTCBrwIBBTAKBggqhkjOPQQDAjARMQ8wDQYDVQQDDAZkdHggY2EwIBcNNDkx\n"
    "MjMxMjM1OTU5WhgPMjA2MDAyMjkxMjAwMDBaMA4xDDAKBgNVBAMMA2ZhcjBZMBMG\n"
    "ByqGSM49AgEGCCqGSM49AwEHA0IABFqyD7r1IKw0DWo+girCZsGCs934EUzn3zX2\n"
    "uz/+KacRHuRxvqFqvsbcnfsxpyg7IkK8Q2axJSzPu+HPX/CXXyEwCgYIKoZIzj0E\n"
    "AwIDSQAwRgIhAIssBSWo84O5ovWyKSEyezaoQZ99XJbQGpMr7gXJ5lafAiEAuilk\n"
    "hphFn52V8CN85hhG2W/6qxN7V4RF959oI+m9JOw=\n"
    "-----END CERTIFICATE-----\n";

static int
validity(const char *pem, int64_t *nb, int64_t *na)
{
	return dtxi_cert_validity(pem, strlen(pem), nb, na);
}

Test(certinfo, reads_the_utctime_dates_of_a_v3_certificate)
{
	int64_t nb, na;

	cr_assert_eq(validity(v3_2020, &nb, &na), 0);
	cr_assert_eq(nb, 1577836800); // 2020-01-01 00:00:00 UTC
	cr_assert_eq(na, 1580428800); // 2020-01-31 00:00:00 UTC
}

Test(certinfo, reads_a_v1_certificate_and_generalized_time_past_2049)
{
	int64_t nb, na;
	char    s[32];

	cr_assert_eq(validity(v1_2060, &nb, &na), 0);
	cr_assert_eq(nb, 2524607999); // 2049-12-31 23:59:59 UTC
	cr_assert_eq(na, 2845281600); // 2060-02-29 12:00:00 UTC
	dtxi_cert_time_str(na, s, sizeof(s));
	cr_assert_str_eq(s, "2060-02-29 12:00:00 UTC");
	dtxi_cert_time_str(0, s, sizeof(s));
	cr_assert_str_eq(s, "1970-01-01 00:00:00 UTC");
}

Test(certinfo, reads_the_first_of_several_certificates_after_other_text)
{
	char    both[4096];
	int64_t nb, na;

	snprintf(
	    both, sizeof(both), "subject=CN = far\n%s%s", v1_2060, v3_2020);
	cr_assert_eq(validity(both, &nb, &na), 0);
	cr_assert_eq(na, 2845281600);
}

Test(certinfo, refuses_what_is_not_a_whole_certificate)
{
	char    bad[4096];
	int64_t nb = 7, na = 7;

	cr_assert_eq(validity("", &nb, &na), -1);
	cr_assert_eq(validity("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END "
	                      "PRIVATE KEY-----\n",
	                 &nb, &na),
	    -1);
	// No end line.
	snprintf(bad, sizeof(bad), "%.200s", v3_2020);
	cr_assert_eq(validity(bad, &nb, &na), -1);
	// Cut short inside the DER: lengths run past the end.
	snprintf(bad, sizeof(bad),
	    "-----BEGIN CERTIFICATE-----\n%.80s\n-----END CERTIFICATE-----\n",
	    v3_2020 + 28);
	cr_assert_eq(validity(bad, &nb, &na), -1);
	// Not base64.
	cr_assert_eq(validity("-----BEGIN CERTIFICATE-----\n*&^%\n-----END "
	                      "CERTIFICATE-----\n",
	                 &nb, &na),
	    -1);
	// A date with a letter in it: "2020" -> "2O20" in the DER.
	snprintf(bad, sizeof(bad), "%s", v3_2020);
	char *d = strstr(bad, "HhcNMjAwMTAx");
	cr_assert_not_null(d);
	memcpy(d, "HhcNMk8wMTAx", 12);
	cr_assert_eq(validity(bad, &nb, &na), -1);
	// Nothing written on failure.
	cr_assert_eq(nb, 7);
	cr_assert_eq(na, 7);
}

Test(certinfo, survives_every_truncation_and_byte_flip)
{
	char    buf[sizeof(v3_2020)];
	int64_t nb, na;
	size_t  n = strlen(v3_2020);

	for (size_t cut = 0; cut < n; cut++) {
		(void)dtxi_cert_validity(v3_2020, cut, &nb, &na);
	}
	for (size_t i = 28; i < n - 26; i++) {
		memcpy(buf, v3_2020, sizeof(buf));
		buf[i] = buf[i] == 'A' ? 'z' : 'A';
		(void)validity(buf, &nb, &na);
	}
}
