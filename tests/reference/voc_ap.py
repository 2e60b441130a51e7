#!/usr/bin/env python3
"""Reference PASCAL VOC average precision, written from the VOC devkit's definition
(VOCevaldet.m and VOCap.m, VOC 2010 and later) for radlab's differential tests.

stdin: JSON {"labels": [...], "iou": 0.4, "gt": [[image, label, x1, y1, x2, y2], ...],
             "det": [[image, label, score, x1, y1, x2, y2], ...]}
stdout: JSON {label: ap or null}

Differences from the devkit, chosen to match the problem (and stated in radlab's docs):
continuous coordinates (no +1 on widths), "IoU > threshold" rather than ">=", no
"difficult" flags. Detections are ranked with a stable sort on descending score (MATLAB's
sort(..., 'descend') keeps the order of ties).
"""
import json
import sys

import numpy as np


def iou(b, gts):
    ixmin = np.maximum(gts[:, 0], b[0])
    iymin = np.maximum(gts[:, 1], b[1])
    ixmax = np.minimum(gts[:, 2], b[2])
    iymax = np.minimum(gts[:, 3], b[3])
    iw = np.maximum(ixmax - ixmin, 0.0)
    ih = np.maximum(iymax - iymin, 0.0)
    inter = iw * ih
    uni = (b[2] - b[0]) * (b[3] - b[1]) + (gts[:, 2] - gts[:, 0]) * (gts[:, 3] - gts[:, 1]) - inter
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(uni > 0, inter / np.where(uni > 0, uni, 1.0), 0.0)


def voc_ap(rec, prec):
    mrec = np.concatenate(([0.0], rec, [1.0]))
    mpre = np.concatenate(([0.0], prec, [0.0]))
    for i in range(mpre.size - 1, 0, -1):
        mpre[i - 1] = max(mpre[i - 1], mpre[i])
    i = np.where(mrec[1:] != mrec[:-1])[0]
    return float(np.sum((mrec[i + 1] - mrec[i]) * mpre[i + 1]))


def class_ap(label, gt, det, thr):
    gts = {}
    npos = 0
    for image, lab, *box in gt:
        if lab == label:
            gts.setdefault(image, []).append(box)
            npos += 1
    gts = {k: (np.array(v, dtype=float), np.zeros(len(v), dtype=bool)) for k, v in gts.items()}
    ds = [d for d in det if d[1] == label]
    order = sorted(range(len(ds)), key=lambda k: -ds[k][2])  # Python's sort is stable
    tp = np.zeros(len(ds))
    fp = np.zeros(len(ds))
    for rank, k in enumerate(order):
        image, _, _, *box = ds[k]
        if image in gts:
            boxes, used = gts[image]
            ov = iou(np.array(box, dtype=float), boxes)
            j = int(np.argmax(ov))
            if ov[j] > thr and not used[j]:
                tp[rank] = 1
                used[j] = True
                continue
        fp[rank] = 1
    if npos == 0:
        return None
    tp = np.cumsum(tp)
    fp = np.cumsum(fp)
    rec = tp / npos
    prec = tp / np.maximum(tp + fp, np.finfo(np.float64).eps)
    return voc_ap(rec, prec)


def main():
    q = json.load(sys.stdin)
    out = {lab: class_ap(lab, q["gt"], q["det"], q["iou"]) for lab in q["labels"]}
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
