#!/usr/bin/env python3
"""Where a graft binary's `perf record` samples go, by graft function or source line.

    perf record -F 1999 -o PERF.data BINARY ...
    python3 bench/hot.py PERF.data BINARY [N] [func|line]

`perf report` credits a sample to the innermost frame, which in graft's kernels is usually one
of `pulp`'s or `core`'s inlined helpers, so every kernel shows as `pulp::...::vectorize::imp`.
This maps each sampled address through `addr2line -i` (the inline chain, from the binary's
debug info; release builds keep it) to the first frame in graft-kernels or graft-models and
counts samples per such function (or file:line). Samples outside the binary are summed per
shared object. Needs perf and binutils; no frame pointers or DWARF unwinding.
"""
import collections
import re
import subprocess
import sys


def text_delta(binary):
    """The executable segment's virtual address minus its file offset."""
    out = subprocess.run(["readelf", "-lW", binary], capture_output=True, text=True, check=True).stdout
    for line in out.splitlines():
        f = line.split()
        if f and f[0] == "LOAD" and "E" in f[6:-1]:
            return int(f[2], 16) - int(f[1], 16)
    sys.exit(f"{binary}: no executable LOAD segment")


def mapping(perf, binary):
    """(start, file offset) of the binary's executable mapping in the recording."""
    name = binary.rsplit("/", 1)[-1]
    out = subprocess.run(["perf", "script", "-i", perf, "--show-mmap-events"],
                         capture_output=True, text=True).stdout
    for line in out.splitlines():
        if "PERF_RECORD_MMAP" in line and "r-xp" in line and name in line:
            m = re.search(r"\[(0x[0-9a-f]+)\((0x[0-9a-f]+)\) @ (0x[0-9a-f]+|0) ", line)
            if m:
                return int(m.group(1), 16), int(m.group(3), 16)
    sys.exit(f"{perf}: no executable mapping of {name}")


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    perf, binary = sys.argv[1], sys.argv[2]
    n = int(sys.argv[3]) if len(sys.argv) > 3 else 40
    by = sys.argv[4] if len(sys.argv) > 4 else "func"
    name = binary.rsplit("/", 1)[-1]
    start, offset = mapping(perf, binary)
    delta = text_delta(binary)
    samples = subprocess.run(["perf", "script", "-i", perf, "-F", "ip,dso"],
                             capture_output=True, text=True).stdout
    ips, elsewhere, total = collections.Counter(), collections.Counter(), 0
    for line in samples.splitlines():
        f = line.split()
        if len(f) < 2:
            continue
        total += 1
        if name in f[1]:
            ips[int(f[0], 16) - start + offset + delta] += 1
        else:
            elsewhere[f[1]] += 1
    if not total:
        sys.exit(f"{perf}: no samples")
    lines = subprocess.run(["addr2line", "-a", "-i", "-f", "-C", "-e", binary] + [hex(a) for a in ips],
                           capture_output=True, text=True).stdout.splitlines()
    frames, address = {}, None
    for line in lines:
        if line.startswith("0x"):
            address = int(line, 16)
            frames[address] = []
        elif address is not None:
            frames[address].append(line)
    counts = collections.Counter()
    for address, fr in frames.items():
        pairs = list(zip(fr[0::2], fr[1::2]))
        key = next(((f if by == "func" else loc.split(" ")[0].split("/crates/")[-1])
                    for f, loc in pairs if "graft-kernels" in loc or "graft-models" in loc), None)
        counts[key or "(" + (pairs[0][0][:70] if pairs else "?") + ")"] += ips[address]
    for key, v in counts.most_common(n):
        print(f"{100 * v / total:5.2f}%  {key}")
    for key, v in elsewhere.most_common(5):
        print(f"{100 * v / total:5.2f}%  [{key}]")


main()
