#!/usr/bin/env python3
"""Reference F1 between readers' boxes for radlab's differential tests, written from the
definition in docs/agreement.md: for every image and every pair of its readers, the boxes
of one label are matched one to one, the pairs of highest IoU first (IoU above the
threshold); matches and box counts are summed over images and pairs.

stdin: JSON {"iou": 0.4, "labels": [...], "rows": [[image, reader, label, x1, y1, x2, y2], ...]}
stdout: JSON {label: [boxes, matches, compared]}
"""
import itertools
import json
import sys


def iou(a, b):
    iw = max(min(a[2], b[2]) - max(a[0], b[0]), 0.0)
    ih = max(min(a[3], b[3]) - max(a[1], b[1]), 0.0)
    inter = iw * ih
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def matches(xs, ys, thr):
    pairs = sorted(((iou(x, y), i, j) for i, x in enumerate(xs) for j, y in enumerate(ys)
                    if iou(x, y) > thr), key=lambda p: (-p[0], p[1], p[2]))
    ua, ub, n = set(), set(), 0
    for _, i, j in pairs:
        if i not in ua and j not in ub:
            ua.add(i)
            ub.add(j)
            n += 1
    return n


def main():
    q = json.load(sys.stdin)
    images = {}
    for image, reader, label, *box in q["rows"]:
        images.setdefault(image, {}).setdefault(reader, []).append((label, box))
    out = {}
    for label in q["labels"]:
        boxes = m = compared = 0
        for readers in images.values():
            sets = [[b for lab, b in rows if lab == label and b[0] is not None]
                    for _, rows in sorted(readers.items())]
            boxes += sum(len(s) for s in sets)
            for xs, ys in itertools.combinations(sets, 2):
                if xs or ys:
                    m += matches(xs, ys, q["iou"])
                    compared += len(xs) + len(ys)
        out[label] = [boxes, m, compared]
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
