#!/usr/bin/env python3
"""`radlab deid` against `cp -r` and the Python de-identifiers (pydicom `deid`, Kitware
`dicom-anonymizer`) on about 1 GB of DICOM.

usage: bench/deid.py RADLAB_BINARY CORPUS_DIR OUT.md

Environment: RADLAB_DEID_BENCH_MB (size of the bench set, default 1024),
RADLAB_DEID_BENCH_RUNS (runs of cp and radlab, default 5), RADLAB_DEID_BENCH_PY_MB (the
subset the Python tools are timed on, default 100), RADLAB_DEID_BENCH_PY_RUNS (default 3).

The valid DICOM files of CORPUS_DIR/dicom (not invalid/) that every tool de-identifies are
copied, in turn, until the set holds about RADLAB_DEID_BENCH_MB. Each copy gets new Study,
Series and SOP Instance UIDs (rewritten with pydicom wherever they occur, file meta included;
the file is otherwise the same, but for a pad byte given to an odd-length pixel data fragment),
so every copy is a distinct object and every tool writes every file. The page cache is warmed first; each run writes to a fresh folder and nothing is
synced to disk (no tool syncs). Medians of several runs:
  - `cp -r SET OUT` (the I/O floor);
  - `radlab deid SET OUT --key-file K` (annex-e-basic, all cores);
  - `deid --outfolder OUT identifiers --action all --input SUBSET` (default recipe, one core);
  - `dicom-anonymizer SUBSET OUT` (default rules, one core).
The Python tools are timed on the first copies of the set (same mix of files, about
RADLAB_DEID_BENCH_PY_MB) and their per-file and per-MB rates applied to the whole set.
Python tools run from .venv-deid (made from bench/deid-requirements.txt when missing).
"""
import glob
import hashlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# bench/deid.py would shadow the `deid` package: never import from this folder.
sys.path[:] = [p for p in sys.path
               if os.path.abspath(p or ".") != os.path.dirname(os.path.abspath(__file__))]
VENV = os.path.join(ROOT, ".venv-deid")


def ensure_venv():
    """Re-run this script under .venv-deid (making it first) unless the tools import here."""
    try:
        import deid  # noqa: F401
        import dicomanonymizer  # noqa: F401
        import pydicom  # noqa: F401
        return
    except ImportError:
        pass
    py = os.path.join(VENV, "bin", "python")
    if not os.path.exists(py):
        subprocess.run([sys.executable, "-m", "venv", VENV], check=True)
        subprocess.run([py, "-m", "pip", "install", "-q", "-r",
                        os.path.join(ROOT, "bench", "deid-requirements.txt")], check=True)
    if os.path.realpath(sys.prefix) == os.path.realpath(VENV):
        sys.exit("the Python tools do not import in .venv-deid")
    os.execv(py, [py] + sys.argv)


def preflight_python(tool, files):
    """The files TOOL fails on (its documented call, one file at a time)."""
    import logging
    logging.disable(logging.CRITICAL)
    out = tempfile.mkdtemp(prefix="radlab-bench-pre-")
    failed = []
    try:
        for i, src in enumerate(files):
            d = os.path.join(out, str(i))
            os.makedirs(d)
            try:
                if tool == "deid":
                    from deid.dicom import get_identifiers, replace_identifiers
                    from deid.logger import bot
                    bot.level = 0
                    replace_identifiers(dicom_files=[src], ids=get_identifiers([src]),
                                        save=True, output_folder=d)
                else:
                    from dicomanonymizer import anonymize
                    anonymize(src, os.path.join(d, "out.dcm"), {}, True)
                if not any(os.scandir(d)):
                    failed.append(src)
            except Exception:  # noqa: BLE001 - a failure is what we look for
                failed.append(src)
    finally:
        shutil.rmtree(out)
    return failed


def new_uid(uid, copy):
    return "2.25." + str(int.from_bytes(hashlib.sha256(f"{uid}/{copy}".encode()).digest()[:16],
                                        "big"))


def write_copy(src, dst, copy):
    """SRC with its Study, Series and SOP Instance UIDs replaced (everywhere) for COPY: the
    study and series per copy, the instance per copy and file (the corpus holds one object
    in several encodings under one SOP Instance UID)."""
    import pydicom
    ds = pydicom.dcmread(src, force=True)
    mapping = {}
    for kw in ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID"):
        v = ds.get(kw)
        if v:
            salt = f"{copy}/{os.path.basename(src)}" if kw == "SOPInstanceUID" else copy
            mapping[str(v)] = new_uid(str(v), salt)

    def remap(dataset):
        for elem in dataset:
            if elem.VR == "UI" and isinstance(elem.value, str) and elem.value in mapping:
                elem.value = mapping[elem.value]
            elif elem.VR == "SQ":
                for item in elem.value:
                    remap(item)

    remap(ds)
    meta = getattr(ds, "file_meta", None)
    if meta is not None:
        remap(meta)
        ts = meta.get("TransferSyntaxUID")
        if ts is not None and ts.is_compressed and "PixelData" in ds:
            ds.PixelData = even_fragments(ds.PixelData)
    ds.save_as(dst, enforce_file_format=False)


def even_fragments(buf):
    """Encapsulated Pixel Data with each odd-length fragment given its trailing pad byte
    inside its item (pydicom would pad the element instead, after the last item, which
    dcmtk and radlab then reject): the one change to a copy besides its UIDs."""
    out, pos, changed = [], 0, False
    while pos + 8 <= len(buf) and buf[pos:pos + 4] == b"\xfe\xff\x00\xe0":
        n = int.from_bytes(buf[pos + 4:pos + 8], "little")
        frag = buf[pos + 8:pos + 8 + n]
        if n % 2:
            frag += b"\x00"
            changed = True
        out.append(b"\xfe\xff\x00\xe0" + len(frag).to_bytes(4, "little") + frag)
        pos += 8 + n
    return b"".join(out) if changed and pos == len(buf) else buf


LAST_OUTPUT = {}


def timed(cmd, ok=(0,)):
    t = time.perf_counter()
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    took = time.perf_counter() - t
    if p.returncode not in ok:
        sys.exit(f"{' '.join(cmd)}: exit {p.returncode}\n" +
                 p.stdout.decode(errors="replace")[-3000:])
    LAST_OUTPUT[cmd[0]] = p.stdout.decode(errors="replace")
    return took


def count_files(d):
    return sum(len(fs) for _, _, fs in os.walk(d))


def main():
    if len(sys.argv) > 2 and sys.argv[1] == "--preflight":
        print(json.dumps(preflight_python(sys.argv[2], sys.argv[3:])))
        return
    ensure_venv()
    import warnings
    warnings.filterwarnings("ignore")
    import pydicom
    from importlib import metadata

    radlab, corpus, out_md = sys.argv[1:4]
    radlab = os.path.abspath(radlab)
    target_mb = float(os.environ.get("RADLAB_DEID_BENCH_MB", "1024"))
    runs = int(os.environ.get("RADLAB_DEID_BENCH_RUNS", "5"))
    py_mb = float(os.environ.get("RADLAB_DEID_BENCH_PY_MB", "100"))
    py_runs = int(os.environ.get("RADLAB_DEID_BENCH_PY_RUNS", "3"))
    bin_dir = os.path.join(VENV, "bin")
    deid_cli = os.path.join(bin_dir, "deid")
    anon_cli = os.path.join(bin_dir, "dicom-anonymizer")

    dicom = os.path.join(corpus, "dicom")
    base = sorted(p for p in glob.glob(os.path.join(dicom, "**", "*.dcm"), recursive=True)
                  if not os.path.relpath(p, dicom).startswith("invalid" + os.sep))
    scratch = tempfile.mkdtemp(prefix="radlab-deid-bench-")
    try:
        key = os.path.join(scratch, "key")
        with open(key, "wb") as f:
            f.write(os.urandom(32))
        # radlab routes ultrasound (burned-in text) to review instead of writing it; the
        # other tools write every file, so radlab is told to as well.
        burned = os.path.join(scratch, "burned-in.toml")
        with open(burned, "w") as f:
            f.write('unmatched = "keep"\n')
        # Which files every tool de-identifies (radlab: the verifier passes; the Python tools:
        # no exception and an output written).
        pre = os.path.join(scratch, "pre")
        p = subprocess.run([radlab, "deid", dicom, pre, "--key-file", key,
                            "--burned-in", burned, "--json"],
                           capture_output=True, text=True)
        failed = {os.path.realpath(json.loads(line)["input"]): "radlab"
                  for line in p.stdout.splitlines()
                  if line.startswith("{") and json.loads(line).get("error")}
        shutil.rmtree(pre, ignore_errors=True)
        for tool in ("deid", "dicom-anonymizer"):
            q = subprocess.run([sys.executable, os.path.abspath(__file__), "--preflight", tool]
                               + base, capture_output=True, text=True, check=True)
            for f in json.loads(q.stdout.strip().splitlines()[-1]):
                failed.setdefault(os.path.realpath(f), tool)
        failed = {k: v for k, v in failed.items() if k in {os.path.realpath(b) for b in base}}
        usable = [b for b in base if os.path.realpath(b) not in failed]
        base_mb = sum(os.path.getsize(b) for b in usable) / 1e6
        copies = max(1, round(target_mb / base_mb))
        py_copies = max(1, min(copies, round(py_mb / base_mb)))

        src = os.path.join(scratch, "set")
        py_src = os.path.join(scratch, "subset")
        os.makedirs(src)
        os.makedirs(py_src)
        for c in range(copies):
            for b in usable:
                name = f"c{c:03}_{os.path.basename(b)}"
                write_copy(b, os.path.join(src, name), c)
                if c < py_copies:
                    os.link(os.path.join(src, name), os.path.join(py_src, name))
        files = count_files(src)
        size = sum(os.path.getsize(os.path.join(src, n)) for n in os.listdir(src))
        py_files = count_files(py_src)
        py_size = sum(os.path.getsize(os.path.join(py_src, n)) for n in os.listdir(py_src))
        subprocess.run(["cat"] + [os.path.join(src, n) for n in os.listdir(src)],
                       stdout=subprocess.DEVNULL, check=True)  # warm the page cache

        times = {"cp": [], "radlab": [], "deid": [], "dicom-anonymizer": []}
        written = {}

        def run_into(label, cmd_for, runs_n):
            for r in range(runs_n):
                out = os.path.join(scratch, f"out-{label}-{r}")
                cmd = cmd_for(out)
                if label in ("deid", "dicom-anonymizer"):  # they need it to exist
                    os.makedirs(out)
                # radlab exits 1 when it refuses a file (reported below, not fatal)
                times[label].append(timed(cmd, ok=(0, 1) if label == "radlab" else (0,)))
                written[label] = count_files(out)
                shutil.rmtree(out, ignore_errors=True)

        # Interleave the fast tools run by run so that drift hits both alike.
        for r in range(runs):
            run_into("cp", lambda out: ["cp", "-r", src, out], 1)
            run_into("radlab", lambda out: [radlab, "deid", src, out, "--key-file", key,
                                            "--burned-in", burned], 1)
        run_into("deid", lambda out: [deid_cli, "--quiet", "--outfolder", out, "identifiers",
                                      "--action", "all", "--input", py_src], py_runs)
        run_into("dicom-anonymizer", lambda out: [anon_cli, py_src, out], py_runs)

        mb, py_mbs = size / 1e6, py_size / 1e6
        med = {k: statistics.median(v) for k, v in times.items()}
        rate = {  # (files/s, MB/s)
            "cp": (files / med["cp"], mb / med["cp"]),
            "radlab": (files / med["radlab"], mb / med["radlab"]),
            "deid": (py_files / med["deid"], py_mbs / med["deid"]),
            "dicom-anonymizer": (py_files / med["dicom-anonymizer"],
                                 py_mbs / med["dicom-anonymizer"]),
        }
        # seconds for the whole set (the Python tools: extrapolated from their MB/s)
        whole = {k: mb / v[1] for k, v in rate.items()}
        expected = {"cp": files, "radlab": files, "deid": py_files,
                    "dicom-anonymizer": py_files}
        short = {k: (written.get(k), expected[k]) for k in expected
                 if written.get(k) != expected[k]}

        versions = (f"deid {metadata.version('deid')}, dicom-anonymizer "
                    f"{metadata.version('dicom-anonymizer')}, pydicom {pydicom.__version__}")
        with open(out_md, "w") as f:
            f.write("## `radlab deid` against `cp -r` and the Python de-identifiers\n\n")
            f.write(
                f"{len(usable)} valid corpus files ({base_mb:.0f} MB) copied {copies} times: "
                f"{files} files, {mb:.0f} MB, on {os.cpu_count()} cores; each copy has its own "
                f"Study, Series and SOP Instance UIDs, so every tool writes every file. Page "
                f"cache warm, a fresh output folder each run, no sync after any tool. "
                f"`radlab deid` (annex-e-basic, all cores, verifies every output before "
                f"writing it; burned-in text routing off, `unmatched = \"keep\"`, so that it "
                f"writes every file as the other tools do) and `cp -r`: median of {runs} runs over the whole set. {versions}, "
                f"one core each, with their default recipe / rules through their CLIs "
                f"(`deid identifiers --action all`, `dicom-anonymizer IN OUT`): median of "
                f"{py_runs} runs over the first {py_copies} copies ({py_files} files, "
                f"{py_mbs:.0f} MB, same mix of files), their rates applied to the whole set "
                f"(seconds marked ~).\n\n")
            if failed:
                f.write("Left out of the set because a tool fails on them: " + ", ".join(
                    f"`{os.path.basename(k)}` ({v})" for k, v in sorted(failed.items()))
                    + ".\n\n")
            f.write("| | seconds | files/s | MB/s | vs cp | radlab speed-up |\n"
                    "|---|---|---|---|---|---|\n")
            labels = {"cp": "`cp -r` (I/O floor)", "radlab": "`radlab deid`",
                      "deid": "pydicom `deid`", "dicom-anonymizer": "`dicom-anonymizer`"}
            for k in ("cp", "radlab", "deid", "dicom-anonymizer"):
                secs = f"{whole[k]:.2f}" if k in ("cp", "radlab") else f"~{whole[k]:.0f}"
                speed = "-" if k in ("radlab",) else f"{rate['radlab'][1] / rate[k][1]:.2f}x" \
                    if k == "cp" else f"{rate['radlab'][1] / rate[k][1]:.0f}x"
                f.write(f"| {labels[k]} | {secs} | {rate[k][0]:.0f} | {rate[k][1]:.1f} | "
                        f"{whole[k] / whole['cp']:.1f}x | {speed} |\n")
            vs_py = min(rate["radlab"][1] / rate[k][1] for k in ("deid", "dicom-anonymizer"))
            vs_cp = whole["radlab"] / whole["cp"]
            f.write(f"\nGoals (issue 3): at least 20x the Python tools: "
                    f"{'met' if vs_py >= 20 else 'not met'} ({vs_py:.0f}x the faster one); "
                    f"within 2x of `cp -r`: {'met' if vs_cp <= 2 else 'not met'} "
                    f"({vs_cp:.1f}x).\n")
            if short:
                f.write("\nFiles written differ from files given: " + ", ".join(
                    f"{k} {w} of {e}" for k, (w, e) in short.items()) + ".")
                refused = [line.strip() for line in LAST_OUTPUT.get(radlab, "").splitlines()
                           if line.startswith("        ")]
                if refused:
                    kinds = sorted({r.split(" at ")[0] + " at " + r.split(" at ")[1]
                                    for r in refused if " at " in r})
                    f.write(" radlab's verifier refused files, finding: " + "; ".join(kinds))
                f.write("\n")
        print(open(out_md).read())
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
