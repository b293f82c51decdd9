# SPDX-License-Identifier: MIT
#
# dtxgen_emit: writes <file>.dtx.h and <file>.dtx.c from a FileModel
# (dtxgen_model). The header declares, per service, the typed callbacks
# grouped by method and the registration function, and per method the
# client calls; the source holds the thunks between libdtx's untyped
# callbacks and the typed ones (decode, call, encode, release) and the
# client calls. The parts every file needs are written once per file as
# static helpers (HELPERS below), so that each method adds only small
# functions that call them. dtxgen_layout lays everything out as the
# repository's clang-format would.

from dtxgen_layout import (assign, assign_block, comment, declare, define,
                           definition, pack, pack_assign, prototype)

HEADER_INTRO = [
    ('Typed dtx services. For each service: a struct of typed callbacks, '
     'grouped by method, and <service>_register(), which serves them on a '
     'dtx_participant. For each method: <method>_add(), which adds a '
     'branch calling it to a transaction, and <method>_reply(), which '
     'decodes the reply its forward phase (prepare or execute) sent.'),
    "",
    ('The callbacks run as dtx_phase_fn callbacks do (see dtx/dtx.h): on '
     "one of the participant's worker threads, possibly more than once per "
     'call, so they must be idempotent, and behind the barrier when the '
     'participant uses one (dtx_reply_writebatch(reply) then gives the '
     "batch to stage writes in). Each gets the call's payload decoded as "
     "the method's request. prepare and execute also fill *out, the "
     "method's reply, which is encoded and sent as the branch's reply "
     'payload when they return DTX_OK or DTX_REFUSED; pointer fields of '
     '*out must point to memory from malloc(), which is released after '
     'encoding. A payload that does not decode is answered BAD_REQUEST '
     'without calling them. A callback may return DTX_BAD_REQUEST itself '
     'for a request it cannot serve.'),
]

SOURCE_INTRO = [
    ("The thunks between libdtx's untyped callbacks and the typed ones of "
     "{h}, and the typed client calls. A thunk decodes the call's payload "
     'with nanopb (one that does not decode is answered BAD_REQUEST with '
     "nanopb's reason), calls the service's function, encodes the reply of "
     'a forward phase as the reply payload and releases what nanopb '
     'allocated.'),
]

NO_SERVICES = ("%s has no services, so there is nothing to declare here; "
               "the file exists so that every .proto gives the same files.")

HELPERS = r"""
// How the messages of one method's call lie in its frame: the request and,
// for a forward phase, the reply, allocated together.
typedef struct dtxgen_io {
	size_t              frame; // size of the frame
	const pb_msgdesc_t *reqty; // the request: its type,
	size_t              reqat; // offset in the frame
	const char         *reqnm; // and proto name
	const pb_msgdesc_t *repty; // the reply
	size_t              repat;
	size_t              repsz; // its size
	const char         *repnm;
} dtxgen_io;

// The wire name of every method fits in DTX_METHOD_MAX.
#define DTXGEN_NAME_FITS(name)                                                \
	_Static_assert(sizeof(name) <= DTX_METHOD_MAX + 1,                    \
	    "wire name " name " is longer than DTX_METHOD_MAX")

static void
dtxgen_free(const dtxgen_io *io, bool forward, void *frame)
{
RELEASE_BOTH
}

// Allocates the frame of a call and decodes the call's payload into its
// request; for a forward phase, also sets the reply to its defaults (what
// decoding nothing gives). A
// payload that does not decode is answered BAD_REQUEST, with nanopb's
// reason. Returns the frame, or NULL with *res set.
static void *
dtxgen_begin(const dtxgen_io *io, bool forward, const dtx_call *call,
    dtx_reply *reply, dtx_result *res)
{
	char        *f = calloc(1, io->frame);
	pb_istream_t in;
	char         why[DTX_MESSAGE_MAX + 1];

	if (f == NULL) {
		dtx_reply_set_message(reply, "out of memory");
		*res = DTX_RETRY;
		return NULL;
	}
	if (forward) {
		in = pb_istream_from_buffer(NULL, 0);
		pb_decode(&in, io->repty, f + io->repat);
	}
	in = pb_istream_from_buffer(call->payload, call->payload_len);
	if (!pb_decode(&in, io->reqty, f + io->reqat)) {
		snprintf(why, sizeof(why), "%s: the payload is not a %s: %s",
		    call->method, io->reqnm, PB_GET_ERROR(&in));
		dtx_reply_set_message(reply, why);
		dtxgen_free(io, forward, f);
		*res = DTX_BAD_REQUEST;
		return NULL;
	}
	return f;
}

// Encodes the reply in frame f as the reply payload. A reply that does not
// encode is the service's fault: it is answered RETRY (so that the barrier,
// if any, drops what the callback staged), with nanopb's reason.
static dtx_result
dtxgen_encode(const dtxgen_io *io, const dtx_call *call, dtx_reply *reply,
    const char *f, dtx_result res)
{
	pb_ostream_t out = PB_OSTREAM_SIZING;
	void        *buf = NULL;
	char         why[DTX_MESSAGE_MAX + 1];
	int          rv;

	if (!pb_encode(&out, io->repty, f + io->repat)) {
		snprintf(why, sizeof(why),
		    "%s: the %s reply does not encode: %s", call->method,
		    io->repnm, PB_GET_ERROR(&out));
		dtx_reply_set_message(reply, why);
		return DTX_RETRY;
	}
	rv = dtx_reply_alloc_payload(reply, out.bytes_written, &buf);
	if (rv != 0) {
		snprintf(why, sizeof(why), "%s: the %s reply (%zu bytes): %s",
		    call->method, io->repnm, out.bytes_written,
		    dtx_strerror(rv));
		dtx_reply_set_message(reply, why);
		return DTX_RETRY;
	}
	out = pb_ostream_from_buffer(buf, out.bytes_written);
	if (!pb_encode(&out, io->repty, f + io->repat)) {
		dtx_reply_set_payload(reply, NULL, 0);
		dtx_reply_set_message(reply, "the reply changed in encoding");
		return DTX_RETRY;
	}
	return res;
}

// Ends a call: encodes the reply of a forward phase that answered OK or
// REFUSED, releases what nanopb allocated and frees the frame.
static dtx_result
dtxgen_end(const dtxgen_io *io, bool forward, const dtx_call *call,
    dtx_reply *reply, void *f, dtx_result res)
{
	if (forward && (res == DTX_OK || res == DTX_REFUSED)) {
		res = dtxgen_encode(io, call, reply, f, res);
	}
	dtxgen_free(io, forward, f);
	return res;
}

// Encodes req and adds it to tx as a branch calling m at endpoint.
static int
dtxgen_add(dtx_tx *tx, const char *endpoint, const dtx_method_desc *m,
    const pb_msgdesc_t *type, const void *req)
{
	pb_ostream_t out = PB_OSTREAM_SIZING;
	pb_byte_t   *buf = NULL;
	int          rv;

	if (req == NULL || !pb_encode(&out, type, req)) {
		return DTX_EINVAL;
	}
	if (out.bytes_written > 0) {
		if ((buf = malloc(out.bytes_written)) == NULL) {
			return DTX_ENOMEM;
		}
		out = pb_ostream_from_buffer(buf, out.bytes_written);
		if (!pb_encode(&out, type, req)) {
			free(buf);
			return DTX_EINVAL;
		}
	}
	rv = dtx_tx_add_method(tx, endpoint, m, buf, out.bytes_written);
	free(buf);
	return rv;
}

// Decodes the reply of branch's forward phase (prepare or execute, which
// dtxd keeps next to the last phase's) into out, only on success.
static int
dtxgen_reply(const dtx_tx *tx, unsigned branch, const dtx_method_desc *m,
    const dtxgen_io *io, void *out)
{
	const char       *method = dtx_tx_branch_method(tx, branch);
	dtx_branch_result br;
	pb_istream_t      in;
	char             *tmp;

	if (out == NULL || dtx_tx_branch_result(tx, branch, &br) != 0 ||
	    (method != NULL && strcmp(method, m->name) != 0)) {
		return DTX_EINVAL;
	}
	if (br.forward_status != DTX_BRANCH_OK &&
	    br.forward_status != DTX_BRANCH_REFUSED) {
		return DTX_ESTATE;
	}
	if ((tmp = malloc(io->repsz)) == NULL) {
		return DTX_ENOMEM;
	}
	in =
	    pb_istream_from_buffer(br.forward_payload, br.forward_payload_len);
	if (!pb_decode(&in, io->repty, tmp)) {
		free(tmp);
		return DTX_EPROTO;
	}
	memcpy(out, tmp, io->repsz);
	free(tmp);
	return 0;
}
"""

RELEASE = """	char *f = frame;

#ifdef PB_ENABLE_MALLOC
	pb_release(io->reqty, f + io->reqat);
	if (forward) {
		pb_release(io->repty, f + io->repat);
	}
#else
	(void)io;
	(void)forward;
#endif
	free(f);"""



def guard(name):
    return "DTX_GEN_" + "".join(c if c.isalnum() else "_"
                                for c in name.upper()) + "_INCLUDED"


def rule(lines, title):
    lines.append("// " + "-" * 75)
    lines.append("// " + title)
    lines.append("// " + "-" * 75)


def phase_list(m):
    ph = list(m.phases)
    return ", ".join(ph[:-1]) + " and " + ph[-1]


def forward_params(m):
    return ["const dtx_call *call", "const %s *req" % m.req.cname,
            "%s *out" % m.rep.cname, "dtx_reply *reply", "void *arg"]


def settle_params(m):
    return ["const dtx_call *call", "const %s *req" % m.req.cname,
            "dtx_reply *reply", "void *arg"]


def has_forward(m):
    return any(p in m.phases for p in ("prepare", "execute"))


def fn_type(m, phase):
    return m.cname + ("_forward_fn" if phase in ("prepare", "execute")
                      else "_settle_fn")


def header(model):
    out = []
    out.append("// Generated by protoc-gen-dtx from %s. Do not edit." %
               model.proto_name)
    out.append("//")
    if model.services:
        out += comment(0, HEADER_INTRO)
    else:
        out += comment(0, [NO_SERVICES % model.proto_name])
    out.append("")
    g = guard(model.h_name)
    out.append("#ifndef " + g)
    out.append("#define " + g)
    out.append("")
    out.append("#include <dtx/dtx.h>")
    out.append("")
    out.append('#include "%s"' % model.pb_header)
    out.append("")
    out.append("#ifdef __cplusplus")
    out.append('extern "C" {')
    out.append("#endif")
    for svc in model.services:
        out.append("")
        rule(out, "service " + svc.full_name)
        if svc.comment:
            out.append("//")
            out += comment(0, svc.comment)
        for m in svc.methods:
            out += method_header(m)
        out.append("")
        out += comment(0, ["The callbacks of %s, by method." %
                           svc.full_name])
        out.append("typedef struct %s_service {" % svc.cname)
        out += declare(1, [(m.cname + "_callbacks", m.member, None)
                           for m in svc.methods])
        out.append("} %s_service;" % svc.cname)
        out.append("")
        out += comment(0, [
            "Registers every method of %s on p with the callbacks in "
            "*svc (copied); each callback gets arg. Before "
            "dtx_participant_listen() only. Errors: DTX_EINVAL (svc is "
            "NULL, or a callback that a method's kind needs is NULL: "
            "dtx_participant_message(p) names the method and the phase, "
            "and the methods before it stay registered), DTX_EEXIST, "
            "DTX_ESTATE, DTX_ENOMEM." % svc.full_name])
        out += prototype("int", svc.cname + "_register", [
            "dtx_participant *p", "const %s_service *svc" % svc.cname,
            "void *arg"])
    out.append("")
    out.append("#ifdef __cplusplus")
    out.append("}")
    out.append("#endif")
    out.append("")
    out.append("#endif // " + g)
    return "\n".join(out) + "\n"


def method_header(m):
    out = [""]
    title = "%s (%s)" % (m.name, m.wire)
    out += comment(0, [title])
    if m.comment:
        out.append("//")
        out += comment(0, m.comment)
    out.append("//")
    kind = {1: "2PC", 2: "saga", 3: "2PC and saga"}[m.kind]
    text = ("Kind %s: %s. The request is a %s" %
            (kind, phase_list(m), m.req.full_name))
    fwd = [p for p in m.phases if p in ("prepare", "execute")]
    text += ("; %s also fill%s *out, a %s, sent back as the reply "
             "payload." % (" and ".join(fwd), "s" if len(fwd) == 1 else "",
                           m.rep.full_name))
    out += comment(0, [text])
    out += define(m.cname + "_METHOD", '"%s"' % m.wire)
    out.append("")
    if has_forward(m):
        out += prototype("typedef dtx_result", m.cname + "_forward_fn",
                         forward_params(m))
    if any(p not in ("prepare", "execute") for p in m.phases):
        out += prototype("typedef dtx_result", m.cname + "_settle_fn",
                         settle_params(m))
    out.append("")
    out.append("typedef struct %s_callbacks {" % m.cname)
    out += declare(1, [(fn_type(m, p), "*" + p, None) for p in m.phases])
    out.append("} %s_callbacks;" % m.cname)
    out.append("")
    modes = {1: "a 2PC transaction", 2: "a saga",
             3: "a 2PC transaction or a saga"}[m.kind]
    out += comment(0, [
        "Adds to tx, %s, a branch that calls %s at endpoint with *req "
        "(encoded now). Errors: DTX_EINVAL (req is NULL or does not "
        "encode; or tx is not %s: dtx_tx_message(tx) says so), and those "
        "of dtx_tx_add()." % (modes, m.name, modes)])
    out += prototype("int", m.cname + "_add", [
        "dtx_tx *tx", "const char *endpoint",
        "const %s *req" % m.req.cname])
    out.append("")
    text = ("Decodes into *out the %s reply that branch (a %s branch) sent "
            "from %s. Errors: DTX_EINVAL (no such branch, or it calls "
            "another method), DTX_ESTATE (no such reply: the phase did not "
            "answer OK or REFUSED), DTX_EPROTO (it is not a %s), "
            "DTX_ENOMEM." % (m.rep.full_name, m.name, " or ".join(fwd),
                             m.rep.full_name))
    if m.rep.has_pointers:
        text += (" On success, release *out with pb_release(%s_fields, "
                 "out)." % m.rep.cname)
    out += comment(0, [text])
    out += prototype("int", m.cname + "_reply", [
        "const dtx_tx *tx", "unsigned branch", "%s *out" % m.rep.cname])
    return out


def source(model):
    out = []
    out.append("// Generated by protoc-gen-dtx from %s. Do not edit." %
               model.proto_name)
    out.append("//")
    if not model.services:
        out += comment(0, [NO_SERVICES % model.proto_name])
        out.append("")
        out.append('#include "%s"' % model.h_basename)
        return "\n".join(out) + "\n"
    out += comment(0, [p.format(h=model.h_basename) for p in SOURCE_INTRO])
    out.append("")
    out.append('#include "%s"' % model.h_basename)
    out.append("")
    out.append("#include <stdbool.h>")
    out.append("#include <stddef.h>")
    out.append("#include <stdio.h>")
    out.append("#include <stdlib.h>")
    out.append("#include <string.h>")
    out.append("")
    out.append("#include <pb_decode.h>")
    out.append("#include <pb_encode.h>")
    methods = [m for s in model.services for m in s.methods]
    if any(m.req.has_pointers or m.rep.has_pointers for m in methods):
        out.append("")
        out.append("#ifndef PB_ENABLE_MALLOC")
        out.append("#error \"%s has pointer fields: compile with "
                   "PB_ENABLE_MALLOC\"" % model.proto_name)
        out.append("#endif")
    if methods:
        out.append("")
        out += (HELPERS.lstrip("\n").replace("RELEASE_BOTH", RELEASE)
                .rstrip("\n").split("\n"))
    for svc in model.services:
        for m in svc.methods:
            out += method_source(m)
        out += service_source(svc)
    return "\n".join(out) + "\n"


def method_source(m):
    c, l = m.cname, m.local
    out = [""]
    rule(out, "%s (%s)" % (m.wire, m.kind_name))
    out.append("")
    out += pack(0, "DTXGEN_NAME_FITS(", [c + "_METHOD"], ");")
    out.append("")
    out.append("static const dtx_method_desc %s_method = {" % l)
    out.append("    .name  = %s_METHOD," % c)
    out.append("    .modes = %s," % {1: "DTX_2PC", 2: "DTX_SAGA",
                                     3: "DTX_2PC | DTX_SAGA"}[m.kind])
    out.append("};")
    out.append("")
    out.append("typedef struct %s_bound {" % l)
    out += declare(1, [(c + "_callbacks", "cb", None),
                       ("void", "*arg", None)])
    out.append("} %s_bound;" % l)
    out.append("")
    out.append("typedef struct %s_frame {" % l)
    out += declare(1, [(m.req.cname, "req", None),
                       (m.rep.cname, "out", None)])
    out.append("} %s_frame;" % l)
    out.append("")
    out.append("static const dtxgen_io %s_io = {" % l)
    out += [
        "    .frame = sizeof(%s_frame)," % l,
        "    .reqty = %s_fields," % m.req.cname,
        "    .reqat = offsetof(%s_frame, req)," % l,
        '    .reqnm = "%s",' % m.req.full_name,
        "    .repty = %s_fields," % m.rep.cname,
        "    .repat = offsetof(%s_frame, out)," % l,
        "    .repsz = sizeof(%s)," % m.rep.cname,
        '    .repnm = "%s",' % m.rep.full_name,
    ]
    out.append("};")
    for p in m.phases:
        out += thunk(m, p)
    out += method_register(m)
    out += client_calls(m)
    return out


def thunk(m, phase):
    l = m.local
    fwd = phase in ("prepare", "execute")
    out = [""]
    out += definition("static dtx_result", "%s_%s" % (l, phase),
                      ["const dtx_call *call", "dtx_reply *reply",
                       "void *arg"])
    out.append("{")
    out += declare(1, [("const %s_bound" % l, "*b", "arg"),
                       ("%s_frame" % l, "*f", None),
                       ("dtx_result", "res", None)])
    out.append("")
    flag = "true" if fwd else "false"
    out += pack_assign(1, "f", "dtxgen_begin(", ["&%s_io" % l, flag, "call",
                                                  "reply", "&res"], ");")
    out.append("\tif (f == NULL) {")
    out.append("\t\treturn res;")
    out.append("\t}")
    args = ["call", "&f->req"] + (["&f->out"] if fwd else []) + \
        ["reply", "b->arg"]
    out += pack_assign(1, "res", "b->cb.%s(" % phase, args, ");")
    out += pack(1, "return dtxgen_end(", ["&%s_io" % l, flag, "call",
                                          "reply", "f", "res"], ");")
    out.append("}")
    return out


def method_register(m):
    l = m.local
    out = [""]
    out += definition("static int", l + "_register", [
        "dtx_participant *p", "const %s_bound *b" % l])
    out.append("{")
    out.append("\tdtx_method_ops ops = {0};")
    out.append("")
    for p in m.phases:
        out.append("\tif (b->cb.%s != NULL) {" % p)
        out += assign(2, "ops." + p, "%s_%s" % (l, p))
        out.append("\t}")
    out += pack(1, "return dtx_participant_register_method(",
                ["p", "&%s_method" % l, "&ops", "b", "sizeof(*b)"], ");")
    out.append("}")
    return out


def client_calls(m):
    c, l = m.cname, m.local
    out = [""]
    out += definition("int", c + "_add", [
        "dtx_tx *tx", "const char *endpoint", "const %s *req" % m.req.cname])
    out.append("{")
    out += pack(1, "return dtxgen_add(", [
        "tx", "endpoint", "&%s_method" % l, "%s_fields" % m.req.cname,
        "req"], ");")
    out.append("}")
    out.append("")
    out += definition("int", c + "_reply", [
        "const dtx_tx *tx", "unsigned branch", "%s *out" % m.rep.cname])
    out.append("{")
    out += pack(1, "return dtxgen_reply(", [
        "tx", "branch", "&%s_method" % l, "&%s_io" % l, "out"], ");")
    out.append("}")
    return out


def service_source(svc):
    out = [""]
    out += definition("int", svc.cname + "_register", [
        "dtx_participant *p", "const %s_service *svc" % svc.cname,
        "void *arg"])
    out.append("{")
    out += declare(1, [("%s_bound" % m.local, m.member.rstrip("_"), None)
                       for m in svc.methods] + [("int", "rv", None)])
    out.append("")
    out.append("\tif (svc == NULL) {")
    out.append("\t\treturn DTX_EINVAL;")
    out.append("\t}")
    rows = []
    for m in svc.methods:
        v = m.member.rstrip("_")
        rows += [(v + ".cb", "svc->" + m.member), (v + ".arg", "arg")]
    out += assign_block(1, rows)
    out.append("")
    for i, m in enumerate(svc.methods):
        if i > 0:
            out.append("\tif (rv != 0) {")
            out.append("\t\treturn rv;")
            out.append("\t}")
        out += pack_assign(1, "rv", "%s_register(" % m.local,
                           ["p", "&" + m.member.rstrip("_")], ");")
    out.append("\treturn rv;")
    out.append("}")
    return out
