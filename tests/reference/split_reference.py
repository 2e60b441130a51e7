#!/usr/bin/env python3
"""Reference multi-label stratification for radlab's split tests: the
iterative-stratification package (Sechidis et al. 2011), MultilabelStratifiedKFold and
MultilabelStratifiedShuffleSplit, on a 0/1 label matrix.

stdin: JSON {"labels": [[0 or 1 per label] per image], "n_splits": k, "test_size": t,
             "seeds": [s, ...]}
stdout: JSON {"kfold": [[fold of each image] per seed],
              "shuffle_split": [[1 if the image is in test else 0] per seed]}
"""
import json
import sys

import numpy as np
from iterstrat.ml_stratifiers import MultilabelStratifiedKFold, MultilabelStratifiedShuffleSplit


def main():
    q = json.load(sys.stdin)
    y = np.array(q["labels"], dtype=int)
    x = np.zeros((y.shape[0], 1))
    out = {"kfold": [], "shuffle_split": []}
    for seed in q["seeds"]:
        folds = np.full(y.shape[0], -1, dtype=int)
        mskf = MultilabelStratifiedKFold(n_splits=q["n_splits"], shuffle=True, random_state=seed)
        for j, (_, test) in enumerate(mskf.split(x, y)):
            folds[test] = j
        out["kfold"].append([int(f) for f in folds])
        msss = MultilabelStratifiedShuffleSplit(n_splits=1, test_size=q["test_size"],
                                                random_state=seed)
        _, test = next(msss.split(x, y))
        in_test = np.zeros(y.shape[0], dtype=int)
        in_test[test] = 1
        out["shuffle_split"].append([int(v) for v in in_test])
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
