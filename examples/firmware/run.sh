#!/usr/bin/env bash
# Builds the firmware example (release: opt-level "z", LTO), prints the size of both images,
# boots each under QEMU (Cortex-M4F, MPS2 AN386 board, semihosting for output and exit status),
# checks what they print, and compares the measurements with the budgets of DESIGN.md §6.
#
#   examples/firmware/run.sh                     fail if a build or a run fails; report budgets
#   examples/firmware/run.sh --enforce-budgets   also fail when a budget is exceeded
#
# Needs qemu-system-arm (scripts/setup installs it) and llvm-size (rustup's llvm-tools).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$here"

MACHINE=mps2-an386
CPU=cortex-m4
QEMU_TIMEOUT_S=120
# DESIGN.md §6, in bytes.
BUDGET_FLASH=$((48 * 1024))
BUDGET_ENGINE=$((8 * 1024))
BUDGET_STACK=$((8 * 1024))

enforce=0
for arg in "$@"; do
    case "$arg" in
        --enforce-budgets) enforce=1 ;;
        -h | --help)
            sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//'
            exit 0
            ;;
        *)
            echo "run.sh: unknown argument '$arg' (try --help)" >&2
            exit 2
            ;;
    esac
done

if ! command -v qemu-system-arm >/dev/null 2>&1; then
    echo "run.sh: qemu-system-arm not found (scripts/setup installs it)" >&2
    exit 1
fi

find_llvm_size() {
    local candidate
    for candidate in "$(rustc --print sysroot)"/lib/rustlib/*/bin/llvm-size; do
        if [[ -x "$candidate" ]]; then
            echo "$candidate"
            return 0
        fi
    done
    for candidate in llvm-size arm-none-eabi-size; do
        if command -v "$candidate" >/dev/null 2>&1; then
            command -v "$candidate"
            return 0
        fi
    done
    return 1
}
if ! size_tool="$(find_llvm_size)"; then
    echo "run.sh: llvm-size not found (scripts/setup installs rustup's llvm-tools)" >&2
    exit 1
fi

work="$(mktemp -d "${TMPDIR:-/tmp}/slup-firmware.XXXXXX")"
trap 'rm -rf "$work"' EXIT

# Build, and learn where the ELFs are from cargo itself (CARGO_TARGET_DIR may move them).
cargo build --release --message-format=json-render-diagnostics >"$work/build.json"
python3 - "$work/build.json" >"$work/elfs" <<'PY'
import json, sys
for line in open(sys.argv[1], encoding="utf-8"):
    try:
        m = json.loads(line)
    except ValueError:
        continue
    if m.get("reason") == "compiler-artifact" and m.get("executable"):
        print(m["target"]["name"], m["executable"])
PY
elf_of() {
    local name path
    while read -r name path; do
        if [[ "$name" == "$1" ]]; then
            echo "$path"
            return 0
        fi
    done <"$work/elfs"
    echo "run.sh: the build produced no '$1' executable" >&2
    return 1
}
agent_elf="$(elf_of slup-firmware)"
tls_elf="$(elf_of agent_tls)"
baseline_elf="$(elf_of crypto_baseline)"

echo "--- llvm-size (text = code + read-only data in flash; data in flash and RAM; bss in RAM)"
"$size_tool" "$agent_elf" "$tls_elf" "$baseline_elf"

# sizes ELF -> "text data bss"
sizes() {
    "$size_tool" "$1" | awk 'NR == 2 { print $1, $2, $3 }'
}
read -r a_text a_data a_bss <<<"$(sizes "$agent_elf")"
read -r b_text b_data b_bss <<<"$(sizes "$baseline_elf")"
read -r t_text t_data t_bss <<<"$(sizes "$tls_elf")"

# run NAME ELF: boots the image, shows and keeps its output, fails unless it exits 0 with "OK".
run() {
    local name="$1" elf="$2" rc=0
    echo "--- $name on qemu-system-arm -machine $MACHINE -cpu $CPU"
    timeout "$QEMU_TIMEOUT_S" qemu-system-arm -machine "$MACHINE" -cpu "$CPU" -nographic \
        -semihosting-config enable=on,target=native -kernel "$elf" \
        </dev/null >"$work/$name.out" 2>&1 || rc=$?
    cat "$work/$name.out"
    if [[ $rc -ne 0 ]]; then
        if [[ $rc -eq 124 ]]; then
            echo "run.sh: $name did not exit within ${QEMU_TIMEOUT_S}s" >&2
        else
            echo "run.sh: $name exited with status $rc" >&2
        fi
        return 1
    fi
    if [[ "$(tail -n 1 "$work/$name.out" | tr -d '\r')" != "OK" ]]; then
        echo "run.sh: $name did not end with OK" >&2
        return 1
    fi
}

# expect NAME PATTERN: the output of NAME has a line matching the extended regex PATTERN.
expect() {
    if ! grep -Eq "$2" "$work/$1.out"; then
        echo "run.sh: $1 printed no line matching /$2/" >&2
        return 1
    fi
}

# number NAME PATTERN: the first number on the first line of NAME's output matching PATTERN.
number() {
    grep -E "$2" "$work/$1.out" | head -n 1 | tr -d '\r' | sed -E 's/^[^0-9]*([0-9]+).*/\1/'
}

run agent "$agent_elf"
expect agent 'TRUST_INSTALL_SUCCESS'
expect agent 'USAGE_ACK_RECEIVED: .*1 acknowledged, 0 rejected'
expect agent '^ID_TOKEN_TRUST request: [0-9]+ bytes'
expect agent '^LICENSE_USAGE request: [0-9]+ bytes'
expect agent '^size_of::<Engine>\(\): [0-9]+ bytes'
expect agent '^peak stack: [0-9]+ bytes'
run agent_tls "$tls_elf"
expect agent_tls 'TLS attempt: E1304 TlsHandshake'
expect agent_tls 'USAGE_ACK_RECEIVED: .*1 acknowledged, 0 rejected'
expect agent_tls '^peak stack, trust -> report -> ACK with TLS: [0-9]+ bytes'
run baseline "$baseline_elf"
expect baseline '^verify: ok'
expect baseline '^verify other message: rejected'
expect baseline '^peak stack: [0-9]+ bytes'

engine="$(number agent '^size_of::<Engine>\(\):')"
stack="$(number agent '^peak stack:')"
stack_run="$(number agent '^peak stack, trust -> report -> ACK:')"
stack_boot="$(number agent '^peak stack, boot')"
recorded="$(number agent '^recorded answers in flash:')"
b_stack="$(number baseline '^peak stack:')"
t_stack="$(number agent_tls '^peak stack, trust -> report -> ACK with TLS:')"
t_flash=$((t_text + t_data))
flash=$((a_text + a_data))
b_flash=$((b_text + b_data))

# verdict VALUE BUDGET: "ok" or "OVER".
verdict() {
    if (($1 <= $2)); then
        echo "ok"
    else
        echo "OVER"
    fi
}
kib() {
    awk -v b="$1" 'BEGIN { printf "%.1f KiB", b / 1024 }'
}

flash_verdict="$(verdict "$flash" "$BUDGET_FLASH")"
engine_verdict="$(verdict "$engine" "$BUDGET_ENGINE")"
stack_verdict="$(verdict "$stack" "$BUDGET_STACK")"
over=0
for v in "$flash_verdict" "$engine_verdict" "$stack_verdict"; do
    if [[ "$v" != ok ]]; then
        over=$((over + 1))
    fi
done

echo "--- firmware budgets (DESIGN.md §6; QEMU $MACHINE, $CPU)"
printf '%-34s %8s %12s   %s\n' "" bytes "" "budget"
printf '%-34s %8d %12s   %s  %s\n' "flash, agent image (text+data)" "$flash" "($(kib "$flash"))" "$(kib "$BUDGET_FLASH")" "$flash_verdict"
printf '%-34s %8d %12s\n' "  of which recorded answers" "$recorded" "($(kib "$recorded"))"
printf '%-34s %8d %12s\n' "flash, crypto baseline" "$b_flash" "($(kib "$b_flash"))"
printf '%-34s %8d %12s   %s\n' "flash, agent minus baseline" "$((flash - b_flash))" "($(kib $((flash - b_flash))))" \
    "$(awk -v a="$flash" -v b="$b_flash" 'BEGIN { printf "image = %.2f x baseline", a / b }')"
printf '%-34s %8d %12s   %s\n' "flash, agent with the TLS client" "$t_flash" "($(kib "$t_flash"))" \
    "TLS adds $(kib $((t_flash - flash))) (not in the 48 KiB budget)"
printf '%-34s %8d %12s\n' "RAM statics, agent (data+bss)" "$((a_data + a_bss))" "($(kib $((a_data + a_bss))))"
printf '%-34s %8d %12s   %s  %s\n' "engine state (size_of Engine)" "$engine" "($(kib "$engine"))" "$(kib "$BUDGET_ENGINE")" "$engine_verdict"
printf '%-34s %8d %12s   %s  %s\n' "peak stack, agent" "$stack" "($(kib "$stack"))" "$(kib "$BUDGET_STACK")" "$stack_verdict"
printf '%-34s %8d %12s\n' "  boot (config + Engine::new)" "$stack_boot" "($(kib "$stack_boot"))"
printf '%-34s %8d %12s\n' "  trust -> report -> ACK" "$stack_run" "($(kib "$stack_run"))"
printf '%-34s %8d %12s\n' "peak stack, agent with TLS" "$t_stack" "($(kib "$t_stack"))"
printf '%-34s %8d %12s\n' "RAM statics, agent with TLS" "$((t_data + t_bss))" "($(kib $((t_data + t_bss))))"
printf '%-34s %8d %12s\n' "peak stack, crypto baseline" "$b_stack" "($(kib "$b_stack"))"

tools="$(dirname "$size_tool")"
if [[ -x "$tools/llvm-nm" ]]; then
    echo "--- flash by part: agent, crypto baseline, what the agent adds (flash.py)"
    ./flash.py "$agent_elf" --baseline "$baseline_elf" --nm "$tools/llvm-nm" --size "$size_tool" \
        --top 16
fi
if [[ "$stack_verdict" != ok && -x "$tools/llvm-objdump" ]]; then
    echo "--- largest stack frames of the agent image (static estimate: frames.py)"
    ./frames.py "$agent_elf" --objdump "$tools/llvm-objdump" --top 8
fi

if ((over > 0)); then
    if ((enforce)); then
        echo "run.sh: $over budget(s) exceeded" >&2
        exit 1
    fi
    echo "run.sh: warning: $over budget(s) exceeded (reported, not enforced; --enforce-budgets fails)"
fi
echo "run.sh: firmware example OK"
