#!/usr/bin/env python3
"""Reference NMS and soft-NMS for radlab's differential tests: ensemble-boxes' nms_method,
image by image.

stdin: JSON {"options": {method (1 linear, 2 gaussian, 3 hard), iou_thr, sigma, thresh,
             weights}, "images": [[ [[x1, y1, x2, y2, score, label], ...] per source ], ...]}
stdout: JSON [[[x1, y1, x2, y2, score, label], ...] per image]
"""
import json
import sys

import numpy as np
from ensemble_boxes import nms_method


def main():
    q = json.load(sys.stdin)
    o = q["options"]
    out = []
    for sources in q["images"]:
        boxes = [np.array([b[:4] for b in s], dtype=float).reshape(-1, 4) for s in sources]
        scores = [np.array([b[4] for b in s], dtype=float) for s in sources]
        labels = [np.array([b[5] for b in s], dtype=float) for s in sources]
        b, s, l = nms_method(boxes, scores, labels, method=o["method"], iou_thr=o["iou_thr"],
                             sigma=o["sigma"], thresh=o["thresh"], weights=o["weights"])
        out.append([[float(v) for v in bb] + [float(ss), int(ll)] for bb, ss, ll in zip(b, s, l)])
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
