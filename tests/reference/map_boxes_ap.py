#!/usr/bin/env python3
"""map-boxes' mean_average_precision_for_boxes (PyPI map-boxes), for radlab's tests.

stdin: JSON {"iou": 0.4, "gt": [[image, label, x1, y1, x2, y2], ...],
             "det": [[image, label, score, x1, y1, x2, y2], ...]}
stdout: JSON {"map": mAP, "classes": {label: AP}}

map-boxes takes columns ImageID, LabelName, XMin, XMax, YMin, YMax (x before y), reads
coordinates and scores as float32, and matches each image's detections in input order,
not by score (it sorts by score only afterwards, to build the curve), with IoU >=
threshold.
"""
import contextlib
import io
import json
import sys

import numpy as np

with contextlib.redirect_stdout(io.StringIO()):
    from map_boxes import mean_average_precision_for_boxes


def main():
    q = json.load(sys.stdin)
    ann = np.array([[i, l, x1, x2, y1, y2] for i, l, x1, y1, x2, y2 in q["gt"]], dtype=object)
    det = np.array([[i, l, s, x1, x2, y1, y2] for i, l, s, x1, y1, x2, y2 in q["det"]], dtype=object)
    with contextlib.redirect_stdout(io.StringIO()):
        m, per = mean_average_precision_for_boxes(ann, det, iou_threshold=q["iou"], verbose=False)
    json.dump({"map": float(m), "classes": {k: float(v[0]) for k, v in per.items()}}, sys.stdout)


if __name__ == "__main__":
    main()
