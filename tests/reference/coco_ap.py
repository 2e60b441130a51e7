#!/usr/bin/env python3
"""Reference COCO box AP: pycocotools' COCOeval itself, for radlab's differential tests.

stdin: JSON {"images": [image, ...] (evaluation order), "labels": [...] (category order),
             "gt": [[image, label, x1, y1, x2, y2], ...],
             "det": [[image, label, score, x1, y1, x2, y2], ...],
             "iou_thresholds": [...] (optional; default COCO's 0.50:0.05:0.95)}
stdout: JSON {"stats": [12 numbers of summarize()],
              "classes": {label: [AP, AP50, AP75] (null where pycocotools has only -1)}}

Images and categories get COCO ids 1.. in the order given, so pycocotools' ascending-id
order is the order given. Ground-truth annotations get ids 1.. in input order, area w * h,
iscrowd 0; detections go through COCO.loadRes (ids 1.., area w * h).
"""
import contextlib
import io
import json
import sys

import numpy as np
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval


def xywh(x1, y1, x2, y2):
    return [x1, y1, x2 - x1, y2 - y1]


def main():
    q = json.load(sys.stdin)
    img = {name: i + 1 for i, name in enumerate(q["images"])}
    cat = {name: i + 1 for i, name in enumerate(q["labels"])}
    anns = []
    for image, label, *corners in q["gt"]:
        b = xywh(*corners)
        anns.append({"id": len(anns) + 1, "image_id": img[image], "category_id": cat[label],
                     "bbox": b, "area": b[2] * b[3], "iscrowd": 0})
    dataset = {"images": [{"id": i} for i in img.values()],
               "categories": [{"id": c, "name": n} for n, c in cat.items()],
               "annotations": anns}
    results = [{"image_id": img[image], "category_id": cat[label], "bbox": xywh(*corners),
                "score": score}
               for image, label, score, *corners in q["det"]]
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO()
        gt.dataset = dataset
        gt.createIndex()
        dt = gt.loadRes(results)
        e = COCOeval(gt, dt, "bbox")
        if q.get("iou_thresholds"):
            e.params.iouThrs = np.array(q["iou_thresholds"], dtype=float)
        e.evaluate()
        e.accumulate()
        e.summarize()
    prec = e.eval["precision"]  # [T, R, K, A, M]
    thrs = list(e.params.iouThrs)
    classes = {}
    for k, label in enumerate(q["labels"]):
        out = []
        for sel in (None, 0.5, 0.75):
            p = prec[:, :, k, 0, -1] if sel is None else prec[[i for i, t in enumerate(thrs) if t == sel], :, k, 0, -1]
            p = p[p > -1]
            out.append(float(np.mean(p)) if p.size else None)
        classes[label] = out
    json.dump({"stats": [float(s) for s in e.stats], "classes": classes}, sys.stdout)


if __name__ == "__main__":
    main()
