#!/usr/bin/env python3
"""The pydicom + pylibjpeg + Pillow side of the decode/render benchmark.

usage: pydicom_render.py RUNS OUT.png FILE
Decodes FILE, applies the file's first window (else min-max), inverts MONOCHROME1, writes an
8-bit PNG with Pillow, RUNS times in one process, and prints the median seconds of a run
(interpreter start-up and imports excluded, which favours pydicom)."""
import statistics
import sys
import time

import numpy as np
import pydicom
from PIL import Image
from pydicom.pixels import apply_modality_lut, apply_voi_lut


def render(path, out):
    ds = pydicom.dcmread(path, force=True)
    if not getattr(ds, "file_meta", None) or "TransferSyntaxUID" not in ds.file_meta:
        ds.file_meta = pydicom.dataset.FileMetaDataset()
        ds.file_meta.TransferSyntaxUID = pydicom.uid.ImplicitVRLittleEndian
    arr = ds.pixel_array
    if "WindowCenter" in ds:
        arr = apply_voi_lut(apply_modality_lut(arr, ds), ds, index=0)
    else:
        arr = apply_modality_lut(arr, ds)
    arr = arr.astype(np.float64)
    lo, hi = float(arr.min()), float(arr.max())
    arr = (arr - lo) / max(hi - lo, 1e-9)
    if ds.PhotometricInterpretation == "MONOCHROME1":
        arr = 1.0 - arr
    Image.fromarray((arr * 255.0).astype(np.uint8)).save(out, compress_level=1)


def main():
    runs, out, path = int(sys.argv[1]), sys.argv[2], sys.argv[3]
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        render(path, out)
        times.append(time.perf_counter() - t)
    print(statistics.median(times))


if __name__ == "__main__":
    main()
