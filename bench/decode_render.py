#!/usr/bin/env python3
"""Decode + render to PNG of the CXR corpus: radlab vs pydicom + pylibjpeg + Pillow vs dcmtk.

usage: bench/decode_render.py RADLAB_BINARY CORPUS_DIR REF_PYTHON OUT.md [RUNS]

Per file, each tool renders the full-size image with the file's first window (min-max when it
has none) to an 8-bit PNG. radlab and dcmj2pnm run as one process per file, timed by
hyperfine (median of RUNS runs after a warm-up); pydicom runs RUNS times inside one Python
process (its start-up and imports excluded). dcmtk's free build has no JPEG 2000 decoder, so
J2K files have no dcmtk figure. Writes a Markdown section to OUT.md."""
import json
import os
import statistics
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))


def hyperfine(cmd, runs):
    with tempfile.NamedTemporaryFile(suffix=".json") as f:
        subprocess.run(
            ["hyperfine", "-N", "--warmup", "1", "--runs", str(runs), "--export-json", f.name, cmd],
            check=True, capture_output=True,
        )
        return json.load(open(f.name))["results"][0]["median"]


def has_window(path):
    out = subprocess.run(["dcmdump", "-q", "+P", "0028,1050", path], capture_output=True, text=True)
    return "0028,1050" in out.stdout


def main():
    radlab, corpus, python, out_md = sys.argv[1:5]
    runs = int(sys.argv[5]) if len(sys.argv) > 5 else 7
    import csv
    rows = [r for r in csv.DictReader(open(os.path.join(corpus, "manifest.csv")))
            if r["path"].startswith("dicom/") and r["expected"] == "frontal_cxr"]
    tmp = tempfile.mkdtemp()
    lines = []
    totals = {"radlab": 0.0, "pydicom": 0.0, "dcmtk": 0.0, "radlab_dcmtk_files": 0.0}
    for r in rows:
        path = os.path.join(corpus, r["path"])
        name = os.path.basename(path)
        ours = hyperfine(f"{radlab} render {path} -o {tmp}/a.png", runs)
        py = float(subprocess.run([python, os.path.join(HERE, "pydicom_render.py"), str(runs),
                                   f"{tmp}/b.png", path], check=True, capture_output=True,
                                  text=True).stdout)
        dc = None
        if "JPEG 2000" not in r["transfer_syntax"]:
            window = "+Wi 1" if has_window(path) else "+Wm"
            flags = "-f -ti " if r["transfer_syntax"].startswith("(none") else ""
            dc = hyperfine(f"dcmj2pnm {flags}--write-png {window} {path} {tmp}/c.png", runs)
            totals["dcmtk"] += dc
            totals["radlab_dcmtk_files"] += ours
        totals["radlab"] += ours
        totals["pydicom"] += py
        lines.append(
            f"| `{name}` | {r['transfer_syntax'].split(' (')[0]} | {r['cols']}x{r['rows']} | "
            f"{ours*1000:.0f} | {py*1000:.0f} | " + (f"{dc*1000:.0f}" if dc else "-") + " | "
            f"{py/ours:.1f}x | " + (f"{dc/ours:.2f}x |" if dc else "- |"))
    with open(out_md, "w") as f:
        f.write("## Decode + render to PNG, CXR corpus\n\n")
        f.write(f"Median of {runs} runs per file (after one warm-up), full-size 8-bit PNG with the "
                "file's first window (min-max without one). radlab and dcmj2pnm: one process per "
                "file, timed by hyperfine; pydicom 3 + pylibjpeg + Pillow (PNG compress_level 1): "
                "in one process, start-up and imports excluded. radlab writes PNG with fast "
                "compression; dcmtk with libpng's default. dcmtk's free build has no JPEG 2000 "
                "decoder (-).\n\n")
        f.write("| file | transfer syntax | size | radlab ms | pydicom ms | dcmtk ms | "
                "speed-up vs pydicom | speed-up vs dcmtk |\n|---|---|---|---|---|---|---|---|\n")
        f.write("\n".join(lines) + "\n")
        f.write(f"| **total** | | | {totals['radlab']*1000:.0f} | {totals['pydicom']*1000:.0f} | "
                f"{totals['dcmtk']*1000:.0f} | {totals['pydicom']/totals['radlab']:.1f}x | "
                f"{totals['dcmtk']/totals['radlab_dcmtk_files']:.2f}x (files dcmtk reads) |\n")


if __name__ == "__main__":
    main()
