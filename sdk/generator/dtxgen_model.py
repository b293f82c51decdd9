# SPDX-License-Identifier: MIT
#
# dtxgen_model: what protoc-gen-dtx knows of one .proto file before it writes
# any C. It reads the services of the file from protoc's request, the dtx
# method options (dtx/options.proto) of each method, and what nanopb decided
# about the request and reply messages (their C names, pointer fields,
# fields left as callbacks), by running nanopb's own option parser on the
# same files and .options, so that the two generators cannot disagree.
# Everything the generated code cannot serve is refused here, with a
# message naming the file and the culprit; everything it serves badly is a
# warning.

import keyword
import re

# dtx.h's DTX_METHOD_MAX. The generated code repeats the check with a
# _Static_assert against the header, so a change there cannot go unnoticed.
DTX_METHOD_MAX = 128

# The values of dtx.Kind (dtx/options.proto), as dtx_mode bits.
KIND_2PC = 1
KIND_SAGA = 2
KIND_BOTH = 3
KIND_NAMES = {KIND_2PC: "2PC", KIND_SAGA: "saga", KIND_BOTH: "2PC or saga"}

# The phases of each kind, in the order the callbacks are declared.
PHASES = {
    KIND_2PC: ("prepare", "commit", "abort"),
    KIND_SAGA: ("execute", "compensate"),
    KIND_BOTH: ("prepare", "commit", "abort", "execute", "compensate"),
}
FORWARD_PHASES = ("prepare", "execute")

C_KEYWORDS = frozenset("""
    auto break case char const continue default do double else enum extern
    float for goto if inline int long register restrict return short signed
    sizeof static struct switch typedef union unsigned void volatile while
    _Alignas _Alignof _Atomic _Bool _Complex _Generic _Imaginary _Noreturn
    _Static_assert _Thread_local bool true false
""".split())

# FileDescriptorProto source-location paths (descriptor.proto's numbers).
_SERVICE = 6
_METHOD = 2


class GenError(Exception):
    """Something the generated code cannot serve; the message says what."""


class Method:
    def __init__(self):
        self.name = ""         # Reserve
        self.full_name = ""    # shop.Inventory.Reserve
        self.wire = ""         # shop.Inventory/Reserve
        self.kind = 0          # KIND_*
        self.cname = ""        # shop_Inventory_Reserve
        self.member = ""       # reserve
        self.local = ""        # dtxgen_reserve: prefix of its static names
        self.req = None        # MessageInfo
        self.rep = None        # MessageInfo
        self.comment = []      # lines of the .proto's comment

    @property
    def phases(self):
        return PHASES[self.kind]

    @property
    def kind_name(self):
        return KIND_NAMES[self.kind]


class Service:
    def __init__(self):
        self.name = ""
        self.full_name = ""
        self.cname = ""
        self.comment = []
        self.methods = []


class MessageInfo:
    def __init__(self, full_name, cname, has_pointers):
        self.full_name = full_name  # shop.ReserveRequest
        self.cname = cname          # shop_ReserveRequest
        self.has_pointers = has_pointers


class FileModel:
    def __init__(self, proto_name):
        self.proto_name = proto_name  # dir/shop.proto, as protoc names it
        base = proto_name[:-len(".proto")] if proto_name.endswith(
            ".proto") else proto_name
        self.base = base
        self.pb_header = base.rsplit("/", 1)[-1] + ".pb.h"
        self.h_name = base + ".dtx.h"
        self.c_name = base + ".dtx.c"
        self.h_basename = self.h_name.rsplit("/", 1)[-1]
        self.services = []
        self.warnings = []


def comment_lines(fdesc, path):
    """The leading (and trailing) comment of the element at path, as lines
    without the comment markers; [] when there is none."""
    for loc in fdesc.source_code_info.location:
        if tuple(loc.path) != tuple(path):
            continue
        text = loc.leading_comments
        if loc.trailing_comments:
            text = (text + "\n" if text else "") + loc.trailing_comments
        lines = [ln[1:] if ln.startswith(" ") else ln
                 for ln in text.rstrip().split("\n")]
        while lines and not lines[0].strip():
            lines.pop(0)
        return [ln.rstrip() for ln in lines]
    return []


def snake_case(name):
    """ReserveStock -> reserve_stock; HTTPGet -> http_get."""
    s = re.sub(r"([A-Z]+)([A-Z][a-z])", r"\1_\2", name)
    s = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", s)
    return s.lower()


def c_prefix(package):
    return package.replace(".", "_") + "_" if package else ""


def wire_name_problem(wire):
    if not wire:
        return "it is empty"
    if len(wire.encode("utf-8")) > DTX_METHOD_MAX:
        return "it is %d bytes, over DTX_METHOD_MAX (%d)" % (
            len(wire.encode("utf-8")), DTX_METHOD_MAX)
    for ch in wire:
        if not 0x20 <= ord(ch) <= 0x7e:
            return "it holds %r, not printable ASCII" % ch
    return None


class Nanopb:
    """nanopb's view of the request's files: its parser, run with the same
    options (-I paths for .options files) as the nanopb plugin gets."""

    def __init__(self, module, request, include_dirs):
        self.nb = module
        args = []
        for d in include_dirs:
            args += ["-I", d]
        options, _ = module.process_cmdline(args, is_plugin=True)
        if request.file_to_generate:
            # nanopb's plugin adds the generated file's directory too.
            import os.path
            options.options_path.append(
                os.path.dirname(request.file_to_generate[0]))
        self.files = {}
        for fdesc in request.proto_file:
            self.files[fdesc.name] = module.parse_file(
                fdesc.name, fdesc, options)
        # Messages by their full proto name, and the file of each.
        self.messages = {}
        self.file_of = {}
        for name, pf in self.files.items():
            for msg in pf.messages:
                full = ".".join(pf.manglenames.unmangle(msg.name).parts)
                self.messages[full] = msg
                self.file_of[full] = name

    def renames(self, proto_name):
        """Why nanopb's C names differ from the proto names in the file
        proto_name, or None."""
        pf = self.files[proto_name]
        opts = pf.file_options
        nb = self.nb.nanopb_pb2
        if opts.mangle_names != nb.M_NONE:
            return "nanopb option mangle_names:%s" % nb.TypenameMangling.Name(
                opts.mangle_names)
        if opts.package:
            return 'nanopb option package:"%s"' % opts.package
        return None

    def walk(self, full_name, seen=None):
        """Yields (message full name, field) for every field of the message
        and of the messages it holds, each message once."""
        if seen is None:
            seen = set()
        if full_name in seen or full_name not in self.messages:
            return
        seen.add(full_name)
        for f in self.messages[full_name].fields:
            subs = f.fields if getattr(f, "allocation", "") == "ONEOF" \
                else [f]
            for sf in subs:
                yield full_name, sf
                sub = getattr(sf, "submsgname", None)
                if sf.pbtype in ("MESSAGE", "MSG_W_CB") and sub is not None:
                    parts = getattr(sub, "parts", None)
                    name = ".".join(parts) if parts else str(sub)
                    yield from self.walk(self._resolve(name), seen)

    def _resolve(self, name):
        if name in self.messages:
            return name
        # A C-style name (pkg_Msg): find the message whose parts match.
        for full in self.messages:
            if full.replace(".", "_") == name:
                return full
        return name


def method_options(pool_tools, mdesc):
    """The (dtx.method) option of a method: (kind, wire_name), (0, '')
    when absent."""
    opts_cls, ext = pool_tools
    if ext is None:
        return 0, ""
    opts = opts_cls.FromString(mdesc.options.SerializeToString())
    if not opts.HasExtension(ext):
        return 0, ""
    o = opts.Extensions[ext]
    return o.kind, o.wire_name


def option_tools(request):
    """Builds the classes that read dtx/options.proto's extension from the
    files protoc sent (the very options.proto the user compiled against).
    Returns (MethodOptions class, extension) or (None, None) when no file
    of the request defines dtx.method."""
    from google.protobuf import descriptor_pool, message_factory
    if not any(f.package == "dtx" and any(e.name == "method"
                                          for e in f.extension)
               for f in request.proto_file):
        return None, None
    pool = descriptor_pool.DescriptorPool()
    for f in request.proto_file:
        pool.Add(f)
    factory = message_factory.MessageFactory(pool)
    ext = pool.FindExtensionByName("dtx.method")
    factory.GetPrototype(ext.message_type)
    cls = factory.GetPrototype(
        pool.FindMessageTypeByName("google.protobuf.MethodOptions"))
    # The pure-Python runtime (which nanopb's generator selects) reads an
    # extension only once it is registered with its class.
    if hasattr(cls, "RegisterExtension"):
        cls.RegisterExtension(ext)
    return cls, ext


def build(request, proto_name, nanopb, tools):
    """The model of proto_name, or GenError."""
    fdesc = next(f for f in request.proto_file if f.name == proto_name)
    model = FileModel(proto_name)
    where = proto_name
    prefix = c_prefix(fdesc.package)

    if fdesc.service:
        why = nanopb.renames(proto_name)
        if why is not None:
            raise GenError(
                "%s: %s changes the C names of the file's messages; "
                "protoc-gen-dtx names its functions after the proto names "
                "and cannot follow: remove the option" % (where, why))

    seen = set()  # fields warned about
    taken = {}  # generated identifier -> what made it
    for m in nanopb.messages:
        taken[m.replace(".", "_")] = "message " + m

    def claim(ident, what):
        if ident in taken:
            raise GenError("%s: %s would be named %s, which %s already "
                           "uses" % (where, what, ident, taken[ident]))
        taken[ident] = what

    for si, sdesc in enumerate(fdesc.service):
        svc = Service()
        svc.name = sdesc.name
        svc.full_name = (fdesc.package + "." if fdesc.package else "") + \
            sdesc.name
        svc.cname = prefix + sdesc.name
        svc.comment = comment_lines(fdesc, (_SERVICE, si))
        if not sdesc.method:
            raise GenError("%s: service %s has no methods: a service "
                           "needs at least one" % (where, svc.full_name))
        claim(svc.cname + "_service", "service " + svc.full_name)
        claim(svc.cname + "_register", "service " + svc.full_name)
        members = {}
        wires = {}
        for mi, mdesc in enumerate(sdesc.method):
            m = Method()
            m.name = mdesc.name
            m.full_name = svc.full_name + "." + mdesc.name
            what = "method %s" % m.full_name
            if mdesc.client_streaming or mdesc.server_streaming:
                raise GenError(
                    "%s: %s streams its %s: a dtx branch call is one "
                    "request and one reply, remove 'stream'" %
                    (where, what, "request" if mdesc.client_streaming
                     else "reply"))
            kind, wire = method_options(tools, mdesc)
            if kind not in PHASES:
                raise GenError(
                    "%s: %s has no dtx kind: add "
                    "'option (dtx.method).kind = TWO_PC;' (or SAGA, or "
                    "BOTH) and import \"dtx/options.proto\"" % (where, what))
            m.kind = kind
            m.wire = wire or svc.full_name + "/" + mdesc.name
            problem = wire_name_problem(m.wire)
            if problem is not None:
                raise GenError('%s: the wire name "%s" of %s is refused: %s'
                               % (where, m.wire, what, problem))
            if m.wire in wires:
                raise GenError('%s: %s and %s have the same wire name "%s"'
                               % (where, wires[m.wire], what, m.wire))
            wires[m.wire] = what
            m.cname = svc.cname + "_" + mdesc.name
            m.member = snake_case(mdesc.name)
            if m.member in C_KEYWORDS or keyword.iskeyword(m.member):
                m.member += "_"
            if m.member in members:
                raise GenError("%s: %s and %s both become the member '%s' "
                               "of %s_service" % (where, members[m.member],
                                                  what, m.member, svc.cname))
            members[m.member] = what
            for suffix in ("_callbacks", "_METHOD", "_method", "_add",
                           "_reply"):
                claim(m.cname + suffix, what)
            m.req = message_info(nanopb, mdesc.input_type, where, what,
                                 "request")
            m.rep = message_info(nanopb, mdesc.output_type, where, what,
                                 "reply")
            m.comment = comment_lines(fdesc, (_SERVICE, si, _METHOD, mi))
            svc.methods.append(m)
            model.warnings += callback_warnings(nanopb, m, where, seen)
        model.services.append(svc)
    # The generated source names its static functions and tables after the
    # callbacks' member names, short enough to keep lines short; with the
    # service's name too when two services share a method name.
    all_members = [m.member for svc in model.services for m in svc.methods]
    for svc in model.services:
        for m in svc.methods:
            m.local = "dtxgen_" + m.member.rstrip("_")
            if all_members.count(m.member) > 1:
                m.local = "dtxgen_%s_%s" % (snake_case(svc.name),
                                            m.member.rstrip("_"))
    return model


def message_info(nanopb, type_name, where, what, role):
    full = type_name.lstrip(".")
    if full not in nanopb.messages:
        raise GenError("%s: the %s type %s of %s has no C struct (nanopb "
                       "skips it: skip_message?)" % (where, role, full, what))
    src = nanopb.file_of[full]
    why = nanopb.renames(src)
    if why is not None:
        raise GenError(
            "%s: the %s type %s of %s comes from %s, whose %s changes its "
            "C name; protoc-gen-dtx cannot follow: remove the option" %
            (where, role, full, what, src, why))
    has_ptr = any(f.allocation == "POINTER" for _, f in nanopb.walk(full))
    return MessageInfo(full, full.replace(".", "_"), has_ptr)


def callback_warnings(nanopb, m, where, seen):
    """Warnings for the fields of m's messages that nanopb leaves to
    callbacks, each field once (seen holds those already reported)."""
    out = []
    for msg in (m.req, m.rep):
        for owner, f in nanopb.walk(msg.full_name):
            if f.allocation != "CALLBACK" or (owner, f.name) in seen:
                continue
            seen.add((owner, f.name))
            if f.rules == "REPEATED":
                why = "repeated without max_count"
            elif f.pbtype in ("STRING", "BYTES"):
                why = "%s without max_size" % f.pbtype.lower()
            else:
                why = "type:FT_CALLBACK"
            out.append(
                "%s: warning: field %s.%s (%s) is left to a nanopb callback "
                "(first used by %s): typed callbacks never see it and it is "
                "not sent; give it max_size, max_length or max_count, or "
                "type:FT_POINTER, in the .options file" %
                (where, owner, f.name, why, m.full_name))
    return out
