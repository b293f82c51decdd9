# SPDX-License-Identifier: MIT
#
# dtxgen_layout: lays generated C out the way the repository's
# .clang-format would (WebKit with nng's changes: tabs, 79 columns,
# aligned declarations and assignments, 4-space continuations), so that
# generated files pass `clang-format --dry-run -Werror` as hand-written ones
# must. It knows only the few shapes protoc-gen-dtx writes: comments,
# prototypes and definitions, calls, declaration blocks and designated
# initialisers. tests/generator compares its output with clang-format's on
# the golden files.

import textwrap

COLUMNS = 79
TAB = 8
CONT = "    "  # continuation indent


def width(text):
    """Display width of text with tabs expanded."""
    col = 0
    for ch in text:
        col = (col // TAB + 1) * TAB if ch == "\t" else col + 1
    return col


def fits(line):
    return width(line) <= COLUMNS


def comment(indent, lines):
    """Lines of `// text`, wrapped at the column limit; an empty line
    stays an empty comment line."""
    pre = "\t" * indent + "//"
    out = []
    room = COLUMNS - width(pre) - 1
    for ln in lines:
        if not ln.strip():
            out.append(pre)
            continue
        lead = len(ln) - len(ln.lstrip(" "))
        if width(pre + " " + ln) <= COLUMNS:
            out.append(pre + " " + ln)
            continue
        for piece in textwrap.wrap(ln.strip(), room - lead,
                                   break_long_words=False,
                                   break_on_hyphens=False):
            out.append(pre + " " + " " * lead + piece)
    return out


def pack(indent, head, args, tail, cont=CONT):
    """head(args)tail, broken as clang-format breaks a call or a parameter
    list: on one line if it fits; else every argument on one continuation
    line if they fit there; else as many as fit on each line, starting on
    the first. head ends with '('; tail starts with ')'."""
    lead = "\t" * indent
    joined = ", ".join(args)
    one = lead + head + joined + tail
    if fits(one):
        return [one]
    second = lead + cont + joined + tail
    if fits(second) and fits(lead + head):
        return [lead + head, second]
    lines = []
    cur = lead + head
    for i, a in enumerate(args):
        piece = a + ("," if i < len(args) - 1 else tail)
        cand = cur + piece if cur.endswith("(") else cur + " " + piece
        if fits(cand):
            cur = cand
        else:
            lines.append(cur)
            cur = lead + cont + piece
    lines.append(cur)
    return lines


def pack_assign(indent, lhs, head, args, tail):
    """lhs = head(args)tail: broken after the '=' when the call then fits
    on the continuation line, else as pack() breaks the call."""
    lead = "\t" * indent
    one = pack(indent, lhs + " = " + head, args, tail)
    if len(one) == 1:
        return one
    rest = lead + CONT + head + ", ".join(args) + tail
    if fits(rest):
        return [lead + lhs + " =", rest]
    return one


def prototype(ret, name, params, tail=");"):
    """A top-level declaration: on one line, or broken after '(', or with
    the return type on its own line when even that does not fit."""
    lines = pack(0, ret + " " + name + "(", params, tail)
    if all(fits(ln) for ln in lines) and fits_first(lines[0], ret, name):
        return lines
    return [ret] + pack(0, name + "(", params, tail)


def fits_first(first, ret, name):
    return fits(first) and first.startswith(ret + " " + name + "(")


def definition(ret, name, params):
    """A top-level function definition's first lines (the return type on a
    line of its own, as the style wants); the body follows."""
    return [ret] + pack(0, name + "(", params, ")")


def declare(indent, rows):
    """Aligned declarations: rows of (type, name, init or None), the names
    in one column and the '=' of consecutive initialised rows in another,
    as AlignConsecutiveDeclarations and AlignConsecutiveAssignments lay
    them out. The '*' of a pointer stays with its name, to the left of the
    names' column."""
    lead = "\t" * indent

    def stars(n):
        return len(n) - len(n.lstrip("*"))

    ncol = max(len(t) + 1 + stars(n) for t, n, _ in rows)
    heads = [t + " " * (ncol - len(t) - stars(n)) + n for t, n, _ in rows]
    out = []
    i = 0
    while i < len(rows):
        if rows[i][2] is None:
            out.append(lead + heads[i] + ";")
            i += 1
            continue
        j = i
        while j < len(rows) and rows[j][2] is not None:
            j += 1
        col = max(len(heads[k]) for k in range(i, j))
        for k in range(i, j):
            out.append(lead + heads[k] + " " * (col - len(heads[k])) +
                       " = " + rows[k][2] + ";")
        i = j
    return out


def assign(indent, lhs, rhs):
    """`lhs = rhs;`, broken after the '=' when it does not fit."""
    lead = "\t" * indent
    one = lead + lhs + " = " + rhs + ";"
    if fits(one):
        return [one]
    return [lead + lhs + " =", lead + CONT + rhs + ";"]


def assign_block(indent, rows):
    """Consecutive `lhs = rhs;` lines, their '=' aligned."""
    lead = "\t" * indent
    col = max(len(lhs) for lhs, _ in rows)
    return [lead + lhs + " " * (col - len(lhs)) + " = " + rhs + ";"
            for lhs, rhs in rows]


def define(name, value):
    """#define name value, continued on a tab-indented line (the backslash
    in the last column) when it does not fit."""
    one = "#define %s %s" % (name, value)
    if fits(one):
        return [one]
    head = "#define " + name
    return [head + " " * max(1, COLUMNS - 1 - len(head)) + "\\",
            "\t" + value]
