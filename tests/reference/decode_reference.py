#!/usr/bin/env python3
"""Reference decodes for radlab's decoder tests.

usage: decode_reference.py OUT_DIR FILE...

For each FILE (numbered 0..n-1 in argument order) writes OUT_DIR/<i>.json (shape, which
reference decoder was used) and OUT_DIR/<i>.bin (every sample of every frame as little-endian
int64, frames in order, colour samples interleaved), or OUT_DIR/<i>.json with an "error".

The reference for each transfer syntax is the tool a PACS engineer would trust:
dcmtk (dcmdjpeg for JPEG baseline/extended/lossless, dcmdrle for RLE, dcmdjpls for JPEG-LS)
decompresses to native, then pydicom reads the native pixels (numpy only, no codec);
JPEG 2000 goes through pydicom + pylibjpeg-openjpeg, as dcmtk's free build has no JPEG 2000.
"""
import json
import os
import subprocess
import sys
import tempfile

import numpy as np
import pydicom
from pydicom.uid import ImplicitVRLittleEndian

DCMTK = {
    "1.2.840.10008.1.2.4.50": "dcmdjpeg",
    "1.2.840.10008.1.2.4.51": "dcmdjpeg",
    "1.2.840.10008.1.2.4.57": "dcmdjpeg",
    "1.2.840.10008.1.2.4.70": "dcmdjpeg",
    "1.2.840.10008.1.2.5": "dcmdrle",
    "1.2.840.10008.1.2.4.80": "dcmdjpls",
    "1.2.840.10008.1.2.4.81": "dcmdjpls",
}


def meta_transfer_syntax(path):
    """The Transfer Syntax UID inside the meta group as bounded by its group length.

    Some files repeat group 0002 inside the data set; pydicom then reads the later copy,
    while the standard (and dcmtk) take the meta group's own value."""
    with open(path, "rb") as f:
        data = f.read(4096)
    start = 132 if data[128:132] == b"DICM" else (4 if data[:4] == b"DICM" else None)
    if start is None or data[start:start + 4] != b"\x02\x00\x00\x00":
        return ""
    end = start + 12 + int.from_bytes(data[start + 8:start + 12], "little")
    i = start + 12
    while i + 8 <= end:
        tag = data[i:i + 4]
        vr = data[i + 4:i + 6]
        if vr in (b"OB", b"OW", b"UN", b"SQ", b"UT", b"UC", b"UR"):
            length, header = int.from_bytes(data[i + 8:i + 12], "little"), 12
        else:
            length, header = int.from_bytes(data[i + 6:i + 8], "little"), 8
        if tag == b"\x02\x00\x10\x00":
            return data[i + header:i + header + length].decode("ascii").strip("\0 ")
        i += header + length
    return ""


def reference(path, tmp):
    ds = pydicom.dcmread(path, force=True)
    ts = meta_transfer_syntax(path)
    if not ts:
        ds.file_meta = pydicom.dataset.FileMetaDataset()
        ds.file_meta.TransferSyntaxUID = ImplicitVRLittleEndian
        ts = str(ImplicitVRLittleEndian)
    tool = DCMTK.get(ts)
    decoder = "pydicom (native)"
    if tool:
        out = os.path.join(tmp, "native.dcm")
        # dcmdjpeg: keep the decoded colour model as dcmtk reports it (+cn would not convert).
        subprocess.run([tool, path, out], check=True, capture_output=True)
        ds = pydicom.dcmread(out)
        decoder = f"dcmtk {tool}"
    elif ts.startswith("1.2.840.10008.1.2.4.9"):
        decoder = "pydicom + pylibjpeg-openjpeg"
    arr = ds.pixel_array
    frames = int(getattr(ds, "NumberOfFrames", 1) or 1)
    spp = int(getattr(ds, "SamplesPerPixel", 1) or 1)
    rows, cols = int(ds.Rows), int(ds.Columns)
    arr = np.asarray(arr).reshape(frames, rows, cols, spp)
    return arr, {
        "decoder": decoder,
        "frames": frames,
        "rows": rows,
        "columns": cols,
        "samples_per_pixel": spp,
        "photometric": str(getattr(ds, "PhotometricInterpretation", "")),
    }


def main():
    out_dir, files = sys.argv[1], sys.argv[2:]
    os.makedirs(out_dir, exist_ok=True)
    for i, path in enumerate(files):
        with tempfile.TemporaryDirectory() as tmp:
            try:
                arr, info = reference(path, tmp)
                arr.astype("<i8").tofile(os.path.join(out_dir, f"{i}.bin"))
            except Exception as e:  # the Rust test reports it per file
                info = {"error": f"{type(e).__name__}: {e}"}
        info["path"] = path
        with open(os.path.join(out_dir, f"{i}.json"), "w") as f:
            json.dump(info, f)


if __name__ == "__main__":
    main()
