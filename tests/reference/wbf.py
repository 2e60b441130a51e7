#!/usr/bin/env python3
"""Reference Weighted Boxes Fusion for radlab's differential tests: ensemble-boxes'
weighted_boxes_fusion, run image by image.

stdin: JSON {"options": {iou_thr, skip_box_thr, weights, conf_type, allows_overflow},
             "images": [[ [[x1, y1, x2, y2, score, label], ...] per source ], ...]}
stdout: JSON [[[x1, y1, x2, y2, score, label], ...] per image]
"""
import json
import sys
import warnings

from ensemble_boxes import weighted_boxes_fusion


def main():
    q = json.load(sys.stdin)
    o = q["options"]
    out = []
    warnings.simplefilter("ignore")
    for sources in q["images"]:
        boxes = [[b[:4] for b in s] for s in sources]
        scores = [[b[4] for b in s] for s in sources]
        labels = [[b[5] for b in s] for s in sources]
        b, s, l = weighted_boxes_fusion(boxes, scores, labels, weights=o["weights"],
                                        iou_thr=o["iou_thr"], skip_box_thr=o["skip_box_thr"],
                                        conf_type=o["conf_type"],
                                        allows_overflow=o["allows_overflow"])
        out.append([[float(v) for v in bb] + [float(ss), int(ll)] for bb, ss, ll in zip(b, s, l)])
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
