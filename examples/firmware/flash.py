#!/usr/bin/env python3
"""Where the flash of a firmware image goes: code and read-only data by crate (slup-core by module).

    flash.py ELF [--baseline ELF] [--nm PATH] [--size PATH] [--top N]

A `cargo bloat`-style table read from the ELF's symbol table (`llvm-nm --print-size`): every
function (`t`) and named read-only object (`r`) is charged to the crate that defines it, or to
the Self type's crate for a trait method (`<slup_core::error::Code as Display>::fmt` is
slup-core's). With LTO, a function's size includes whatever was inlined into it, so engine code
inlined into the firmware's own functions is charged to the firmware. Literal strings, and
whatever else the linker merged without a symbol, appear as "unnamed .rodata". With
`--baseline`, a second column shows the same crate in the crypto-only image and a third the
difference: what the agent adds.
"""

import argparse
import collections
import re
import shutil
import subprocess
import sys

# Escapes of the legacy Rust mangling that the demangler leaves in some names.
LEGACY = {"$LT$": "<", "$GT$": ">", "$C$": ",", "$u20$": " ", "$RF$": "&", "$u5b$": "[",
          "$u5d$": "]", "$u3b$": ";", "$u7b$": "{", "$u7d$": "}", "$LP$": "(", "$RP$": ")",
          "..": "::"}
# slup-core modules shown one level deeper.
DEEPER = ("engine", "msg", "diag", "server", "storage", "net")
# Methods of primitive types are core's.
PRIMITIVES = {"u8", "u16", "u32", "u64", "u128", "usize", "i8", "i16", "i32", "i64", "i128",
              "isize", "char", "str", "bool", "f32", "f64"}


def owner(name):
    """The crate (or slup-core module) a demangled symbol belongs to."""
    n = re.sub(r"::h[0-9a-f]{16}$", "", name)
    for code, text in LEGACY.items():
        n = n.replace(code, text)
    n = re.sub(r"^_+", "", n)
    m = re.match(r"^[<&\s]*(?:mut\s+|dyn\s+)?([A-Za-z_][A-Za-z0-9_]*)((?:::[A-Za-z_][A-Za-z0-9_]*)*)", n)
    if not m:
        return "(other)"
    crate, path = m.group(1), m.group(2).split("::")[1:]
    if re.fullmatch(r"[A-Z]", crate):
        # A blanket impl (`<T as base64ct::Encoding>::decode`): the trait's crate.
        t = re.search(r" as ([A-Za-z_][A-Za-z0-9_]*)", n)
        crate, path = (t.group(1), []) if t else ("(generic)", [])
    if crate in PRIMITIVES:
        crate = "core"
    if crate in ("OUTLINED_FUNCTION", "__aeabi_memcpy", "__aeabi_memclr") or crate.startswith(
        ("OUTLINED_FUNCTION", "__aeabi", "__")
    ):
        return "(compiler: outlined code, aeabi helpers)"
    if crate == "slup_core" and path:
        parts = path[:2] if path[0] in DEEPER and len(path) > 1 else path[:1]
        # A type, not a module (e.g. slup_core::engine::Engine<…>::close_report).
        return "slup_core::" + "::".join(p for p in parts)
    return crate


def measure(elf, nm, size_tool):
    out = subprocess.run(
        [nm, "--print-size", "--size-sort", "-C", "--radix=d", elf],
        check=True, capture_output=True, text=True,
    ).stdout
    groups = collections.Counter()
    named_ro = 0
    for line in out.splitlines():
        parts = line.split(None, 3)
        if len(parts) < 4:
            continue
        _, size, kind, name = parts
        if kind not in "tTrR":
            continue
        size = int(size)
        if kind in "rR":
            named_ro += size
        if name.startswith(".L"):
            groups["(anonymous constants)"] += size
        elif name == "__INTERRUPTS" or name.startswith("__RESET") or name == "__EXCEPTIONS":
            groups["(vector table and reset)"] += size
        else:
            groups[owner(name)] += size
    sections = subprocess.run(
        [size_tool, "-A", elf], check=True, capture_output=True, text=True
    ).stdout
    for line in sections.splitlines():
        f = line.split()
        if len(f) >= 2 and f[0] == ".rodata":
            groups["(unnamed .rodata: strings, tables)"] += max(0, int(f[1]) - named_ro)
    return groups


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("elf")
    ap.add_argument("--baseline")
    ap.add_argument("--nm", default=shutil.which("llvm-nm") or "llvm-nm")
    ap.add_argument("--size", default=shutil.which("llvm-size") or "llvm-size")
    ap.add_argument("--top", type=int, default=25)
    a = ap.parse_args()
    agent = measure(a.elf, a.nm, a.size)
    base = measure(a.baseline, a.nm, a.size) if a.baseline else collections.Counter()
    total = sum(agent.values())
    if a.baseline:
        print(f"{'agent':>8}  {'baseline':>8}  {'added':>8}  part")
    else:
        print(f"{'bytes':>8}  part")
    rows = sorted(agent.items(), key=lambda kv: -kv[1])
    for name, size in rows[: a.top]:
        if a.baseline:
            print(f"{size:8d}  {base.get(name, 0):8d}  {size - base.get(name, 0):8d}  {name}")
        else:
            print(f"{size:8d}  {name}")
    rest = sum(size for _, size in rows[a.top:])
    if rest:
        print(f"{rest:8d}  ({len(rows) - a.top} more parts)")
    print(f"{total:8d}  total (code and read-only data)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
