#!/usr/bin/env python3
"""The community VinBigData grader (Kaggle notebook "competition-metric-map-0-4", class
VinBigDataEval by pestipeti), rewritten for radlab's differential tests with the same
construction: pandas frames in, pycocotools COCOeval with params.iouThrs = [0.4], and
stats[0] reported.

What it keeps from the notebook, on purpose: images numbered 0.. in order of first
appearance in the ground truth; annotation ids 0.. (ground truth grouped by image, rows in
order; predictions in submission order); "bbox" = [x_min, y_min, x_max, y_max] although
COCO reads [x, y, w, h]; "area" = the true (x_max - x_min) * (y_max - y_min); the COCO
objects built by assigning .dataset and createIndex() (no loadRes); categories = the class
ids present in the ground truth. It looks images up in a dict instead of filtering the frame
per image (same order, faster).

stdin: JSON {"gt": [[image_id, class_id, x_min, y_min, x_max, y_max], ...],
             "pred": [[image_id, PredictionString], ...]}
stdout: JSON {"stats": [12 numbers], "classes": {class_id: AP or null}}
"""
import contextlib
import io
import json
import sys

import numpy as np
import pandas as pd
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval


class VinBigDataEval:
    def __init__(self, true_df):
        self.true_df = true_df
        self.image_ids = true_df["image_id"].unique()
        self.index = {image_id: idx for idx, image_id in enumerate(self.image_ids)}
        self.annotations = {
            "type": "instances",
            "images": [{"id": idx} for idx in range(len(self.image_ids))],
            "categories": self.gen_categories(true_df),
            "annotations": self.gen_annotations(true_df),
        }
        self.predictions = {
            "images": self.annotations["images"].copy(),
            "categories": self.annotations["categories"].copy(),
            "annotations": None,
        }

    def gen_categories(self, df):
        cats = df[["class_id"]].drop_duplicates().sort_values(by="class_id").values
        return [{"id": int(c[0]), "name": str(c[0]), "supercategory": "none"} for c in cats]

    def gen_annotations(self, df):
        rows = {image_id: [] for image_id in self.image_ids}
        for row in df.itertuples(index=False):
            rows[row.image_id].append(row)
        k = 0
        results = []
        for idx, image_id in enumerate(self.image_ids):
            for row in rows[image_id]:
                results.append({
                    "id": k,
                    "image_id": idx,
                    "category_id": int(row.class_id),
                    "bbox": np.array([row.x_min, row.y_min, row.x_max, row.y_max]),
                    "segmentation": [],
                    "ignore": 0,
                    "area": (row.x_max - row.x_min) * (row.y_max - row.y_min),
                    "iscrowd": 0,
                })
                k += 1
        return results

    def gen_predictions(self, df):
        k = 0
        results = []
        for row in df.itertuples(index=False):
            preds = np.array(list(map(float, row.PredictionString.split(" ")))).reshape(-1, 6)
            for pred in preds:
                results.append({
                    "id": k,
                    "image_id": self.index[row.image_id],
                    "category_id": int(pred[0]),
                    "bbox": np.array([pred[2], pred[3], pred[4], pred[5]]),
                    "segmentation": [],
                    "ignore": 0,
                    "area": (pred[4] - pred[2]) * (pred[5] - pred[3]),
                    "iscrowd": 0,
                    "score": pred[1],
                })
                k += 1
        return results

    def evaluate(self, pred_df):
        self.predictions["annotations"] = self.gen_predictions(pred_df)
        coco_ds = COCO()
        coco_ds.dataset = self.annotations
        coco_ds.createIndex()
        coco_dt = COCO()
        coco_dt.dataset = self.predictions
        coco_dt.createIndex()
        e = COCOeval(coco_ds, coco_dt, "bbox")
        e.params.imgIds = sorted(coco_ds.getImgIds())
        e.params.useCats = True
        e.params.iouType = "bbox"
        e.params.iouThrs = np.array([0.4])
        e.evaluate()
        e.accumulate()
        e.summarize()
        return e


def main():
    q = json.load(sys.stdin)
    true_df = pd.DataFrame(q["gt"], columns=["image_id", "class_id", "x_min", "y_min", "x_max", "y_max"])
    pred_df = pd.DataFrame(q["pred"], columns=["image_id", "PredictionString"])
    with contextlib.redirect_stdout(io.StringIO()):
        e = VinBigDataEval(true_df).evaluate(pred_df)
    prec = e.eval["precision"]
    classes = {}
    for k, c in enumerate(e.params.catIds):
        p = prec[0, :, k, 0, -1]
        p = p[p > -1]
        classes[str(int(c))] = float(np.mean(p)) if p.size else None
    json.dump({"stats": [float(s) for s in e.stats], "classes": classes}, sys.stdout)


if __name__ == "__main__":
    main()
