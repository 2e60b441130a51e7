#!/usr/bin/env python3
"""Reference AUROC for radlab's differential tests: scikit-learn's roc_auc_score, and
DeLong's variance by Sun and Xu's fast midrank algorithm (2014), written here from the
paper with numpy and scipy's rankdata.

stdin: JSON {"scores": [...], "truth": [0/1...]}
stdout: JSON {"auc": sklearn AUROC, "variance": DeLong variance}
"""
import json
import sys

import numpy as np
from scipy.stats import rankdata
from sklearn.metrics import roc_auc_score


def delong_variance(scores, truth):
    pos = scores[truth == 1]
    neg = scores[truth == 0]
    m, n = len(pos), len(neg)
    tx = rankdata(pos)
    ty = rankdata(neg)
    tz = rankdata(np.concatenate([pos, neg]))
    v01 = (tz[:m] - tx) / n
    v10 = 1.0 - (tz[m:] - ty) / m
    return float(np.var(v01, ddof=1) / m + np.var(v10, ddof=1) / n)


def main():
    q = json.load(sys.stdin)
    scores = np.asarray(q["scores"], dtype=float)
    truth = np.asarray(q["truth"], dtype=int)
    json.dump({"auc": float(roc_auc_score(truth, scores)),
               "variance": delong_variance(scores, truth)}, sys.stdout)


if __name__ == "__main__":
    main()
