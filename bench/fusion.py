#!/usr/bin/env python3
"""Weighted Boxes Fusion of the whole real Kaggle train.csv (every image, its 3 readers, per
class, IoU 0.4, every reader a source with score 1): `radlab fuse` against `ensemble-boxes`.

usage: bench/fusion.py RADLAB_BINARY CORPUS_DIR PYTHON OUT.md

PYTHON is the interpreter with ensemble-boxes (the test venv made by scripts/test).
Environment: RADLAB_FUSION_BENCH_RUNS (default 5).

Both sides run on one core. Timed, medians of the runs:
  - the fusion itself: radlab's, as `radlab fuse -v` logs it; ensemble-boxes', the loop of
    weighted_boxes_fusion calls over the images, after one warm-up pass (numba compiles its
    helpers on first use), with the boxes already normalised to [0, 1] by the image sizes
    (the reference wants them so);
  - end to end: `radlab fuse --labels train.csv --out X` as a process; for the reference, the
    same Python process reading train.csv and the image sizes with the csv module, grouping,
    normalising, fusing and writing the CSV.
The fused boxes are compared: the same count per image and label, corners within 1e-3 px
(the reference computes in float32).
"""
import csv
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

RUNS = int(os.environ.get("RADLAB_FUSION_BENCH_RUNS", "5"))

REFERENCE = r'''
import csv, json, sys, time, warnings
warnings.filterwarnings("ignore")
from ensemble_boxes import weighted_boxes_fusion

train, sizes, out, runs = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])

def load():
    size = {}
    with open(sizes) as f:
        for r in csv.DictReader(f):
            size[r["image_id"]] = (float(r["width"]), float(r["height"]))
    images = {}
    with open(train) as f:
        for r in csv.DictReader(f):
            if r["class_name"] == "No finding":
                continue
            w, h = size[r["image_id"]]
            readers = images.setdefault(r["image_id"], {})
            b, l = readers.setdefault(r["rad_id"], ([], []))
            b.append([float(r["x_min"]) / w, float(r["y_min"]) / h,
                      float(r["x_max"]) / w, float(r["y_max"]) / h])
            l.append(int(r["class_id"]))
    return size, images

def fuse(images):
    result = {}
    for image, readers in images.items():
        # Readers in reverse name order and each reader's boxes reversed: the reference's
        # descending sort (argsort()[::-1]) puts tied scores in reverse input order, so this
        # hands radlab's order (readers by name, boxes in file order) to it.
        readers = sorted(readers.items(), reverse=True)
        boxes = [v[0][::-1] for _, v in readers]
        labels = [v[1][::-1] for _, v in readers]
        scores = [[1.0] * len(b) for b in boxes]
        result[image] = weighted_boxes_fusion(boxes, scores, labels, iou_thr=0.4, skip_box_thr=0.0)
    return result

size, images = load()
fuse(images)  # warm-up: numba compiles on first use
core = []
for _ in range(runs):
    t = time.perf_counter()
    fuse(images)
    core.append(time.perf_counter() - t)
end = []
for _ in range(runs):
    t = time.perf_counter()
    size, images = load()
    result = fuse(images)
    with open(out, "w", newline="") as f:
        wr = csv.writer(f)
        wr.writerow(["image_id", "class_id", "x_min", "y_min", "x_max", "y_max", "score"])
        for image, (b, s, l) in result.items():
            w, h = size[image]
            for bb, ss, ll in zip(b, s, l):
                wr.writerow([image, int(ll), bb[0] * w, bb[1] * h, bb[2] * w, bb[3] * h, ss])
    end.append(time.perf_counter() - t)
json.dump({"core": core, "end": end}, sys.stdout)
'''


def main():
    binary, corpus, python, out_md = sys.argv[1:5]
    train = os.path.join(corpus, "annotations/vinbigdata/train.csv")
    sizes = os.path.join(corpus, "annotations/vinbigdata/train_image_size.csv")
    env = dict(os.environ, OMP_NUM_THREADS="1", NUMBA_NUM_THREADS="1", RAYON_NUM_THREADS="1")
    with tempfile.TemporaryDirectory() as tmp:
        ours_csv = os.path.join(tmp, "ours.csv")
        ref_csv = os.path.join(tmp, "ref.csv")
        script = os.path.join(tmp, "ref.py")
        with open(script, "w") as f:
            f.write(REFERENCE)
        ref = json.loads(subprocess.run(
            ["taskset", "-c", "0", python, script, train, sizes, ref_csv, str(RUNS)],
            check=True, capture_output=True, text=True, env=env).stdout)
        core, end = [], []
        for _ in range(RUNS + 1):
            t = time.perf_counter()
            p = subprocess.run(["taskset", "-c", "0", binary, "fuse", "-v", "--labels", train,
                                "--out", ours_csv], check=True, capture_output=True, text=True,
                               env=env)
            end.append(time.perf_counter() - t)
            line = [x for x in p.stderr.splitlines() if "read in" in x][-1]
            core.append(float(line.split("fused in")[1].split("ms")[0]) / 1e3)
        core, end = core[1:], end[1:]  # the first run warms the page cache
        checked = compare(ours_csv, ref_csv)
    med = statistics.median
    rc, re_ = med(ref["core"]), med(ref["end"])
    oc, oe = med(core), med(end)
    images = len({r["image_id"] for r in csv.DictReader(open(train))})
    lines = [
        "## Weighted Boxes Fusion of the real train.csv",
        "",
        f"`bench/fusion.py`: every image of the Kaggle `train.csv` in the corpus ({images:,} images, "
        "3 readers each), per class, IoU 0.4, readers as sources with score 1; one core "
        f"(`taskset -c 0`) for both; medians of {RUNS} runs. ensemble-boxes "
        f"{version(python, 'ensemble-boxes')} on Python "
        f"{subprocess.run([python, '-c', 'import platform; print(platform.python_version())'], capture_output=True, text=True).stdout.strip()}. "
        f"Same numbers: {checked}.",
        "",
        "| | ensemble-boxes | radlab | radlab is |",
        "|---|---:|---:|---:|",
        f"| fusion only | {rc * 1e3:.0f} ms | {oc * 1e3:.1f} ms | {rc / oc:.0f}x faster |",
        f"| end to end (read CSV, fuse, write CSV) | {re_ * 1e3:.0f} ms | {oe * 1e3:.0f} ms | "
        f"{re_ / oe:.0f}x faster |",
        "",
    ]
    with open(out_md, "w") as f:
        f.write("\n".join(lines))
    print("\n".join(lines))


def version(python, package):
    return subprocess.run([python, "-c", f"import importlib.metadata as m; print(m.version('{package}'))"],
                          capture_output=True, text=True).stdout.strip()


def compare(ours_csv, ref_csv):
    """Both outputs: the same boxes per image and class, corners within 1e-3 px."""
    ours, ref = {}, {}
    with open(ours_csv) as f:
        for r in csv.DictReader(f):
            if r["x_min"] == "":
                continue
            ours.setdefault((r["image_id"], r["class_name"]), []).append(
                [float(r[k]) for k in ("x_min", "y_min", "x_max", "y_max")])
    with open(ref_csv) as f:
        for r in csv.DictReader(f):
            ref.setdefault((r["image_id"], r["class_id"]), []).append(
                [float(r[k]) for k in ("x_min", "y_min", "x_max", "y_max")])
    # Map class names to ids through the real train.csv's own pairs.
    corpus_train = sys.argv[2] + "/annotations/vinbigdata/train.csv"
    ids = {}
    with open(corpus_train) as f:
        for r in csv.DictReader(f):
            ids[r["class_name"]] = r["class_id"]
    ours = {(i, ids[c]): v for (i, c), v in ours.items()}
    if ours.keys() != ref.keys():
        raise SystemExit(f"different (image, class) sets: {len(ours)} vs {len(ref)}")
    boxes = 0
    for key, mine in ours.items():
        theirs = ref[key]
        if len(mine) != len(theirs):
            raise SystemExit(f"{key}: {len(mine)} boxes vs {len(theirs)}")
        for b in mine:
            if not any(max(abs(x - y) for x, y in zip(b, t)) < 1e-3 for t in theirs):
                raise SystemExit(f"{key}: box {b} not in the reference's {theirs}")
        boxes += len(mine)
    return f"the same {boxes:,} fused boxes, corners within 1e-3 px"


if __name__ == "__main__":
    main()
