#!/usr/bin/env python3
"""Reference FROC for radlab's differential tests, written from the definition in
docs/metrics.md with numpy (not from radlab's code).

stdin: JSON {"labels": [...], "iou": 0.4, "images": N,
             "gt": [[image, label, x1, y1, x2, y2], ...],
             "det": [[image, label, score, x1, y1, x2, y2], ...]}
stdout: JSON {"classes": {label: [7 sensitivities] or null}, "overall": [7 sensitivities],
              "cpm": {label: cpm or null, "overall": cpm}}

Matching: per label, detections by descending score (stable), each against the boxes of
its image and label: the largest IoU (first of equals) wins; a true positive when it is
above the threshold and that box is not taken yet. Sensitivity at a rate r: the largest
sensitivity over all score cut-offs c (keep detections with score >= c; c = +inf keeps
none) whose false positives / N <= r.
"""
import json
import sys

import numpy as np

RATES = [0.125, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0]


def iou_many(b, boxes):
    iw = np.clip(np.minimum(boxes[:, 2], b[2]) - np.maximum(boxes[:, 0], b[0]), 0, None)
    ih = np.clip(np.minimum(boxes[:, 3], b[3]) - np.maximum(boxes[:, 1], b[1]), 0, None)
    inter = iw * ih
    union = (b[2] - b[0]) * (b[3] - b[1]) + (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]) - inter
    out = np.zeros(len(boxes))
    ok = union > 0
    out[ok] = inter[ok] / union[ok]
    return out


def match(label, gt, det, thr):
    boxes = {}
    for image, lab, *b in gt:
        if lab == label:
            boxes.setdefault(image, []).append(b)
    boxes = {k: np.array(v, dtype=float) for k, v in boxes.items()}
    taken = {k: np.zeros(len(v), dtype=bool) for k, v in boxes.items()}
    ds = [d for d in det if d[1] == label]
    scores = np.array([d[2] for d in ds], dtype=float)
    order = np.argsort(-scores, kind="stable")
    tp = np.zeros(len(ds), dtype=bool)
    for rank, k in enumerate(order):
        image, _, _, *b = ds[k]
        if image not in boxes:
            continue
        o = iou_many(np.array(b, dtype=float), boxes[image])
        j = int(np.argmax(o))
        if o[j] > thr and not taken[image][j]:
            taken[image][j] = True
            tp[rank] = True
    n_gt = sum(len(v) for v in boxes.values())
    return scores[order], tp, n_gt


def sensitivities(scores, tp, n_gt, n_images):
    cutoffs = np.concatenate(([np.inf], np.unique(scores)[::-1]))
    sens = np.array([tp[scores >= c].sum() / n_gt for c in cutoffs])
    fppi = np.array([(~tp[scores >= c]).sum() / n_images for c in cutoffs])
    return [float(sens[fppi <= r].max()) if (fppi <= r).any() else 0.0 for r in RATES]


def main():
    q = json.load(sys.stdin)
    n = q["images"]
    classes, cpm = {}, {}
    all_scores, all_tp, all_gt = [], [], 0
    for label in q["labels"]:
        s, tp, n_gt = match(label, q["gt"], q["det"], q["iou"])
        all_scores.append(s)
        all_tp.append(tp)
        all_gt += n_gt
        if n_gt == 0:
            classes[label] = None
            cpm[label] = None
            continue
        classes[label] = sensitivities(s, tp, n_gt, n)
        cpm[label] = float(np.mean(classes[label]))
    overall = sensitivities(np.concatenate(all_scores), np.concatenate(all_tp), all_gt, n)
    cpm["overall"] = float(np.mean(overall))
    json.dump({"classes": classes, "overall": overall, "cpm": cpm}, sys.stdout)


if __name__ == "__main__":
    main()
