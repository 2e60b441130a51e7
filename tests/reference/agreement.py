#!/usr/bin/env python3
"""Reference agreement statistics for radlab's differential tests: scikit-learn's
cohen_kappa_score, statsmodels' fleiss_kappa, and the krippendorff package's alpha.

stdin: JSON {"cohen": [[a, b], ...], "fleiss": [[counts per category] per item],
             "kripp": [[rating or null per unit] per rater]}
stdout: JSON {"cohen": [...], "fleiss": float, "kripp": float}; null where a statistic is
undefined (NaN in the libraries).
"""
import json
import math
import sys

import krippendorff
import numpy as np
from sklearn.metrics import cohen_kappa_score
from statsmodels.stats.inter_rater import fleiss_kappa


def num(x):
    x = float(x)
    return None if math.isnan(x) else x


def main():
    q = json.load(sys.stdin)
    out = {
        "cohen": [num(cohen_kappa_score(a, b)) for a, b in q["cohen"]],
        "fleiss": num(fleiss_kappa(np.asarray(q["fleiss"], dtype=float), method="fleiss")),
        "kripp": num(krippendorff.alpha(
            reliability_data=np.asarray([[np.nan if v is None else v for v in row]
                                         for row in q["kripp"]], dtype=float),
            level_of_measurement="nominal")),
    }
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
