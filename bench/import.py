#!/usr/bin/env python3
"""`radlab import` of the DICOM corpus copied N times, next to `cp -r` of the same files.

usage: bench/import.py RADLAB_BINARY CORPUS_DIR OUT.md [COPIES] [RUNS]

The corpus's dicom/ folder is copied COPIES times into a scratch folder (page cache warm).
Each run then times, in turn: `cp -r` of the copies to a fresh folder (the I/O floor), and
`radlab import --no-skip-known` into a fresh catalog and blob store, with each pixel check
(`--check decode`, the default, and `--check structure`), so every file is read, hashed,
parsed, checked and offered to the catalog (the copies share UIDs; the catalog keeps one row
per object). Medians of RUNS runs."""
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time


def timed(cmd):
    t = time.perf_counter()
    subprocess.run(cmd, check=True, capture_output=True)
    return time.perf_counter() - t


def main():
    radlab, corpus, out_md = sys.argv[1:4]
    copies = int(sys.argv[4]) if len(sys.argv) > 4 else 20
    runs = int(sys.argv[5]) if len(sys.argv) > 5 else 5
    scratch = tempfile.mkdtemp(prefix="radlab-bench-")
    src = os.path.join(scratch, "src")
    for i in range(copies):
        shutil.copytree(os.path.join(corpus, "dicom"), os.path.join(src, f"copy{i:02}"))
    files = sum(len(f) for _, _, f in os.walk(src))
    size = sum(os.path.getsize(os.path.join(d, n)) for d, _, fs in os.walk(src) for n in fs)
    subprocess.run(["cat"] + [os.path.join(d, n) for d, _, fs in os.walk(src) for n in fs],
                   stdout=subprocess.DEVNULL, check=True)  # warm the page cache
    cp_times, import_times = [], {"decode": [], "structure": []}
    for run in range(runs):
        dest = os.path.join(scratch, f"cp{run}")
        cp_times.append(timed(["cp", "-r", src, dest]))
        shutil.rmtree(dest)
        for check in import_times:
            data = os.path.join(scratch, f"data{run}")
            import_times[check].append(timed([radlab, "import", "--no-skip-known", "--json",
                                              "--check", check, "--data-dir", data, src]))
            shutil.rmtree(data)
    shutil.rmtree(scratch)
    cp = statistics.median(cp_times)
    mb = size / 1e6
    cores = os.cpu_count()
    with open(out_md, "w") as f:
        f.write("## `radlab import` against `cp -r`\n\n")
        f.write(f"The DICOM corpus copied {copies} times: {files} files, {mb:.0f} MB, on {cores} "
                f"cores. Fresh catalog (SQLite) and blob store each run, `--no-skip-known` so "
                f"every file is read, hashed, parsed, checked and offered to the catalog. "
                f"`--check decode` (the default) decodes every frame of every file; "
                f"`--check structure` checks lengths, frames and codestream markers (it "
                f"quarantines the same corpus files, see the store tests). Median of {runs} "
                f"runs.\n\n")
        f.write("| | seconds | files/s | MB/s | vs cp |\n|---|---|---|---|---|\n")
        f.write(f"| `cp -r` (I/O floor) | {cp:.2f} | {files/cp:.0f} | {mb/cp:.0f} | 1.0x |\n")
        for check, times in import_times.items():
            imp = statistics.median(times)
            f.write(f"| `radlab import --check {check}` | {imp:.2f} | {files/imp:.0f} | "
                    f"{mb/imp:.0f} | {imp/cp:.1f}x |\n")


if __name__ == "__main__":
    main()
