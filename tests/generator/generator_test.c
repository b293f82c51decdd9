// SPDX-License-Identifier: MIT
//
// generator_test: protoc-gen-dtx as protoc runs it, with nanopb in the same
// run (as dtx_add_service() does). Each .proto of protos/ must give exactly
// the files in golden/ (which tests/CMakeLists.txt compiles and the typed
// integration suite runs); each .proto of refuse/ must be refused with a
// message naming the culprit, or (callback.proto) warned about. To accept
// a deliberate change of the generated code, run this suite once with
// DTX_GOLDEN_UPDATE=1: it then rewrites golden/ and fails, so that the
// change is looked at before it is committed. CTest passes the programs and
// directories in the environment (see tests/CMakeLists.txt).

#include <criterion/criterion.h>

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "harness.h"

static char dir[512];

static const char *
env(const char *name)
{
	const char *v = getenv(name);

	cr_assert(v != NULL, "%s is not set (run under CTest)", name);
	return v;
}

// snprintf that fails the test instead of truncating.
static void __attribute__((format(printf, 3, 4)))
fmt(char *buf, size_t cap, const char *f, ...)
{
	va_list ap;
	int     n;

	va_start(ap, f);
	n = vsnprintf(buf, cap, f, ap);
	va_end(ap);
	cr_assert(n >= 0 && (size_t)n < cap, "path too long: %s", buf);
}

// Runs protoc with both plugins on proto (a name under root) into out, its
// output in log. Returns protoc's exit code.
static int
protoc(const char *root, const char *proto, const char *out, const char *log)
{
	char       inc[DTXT_PATH_MAX], optinc[DTXT_PATH_MAX];
	char       desc[DTXT_PATH_MAX], root_inc[DTXT_PATH_MAX];
	char       nb[DTXT_PATH_MAX], nbout[DTXT_PATH_MAX];
	char       nbopt[DTXT_PATH_MAX], dtx[DTXT_PATH_MAX];
	char       dtxout[DTXT_PATH_MAX], dtxopt[DTXT_PATH_MAX];
	dtxt_proc *p;
	dtxt_exit  how;

	mkdir(out, 0700);
	fmt(root_inc, sizeof(root_inc), "-I%s", root);
	fmt(inc, sizeof(inc), "-I%s", env("DTX_PROTO_DIR"));
	fmt(desc, sizeof(desc), "-I%s", env("DTX_DESCRIPTOR_PROTO_DIR"));
	fmt(nb, sizeof(nb), "--plugin=protoc-gen-nanopb=%s",
	    env("DTX_NANOPB_PLUGIN"));
	fmt(nbout, sizeof(nbout), "--nanopb_out=%s", out);
	fmt(nbopt, sizeof(nbopt), "--nanopb_opt=-I%s,-xdtx/options.proto",
	    root);
	fmt(dtx, sizeof(dtx), "--plugin=protoc-gen-dtx=%s",
	    env("DTX_GENERATOR"));
	fmt(dtxout, sizeof(dtxout), "--dtx_out=%s", out);
	fmt(optinc, sizeof(optinc), "-I%s", root);
	fmt(dtxopt, sizeof(dtxopt), "--dtx_opt=%s,nanopb=%s", optinc,
	    env("DTX_NANOPB_GENERATOR"));
	{
		char *const argv[] = {(char *)env("DTX_PROTOC"), root_inc, inc,
		    desc, nb, nbout, nbopt, dtx, dtxout, dtxopt, (char *)proto,
		    NULL};
		p                  = dtxt_spawn("protoc", argv, NULL, log);
	}
	cr_assert(p != NULL);
	cr_assert_eq(dtxt_wait(p, 60000, &how), 0, "protoc still runs");
	cr_assert(how.exited, "protoc died of signal %d", how.signo);
	return how.code;
}

static void
setup(void)
{
	cr_assert_eq(dtxt_tmpdir(dir, sizeof(dir)), 0);
}

TestSuite(generator, .init = setup, .fini = dtxt_cleanup, .timeout = 120);

// Generates base.proto (a name under protos/) and compares its two dtx
// files with golden/ (or rewrites them with DTX_GOLDEN_UPDATE=1).
static void
golden(const char *base)
{
	const char *src   = env("DTX_GENERATOR_TESTS");
	const char *ext[] = {".dtx.h", ".dtx.c"};
	char        root[DTXT_PATH_MAX], out[DTXT_PATH_MAX];
	char        log[DTXT_PATH_MAX], proto[DTXT_PATH_MAX];
	bool        update = getenv("DTX_GOLDEN_UPDATE") != NULL;

	fmt(root, sizeof(root), "%s/protos", src);
	fmt(out, sizeof(out), "%s/out", dir);
	fmt(log, sizeof(log), "%s/protoc.log", dir);
	fmt(proto, sizeof(proto), "%s.proto", base);
	cr_assert_eq(protoc(root, proto, out, log), 0, "protoc failed:\n%s",
	    dtxt_read_file(log));
	for (int i = 0; i < 2; i++) {
		char  got[DTXT_PATH_MAX], want[DTXT_PATH_MAX];
		char *g, *w;

		fmt(got, sizeof(got), "%s/%s%s", out, base, ext[i]);
		fmt(want, sizeof(want), "%s/golden/%s%s", src, base, ext[i]);
		g = dtxt_read_file(got);
		w = dtxt_read_file(want);
		cr_assert(g[0] != '\0', "protoc wrote no %s", got);
		if (update && strcmp(g, w) != 0) {
			FILE *f = fopen(want, "w");
			cr_assert(f != NULL, "cannot write %s", want);
			fputs(g, f);
			fclose(f);
			cr_expect_fail(
			    "rewrote %s: review and commit it", want);
		} else {
			cr_expect_str_eq(g, w,
			    "%s differs from %s (DTX_GOLDEN_UPDATE=1 rewrites "
			    "it)",
			    got, want);
		}
		free(g);
		free(w);
	}
	// nanopb ran in the same protoc call.
	{
		char pb[DTXT_PATH_MAX];
		fmt(pb, sizeof(pb), "%s/%s.pb.h", out, base);
		cr_expect_eq(access(pb, R_OK), 0, "no %s", pb);
	}
}

Test(generator, writes_a_2pc_service_in_a_nested_package)
{
	golden("shop/inventory");
}

Test(generator, writes_saga_and_both_methods_on_imported_pointer_messages)
{
	golden("travel/trip");
}

Test(generator, writes_empty_files_for_a_proto_without_services)
{
	golden("travel/common");
}

// Runs refuse/<name>.proto and returns protoc's output (free() it) after
// checking its exit code.
static char *
refused(const char *name, int want_code)
{
	char root[DTXT_PATH_MAX], out[DTXT_PATH_MAX];
	char log[DTXT_PATH_MAX], proto[DTXT_PATH_MAX];
	int  code;

	fmt(root, sizeof(root), "%s/refuse", env("DTX_GENERATOR_TESTS"));
	fmt(out, sizeof(out), "%s/out", dir);
	fmt(log, sizeof(log), "%s/protoc.log", dir);
	fmt(proto, sizeof(proto), "%s.proto", name);
	code = protoc(root, proto, out, log);
	cr_assert_eq(code, want_code, "%s: protoc exited %d, not %d:\n%s",
	    name, code, want_code, dtxt_read_file(log));
	return dtxt_read_file(log);
}

static void
says(const char *out, const char *text)
{
	cr_expect(strstr(out, text) != NULL, "no \"%s\" in:\n%s", text, out);
}

Test(generator, refuses_a_streaming_method)
{
	char *out = refused("streaming", 1);
	says(out, "streaming.proto: method refuse.S.Watch streams its reply");
	free(out);
}

Test(generator, refuses_a_method_without_a_kind)
{
	char *out = refused("nokind", 1);
	says(out, "nokind.proto: method refuse.S.Plain has no dtx kind");
	free(out);
}

Test(generator, refuses_nanopb_name_mangling)
{
	char *out = refused("mangle", 1);
	says(out,
	    "mangle.proto: nanopb option mangle_names:M_STRIP_PACKAGE "
	    "changes the C names");
	free(out);
}

Test(generator, refuses_a_nanopb_package_option)
{
	char *out = refused("package", 1);
	says(out,
	    "package.proto: nanopb option package:\"other\" changes the "
	    "C names");
	free(out);
}

Test(generator, refuses_a_wire_name_over_dtx_method_max)
{
	char *out = refused("longname", 1);
	says(out,
	    "of method refuse.S.Do is refused: it is 136 bytes, over "
	    "DTX_METHOD_MAX (128)");
	free(out);
}

Test(generator, refuses_two_methods_with_one_wire_name)
{
	char *out = refused("duplicate", 1);
	says(out,
	    "method refuse.S.One and method refuse.S.Two have the same "
	    "wire name \"same\"");
	free(out);
}

Test(generator, refuses_a_service_without_methods)
{
	char *out = refused("empty", 1);
	says(out, "empty.proto: service refuse.S has no methods");
	free(out);
}

Test(generator, warns_about_a_field_left_to_a_callback)
{
	char *out = refused("callback", 0);
	says(out,
	    "callback.proto: warning: field refuse.M.text (string "
	    "without max_size) is left to a nanopb callback");
	free(out);
}
