#!/usr/bin/env python3
"""`radlab eval` against the Python evaluators on a 3,000-image submission.

usage: bench/metrics.py RADLAB_BINARY CORPUS_DIR OUT.md

Environment: RADLAB_METRICS_BENCH_IMAGES (images, default 3000), RADLAB_METRICS_BENCH_RUNS
(runs of each tool, default 5).

The set, built from the real Kaggle train.csv (CORPUS_DIR/annotations/vinbigdata): the first
N images in file order; ground truth = every reader's rows of those images ("No finding" as
`0 0 1 1`); predictions = for each image, its first reader's boxes with every corner moved by
up to 10% of the box size, 8 noise boxes of random classes, and a "No finding" `0 0 1 1`;
scores distinct multiples of 2^-20 (exact in float32, so map-boxes' float32 and unstable sort
cannot reorder them) and integer coordinates. Everything is seeded: the same corpus gives the
same set.

Timed, each pinned to one core (taskset -c 0), medians of RUNS runs:
  - `radlab eval --metrics voc` (release build): VOC 2010 mAP at IoU > 0.4;
  - map-boxes `mean_average_precision_for_boxes(ann.csv, det.csv, 0.4)` (VOC all-point at
    IoU >= 0.4; it matches detections in input order, so det.csv is sorted by score);
  - `radlab eval --metrics coco --coco-iou 0.4`: COCO 101-point AP at IoU >= 0.4;
  - pycocotools and faster-coco-eval COCOeval(bbox) with iouThrs = [0.4], stats[0], from a
    COCO dataset and results JSON of the same set.
For the Python tools two times: the whole process (interpreter start, imports, reading the
files, evaluating) and the evaluation alone inside the process (reading the files included,
imports excluded). radlab's time is always its whole process. The numbers of each pair must
agree (|difference| <= 1e-9) or the script fails.

The section is written to OUT.md and put into BENCHMARKS.md between the markers
<!-- bench/metrics.py begin --> and <!-- bench/metrics.py end --> (appended when absent).
Python tools run from .venv-bench-metrics (made from bench/metrics-requirements.txt).
"""
import csv
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VENV = os.path.join(ROOT, ".venv-bench-metrics")
BEGIN = "<!-- bench/metrics.py begin -->"
END = "<!-- bench/metrics.py end -->"
CLASSES = ["Aortic enlargement", "Atelectasis", "Calcification", "Cardiomegaly",
           "Consolidation", "ILD", "Infiltration", "Lung Opacity", "Nodule/Mass",
           "Other lesion", "Pleural effusion", "Pleural thickening", "Pneumothorax",
           "Pulmonary fibrosis", "No finding"]


def ensure_venv():
    try:
        import faster_coco_eval  # noqa: F401
        import map_boxes  # noqa: F401
        import pycocotools  # noqa: F401
        return
    except ImportError:
        pass
    py = os.path.join(VENV, "bin", "python")
    if not os.path.exists(py):
        subprocess.run([sys.executable, "-m", "venv", VENV], check=True)
        subprocess.run([py, "-m", "pip", "install", "-q", "-r",
                        os.path.join(ROOT, "bench", "metrics-requirements.txt")], check=True)
    if os.path.realpath(sys.prefix) == os.path.realpath(VENV):
        sys.exit("the Python evaluators do not import in .venv-bench-metrics")
    os.execv(py, [py] + sys.argv)


# --- one evaluation, in a child process: prints {"value": ..., "seconds": ...} -------------

def run_tool(tool, a, b):
    import contextlib
    import io
    quiet = contextlib.redirect_stdout(io.StringIO())
    with quiet:
        if tool == "map-boxes":
            from map_boxes import mean_average_precision_for_boxes
            t0 = time.perf_counter()
            value, _ = mean_average_precision_for_boxes(a, b, iou_threshold=0.4, verbose=False)
        else:
            import numpy as np
            if tool == "pycocotools":
                from pycocotools.coco import COCO
                from pycocotools.cocoeval import COCOeval as Eval
            else:
                from faster_coco_eval import COCO
                from faster_coco_eval import COCOeval_faster as Eval
            t0 = time.perf_counter()
            gt = COCO(a)
            dt = gt.loadRes(b)
            e = Eval(gt, dt, "bbox")
            e.params.iouThrs = np.array([0.4])
            e.evaluate()
            e.accumulate()
            e.summarize()
            value = e.stats[0]
        seconds = time.perf_counter() - t0
    print(json.dumps({"value": float(value), "seconds": seconds}))


# --- the set -------------------------------------------------------------------------------

def build_set(corpus, n_images, out):
    rows = list(csv.DictReader(open(os.path.join(
        corpus, "annotations", "vinbigdata", "train.csv"), newline="")))
    images, by_image = [], {}
    for r in rows:
        if r["image_id"] not in by_image:
            if len(images) == n_images:
                continue
            images.append(r["image_id"])
            by_image[r["image_id"]] = []
        by_image[r["image_id"]].append(r)
    rng = random.Random(20210104)
    gt, preds = [], []  # (image, class_id, [x1, y1, x2, y2]) and (image, class_id, score, box)
    for image in images:
        first = by_image[image][0]["rad_id"]
        for r in by_image[image]:
            c = int(r["class_id"])
            box = [0.0, 0.0, 1.0, 1.0] if r["x_min"] == "" else [
                float(r[k]) for k in ("x_min", "y_min", "x_max", "y_max")]
            gt.append((image, c, box, r))
            if r["rad_id"] == first and c != 14:
                w, h = box[2] - box[0], box[3] - box[1]
                j = [round(v + rng.uniform(-0.1, 0.1) * s)
                     for v, s in zip(box, (w, h, w, h))]
                j = [min(j[0], j[2]), min(j[1], j[3]), max(j[0], j[2]), max(j[1], j[3])]
                preds.append([image, c, None, [float(v) for v in j]])
        for _ in range(8):
            x, y = rng.randrange(0, 2500), rng.randrange(0, 2500)
            preds.append([image, rng.randrange(0, 14), None,
                          [float(x), float(y), float(x + rng.randrange(20, 600)),
                           float(y + rng.randrange(20, 600))]])
        preds.append([image, 14, None, [0.0, 0.0, 1.0, 1.0]])
    for p, k in zip(preds, rng.sample(range(1, 1 << 20), len(preds))):
        p[2] = k / float(1 << 20)
    files = {k: os.path.join(out, v) for k, v in {
        "gt": "gt.csv", "sub": "submission.csv", "ann": "ann.csv", "det": "det.csv",
        "coco_gt": "gt.json", "coco_res": "results.json"}.items()}
    with open(files["gt"], "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["image_id", "class_name", "class_id", "rad_id", "x_min", "y_min", "x_max", "y_max"])
        for _, _, _, r in gt:
            w.writerow([r[k] for k in ("image_id", "class_name", "class_id", "rad_id",
                                       "x_min", "y_min", "x_max", "y_max")])
    with open(files["sub"], "w", newline="") as f:
        f.write("image_id,PredictionString\n")
        per = {}
        for image, c, s, b in preds:
            per.setdefault(image, []).append(f"{c} {s!r} {b[0]:g} {b[1]:g} {b[2]:g} {b[3]:g}")
        for image in images:
            f.write(f"{image},{' '.join(per.get(image, []))}\n")
    with open(files["ann"], "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["ImageID", "LabelName", "XMin", "XMax", "YMin", "YMax"])
        for image, c, b, _ in gt:
            w.writerow([image, CLASSES[c], b[0], b[2], b[1], b[3]])
    with open(files["det"], "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["ImageID", "LabelName", "Conf", "XMin", "XMax", "YMin", "YMax"])
        for image, c, s, b in sorted(preds, key=lambda p: -p[2]):
            w.writerow([image, CLASSES[c], repr(s), b[0], b[2], b[1], b[3]])
    index = {image: i + 1 for i, image in enumerate(images)}
    anns = []
    for image, c, b, _ in gt:
        w_, h_ = b[2] - b[0], b[3] - b[1]
        anns.append({"id": len(anns) + 1, "image_id": index[image], "category_id": c + 1,
                     "bbox": [b[0], b[1], w_, h_], "area": w_ * h_, "iscrowd": 0})
    with open(files["coco_gt"], "w") as f:
        json.dump({"images": [{"id": i, "file_name": f"{image}.png", "width": 3000,
                               "height": 3000} for image, i in index.items()],
                   "categories": [{"id": k + 1, "name": n} for k, n in enumerate(CLASSES)],
                   "annotations": anns}, f)
    with open(files["coco_res"], "w") as f:
        json.dump([{"image_id": index[image], "category_id": c + 1,
                    "bbox": [b[0], b[1], b[2] - b[0], b[3] - b[1]], "score": s}
                   for image, c, s, b in preds], f)
    return files, len(images), len(gt), len(preds)


def times(x):
    return f"{x:.1f}x" if x < 10 else f"{x:.0f}x"


def pinned(cmd):
    return (["taskset", "-c", "0"] if shutil.which("taskset") else []) + cmd


def time_runs(cmd, runs, parse):
    """(median wall seconds, median in-process seconds or None, value) over `runs` runs."""
    walls, inner, value = [], [], None
    env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1",
               RAYON_NUM_THREADS="1")
    for _ in range(runs):
        t0 = time.perf_counter()
        p = subprocess.run(pinned(cmd), capture_output=True, text=True, env=env)
        walls.append(time.perf_counter() - t0)
        if p.returncode != 0:
            sys.exit(f"{' '.join(cmd)} failed:\n{p.stdout}\n{p.stderr}")
        v, s = parse(p.stdout)
        value = v
        if s is not None:
            inner.append(s)
    return statistics.median(walls), (statistics.median(inner) if inner else None), value


def main():
    if len(sys.argv) == 5 and sys.argv[1] == "--run":
        run_tool(*sys.argv[2:5])
        return
    ensure_venv()
    from importlib import metadata
    radlab, corpus, out_md = os.path.abspath(sys.argv[1]), sys.argv[2], sys.argv[3]
    n_images = int(os.environ.get("RADLAB_METRICS_BENCH_IMAGES", "3000"))
    runs = int(os.environ.get("RADLAB_METRICS_BENCH_RUNS", "5"))
    scratch = tempfile.mkdtemp(prefix="radlab-metrics-bench-")
    try:
        files, n_img, n_gt, n_pred = build_set(corpus, n_images, scratch)

        def radlab_value(key):
            def parse(out):
                v = json.loads(out)
                return (v["voc"]["map"] if key == "voc" else v["coco"]["stats"]["ap"]), None
            return parse

        def py_parse(out):
            v = json.loads(out.strip().splitlines()[-1])
            return v["value"], v["seconds"]

        me = [sys.executable, os.path.abspath(__file__), "--run"]
        results = {
            "radlab-voc": time_runs([radlab, "eval", "--gt", files["gt"], "--pred", files["sub"],
                                     "--metrics", "voc", "--json"], runs, radlab_value("voc")),
            "map-boxes": time_runs(me + ["map-boxes", files["ann"], files["det"]], runs, py_parse),
            "radlab-coco": time_runs([radlab, "eval", "--gt", files["gt"], "--pred", files["sub"],
                                      "--metrics", "coco", "--coco-iou", "0.4", "--json"], runs,
                                     radlab_value("coco")),
            "pycocotools": time_runs(me + ["pycocotools", files["coco_gt"], files["coco_res"]],
                                     runs, py_parse),
            "faster-coco-eval": time_runs(me + ["faster-coco-eval", files["coco_gt"],
                                                files["coco_res"]], runs, py_parse),
            "radlab-all": time_runs([radlab, "eval", "--gt", files["gt"], "--pred", files["sub"],
                                     "--json"], runs, radlab_value("voc")),
        }
        pairs = [("radlab-voc", "map-boxes"), ("radlab-coco", "pycocotools"),
                 ("radlab-coco", "faster-coco-eval")]
        for a, b in pairs:
            d = abs(results[a][2] - results[b][2])
            if d > 1e-9:
                sys.exit(f"{a} {results[a][2]!r} and {b} {results[b][2]!r} differ by {d}")
        versions = {k: metadata.version(k) for k in ("map-boxes", "pycocotools", "faster-coco-eval")}
        py_tools = ("map-boxes", "pycocotools", "faster-coco-eval")
        fastest = min(py_tools, key=lambda k: results[k][1])
        voc_t = results["radlab-voc"][0]
        label = {
            "radlab-voc": "`radlab eval --metrics voc`",
            "map-boxes": f"map-boxes {versions['map-boxes']}",
            "radlab-coco": "`radlab eval --metrics coco --coco-iou 0.4`",
            "pycocotools": f"pycocotools {versions['pycocotools']}",
            "faster-coco-eval": f"faster-coco-eval {versions['faster-coco-eval']}",
            "radlab-all": "`radlab eval` (VOC + COCO 0.50:0.95 + FROC + AUROC)",
        }
        what = {
            "radlab-voc": "VOC mAP, IoU > 0.4", "map-boxes": "VOC mAP, IoU >= 0.4",
            "radlab-coco": "COCO AP, IoU >= 0.4", "pycocotools": "COCO AP, IoU >= 0.4",
            "faster-coco-eval": "COCO AP, IoU >= 0.4", "radlab-all": "all of them",
        }
        mate = {"map-boxes": "radlab-voc", "pycocotools": "radlab-coco",
                "faster-coco-eval": "radlab-coco"}
        os.makedirs(os.path.dirname(os.path.abspath(out_md)), exist_ok=True)
        with open(out_md, "w") as f:
            f.write("## `radlab eval` against the Python evaluators\n\n")
            f.write(
                f"Written by `bench/metrics.py`. A {n_img:,}-image submission built from the real "
                f"train.csv: {n_gt:,} ground-truth rows (every reader), {n_pred:,} predictions "
                "(one reader's boxes jittered, 8 noise boxes and a No finding box per image, "
                "distinct scores). One core each (`taskset -c 0`), medians of "
                f"{runs} runs. Whole process: start, read, evaluate, print; in-process: the "
                "evaluation call with its file reading, imports excluded. The numbers of each "
                "radlab / Python pair agree to 1e-9 (checked).\n\n")
            f.write("| tool | computes | value | whole process (s) | in-process (s) | "
                    "radlab speed-up (whole / in-process) |\n|---|---|---|---|---|---|\n")
            for k in ("radlab-voc", "map-boxes", "radlab-coco", "pycocotools",
                      "faster-coco-eval", "radlab-all"):
                wall, inner, value = results[k]
                if k in mate:
                    r = results[mate[k]][0]
                    speed = f"{times(wall / r)} / {times(inner / r)}"
                else:
                    speed = "-"
                f.write(f"| {label[k]} | {what[k]} | {value:.6f} | {wall:.3f} | "
                        f"{'-' if inner is None else f'{inner:.3f}'} | {speed} |\n")
            ratio = results[fastest][1] / voc_t
            f.write(
                f"\nGoal (issue 4): mAP@0.4 at least 20x faster than the fastest Python "
                f"reference: {'met' if ratio >= 20 else 'not met'} — `radlab eval --metrics voc` "
                f"(whole process) is {times(ratio)} faster than {label[fastest]} (in-process "
                f"evaluation only, its most favourable time) and "
                f"{times(results[fastest][0] / voc_t)} faster comparing whole processes.\n")
        section = open(out_md).read()
        print(section)
        bench_md = os.path.join(ROOT, "BENCHMARKS.md")
        text = open(bench_md).read() if os.path.exists(bench_md) else "# Benchmarks\n"
        block = f"{BEGIN}\n{section.rstrip()}\n{END}"
        if BEGIN in text and END in text:
            text = text[:text.index(BEGIN)] + block + text[text.index(END) + len(END):]
        else:
            text = text.rstrip() + "\n\n" + block + "\n"
        with open(bench_md, "w") as f:
            f.write(text if text.endswith("\n") else text + "\n")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
