#!/usr/bin/env python3
"""Lists the largest stack frames of a Thumb-2 ELF: what to shrink when the stack is over budget.

    frames.py ELF [--objdump PATH] [--top N]

A static estimate read from the disassembly: per function, the bytes its prologue reserves
(push/stmdb of registers, vpush of FP registers, `sub sp` by an immediate or by a register
loaded with movw/movt just before). It says which frames are big, not the depth of a call
chain; the measured peak (painted stack under QEMU) is the number that counts. With LTO, a
frame includes everything inlined into that function.
"""

import argparse
import re
import shutil
import subprocess
import sys

FUNC = re.compile(r"^[0-9a-f]+ <(.+)>:$")
IMM = re.compile(r"#(0x[0-9a-f]+|\d+)")
REG_IMM = re.compile(r"^(\w+), #(0x[0-9a-f]+|\d+)")
# Escapes of the legacy Rust mangling that the demangler leaves in some names.
LEGACY = {"$LT$": "<", "$GT$": ">", "$C$": ",", "$u20$": " ", "$RF$": "&", "$u5b$": "[",
          "$u5d$": "]", "$u3b$": ";", "..": "::", "_$": "$"}


def frames(lines):
    sizes = {}
    name = None
    regs = {}
    for line in lines:
        m = FUNC.match(line.strip())
        if m:
            name = m.group(1)
            sizes[name] = 0
            regs = {}
            continue
        if name is None:
            continue
        parts = line.split("\t")
        if len(parts) < 3:
            continue
        op = parts[1].strip()
        args = parts[2].strip()
        base = op.split(".")[0]
        if base in ("movw", "mov", "movs"):
            m = REG_IMM.match(args)
            if m:
                regs[m.group(1)] = int(m.group(2), 0)
        elif base == "movt":
            m = REG_IMM.match(args)
            if m and m.group(1) in regs:
                regs[m.group(1)] += int(m.group(2), 0) << 16
        elif base in ("sub", "subw") and args.startswith("sp,"):
            m = IMM.search(args)
            if m:
                sizes[name] += int(m.group(1), 0)
            else:
                sizes[name] += regs.get(args.split(",")[-1].strip(), 0)
        elif base == "push" or (base == "stmdb" and args.startswith("sp!")):
            regs_list = args[args.find("{") + 1 : args.find("}")]
            sizes[name] += 4 * len([r for r in regs_list.split(",") if r.strip()])
        elif base == "vpush":
            regs_list = args[args.find("{") + 1 : args.find("}")]
            for r in regs_list.split(","):
                r = r.strip()
                if "-" in r:
                    lo, hi = (int(x.strip()[1:]) for x in r.split("-"))
                    sizes[name] += (8 if r.startswith("d") else 4) * (hi - lo + 1)
                elif r:
                    sizes[name] += 8 if r.startswith("d") else 4
    return sizes


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("elf")
    ap.add_argument("--objdump", default=shutil.which("llvm-objdump") or "llvm-objdump")
    ap.add_argument("--top", type=int, default=10)
    a = ap.parse_args()
    out = subprocess.run(
        [a.objdump, "-d", "--no-show-raw-insn", "-C", a.elf],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    sizes = frames(out.splitlines())
    for name, size in sorted(sizes.items(), key=lambda kv: -kv[1])[: a.top]:
        # Drop the hash suffix and long generic paths for reading.
        short = re.sub(r"::h[0-9a-f]{16}$", "", name)
        for code, text in LEGACY.items():
            short = short.replace(code, text)
        if len(short) > 100:
            short = short[:97] + "..."
        print(f"{size:8d}  {short}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
