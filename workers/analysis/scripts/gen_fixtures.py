#!/usr/bin/env python3
"""Generate the golden fixtures of cpo-analysis with the reference implementations.

Every expected number comes from statsmodels, scipy or GrowthBook's gbstats, never
from a re-implementation: the Rust crate must match them to 1e-6.

    pip install statsmodels scipy gbstats
    python3 workers/analysis/scripts/gen_fixtures.py

Writes fixtures/summary_cases.json, fixtures/cuped_cases.json and
fixtures/multiple_cases.json beside this script's parent directory.
"""

import importlib.metadata
import json
import math
from pathlib import Path

import numpy as np
import scipy
import statsmodels
from scipy import optimize, stats
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.proportion import (
    confint_proportions_2indep,
    proportion_confint,
    proportions_ztest,
    samplesize_proportions_2indep_onetail,
)

from gbstats.bayesian.tests import EffectBayesianABTest, EffectBayesianConfig
from gbstats.frequentist.tests import (
    SequentialConfig,
    SequentialTwoSidedTTest,
    frequentist_diff,
    frequentist_variance,
)
from gbstats.models.statistics import (
    ProportionStatistic,
    RegressionAdjustedStatistic,
    SampleMeanStatistic,
)
from gbstats.utils import check_srm

POWER = 0.8
TUNING = 5000.0
FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"


def arm(name, users, successes):
    return {"name": name, "users": users, "successes": successes}


# (name, alpha, expected_weights or None, target_relative_lift or None, arms)
CASES = [
    ("prototype 19/62 vs 24/62", 0.05, None, 0.26,
     [arm("control", 62, 19), arm("friendly", 62, 24)]),
    ("prototype sized for +10%", 0.05, None, 0.10,
     [arm("control", 62, 19), arm("friendly", 62, 24)]),
    ("small samples", 0.05, None, None,
     [arm("control", 10, 3), arm("urgent", 9, 5)]),
    ("tiny samples", 0.05, None, 0.5,
     [arm("control", 5, 1), arm("urgent", 5, 4)]),
    ("zero successes in treatment", 0.05, None, 0.2,
     [arm("control", 50, 5), arm("urgent", 50, 0)]),
    ("zero successes in control", 0.05, None, 0.1,
     [arm("control", 40, 0), arm("friendly", 40, 3)]),
    ("all successes in treatment", 0.05, None, None,
     [arm("control", 30, 25), arm("friendly", 30, 30)]),
    ("unequal arm sizes", 0.05, None, 0.1,
     [arm("control", 1000, 100), arm("friendly", 400, 52)]),
    ("unequal sizes with matching weights", 0.05, [2, 1], 0.1,
     [arm("control", 2000, 300), arm("friendly", 1000, 170)]),
    ("three treatments, equal arms", 0.05, None, 0.1,
     [arm("control", 500, 100), arm("urgent", 500, 120),
      arm("informational", 500, 95), arm("friendly", 500, 140)]),
    ("four treatments, unequal arms and weights", 0.05, [0.3, 0.2, 0.2, 0.1, 0.2], 0.1,
     [arm("control", 1200, 240), arm("a", 800, 180), arm("b", 1000, 205),
      arm("c", 600, 150), arm("d", 900, 170)]),
    ("large, small true lift", 0.05, None, 0.02,
     [arm("control", 100000, 22000), arm("friendly", 100000, 22600)]),
    ("very large, clear lift", 0.05, None, 0.01,
     [arm("control", 500000, 110000), arm("friendly", 500000, 112500)]),
    ("sample ratio mismatch", 0.05, None, 0.1,
     [arm("control", 5000, 1000), arm("friendly", 5600, 1150)]),
    ("alpha 0.01, two treatments", 0.01, None, 0.1,
     [arm("control", 3000, 600), arm("urgent", 3000, 690), arm("friendly", 3000, 640)]),
    ("alpha 0.10, small arms", 0.10, None, 0.3,
     [arm("control", 80, 12), arm("friendly", 75, 20)]),
    ("rare conversions", 0.05, None, 0.2,
     [arm("control", 20000, 60), arm("urgent", 20000, 85), arm("friendly", 20000, 70)]),
    ("negative effect", 0.05, None, 0.05,
     [arm("control", 2500, 500), arm("urgent", 2500, 420)]),
    ("three treatments, one without successes", 0.05, None, 0.25,
     [arm("control", 200, 20), arm("a", 200, 0), arm("b", 200, 35), arm("c", 200, 22)]),
    ("one user per arm", 0.05, None, 0.1,
     [arm("control", 1, 1), arm("friendly", 1, 0)]),
    ("rates near one", 0.05, None, 0.02,
     [arm("control", 400, 380), arm("friendly", 400, 392)]),
    ("moderate arms, +15% target", 0.05, None, 0.15,
     [arm("control", 1500, 330), arm("friendly", 1500, 345)]),
    ("weighted three arms", 0.05, [0.5, 0.25, 0.25], 0.1,
     [arm("control", 2000, 410), arm("urgent", 1000, 230), arm("friendly", 1000, 198)]),
]


def f(x):
    """Plain float for JSON; numpy scalars and NaN are not allowed through."""
    x = float(x)
    if not math.isfinite(x):
        raise ValueError(f"non-finite value {x}")
    return x


def gb_result_or_none(result):
    return None if result.error_message else result


def mde(p0, n_treatment, n_control, alpha):
    """Smallest relative lift the arms detect: the root of nobs1(lift) = n_treatment."""
    if p0 <= 0 or p0 >= 1:
        return None
    ratio = n_control / n_treatment

    def excess(lift):
        n = samplesize_proportions_2indep_onetail(
            p0 * lift, p0, POWER, ratio=ratio, alpha=alpha, alternative="two-sided")
        return n - n_treatment

    high = (1 - p0) / p0 * (1 - 1e-12)
    if excess(high) > 0:
        return None
    return f(optimize.brentq(excess, 1e-9, high, xtol=1e-15, rtol=1e-15, maxiter=500))


def comparison(control, treatment, alpha):
    x0, n0 = control["successes"], control["users"]
    x1, n1 = treatment["successes"], treatment["users"]
    p0, p1 = x0 / n0, x1 / n1
    z = stats.norm.isf(alpha / 2)

    _, p_z = proportions_ztest([x1, x0], [n1, n0])
    wald = confint_proportions_2indep(x1, n1, x0, n0, method="wald", compare="diff", alpha=alpha)
    newcombe = confint_proportions_2indep(x1, n1, x0, n0, method="newcomb", compare="diff", alpha=alpha)
    wilson = proportion_confint(x1, n1, alpha=alpha, method="wilson")

    stat_a = ProportionStatistic(n=n0, sum=x0)
    stat_b = ProportionStatistic(n=n1, sum=x1)
    rel_lift = rel_ci = rel_p = ctw = None
    if p0 > 0:
        rel_lift = f(frequentist_diff(p0, p1, True))
    bayes = gb_result_or_none(EffectBayesianABTest(stat_a, stat_b, EffectBayesianConfig(alpha=alpha)).compute_result())
    if bayes is not None:
        # gbstats' frequentist moments, with a normal quantile instead of Welch t.
        var = frequentist_variance(stat_a.variance, p0, n0, stat_b.variance, p1, n1, True)
        se = math.sqrt(var)
        rel_ci = [f(rel_lift - z * se), f(rel_lift + z * se)]
        rel_p = f(2 * stats.norm.sf(abs(rel_lift / se)))
        ctw = f(bayes.chance_to_win)
        assert abs(bayes.expected - rel_lift) < 1e-12
        assert abs(bayes.uplift.stddev - se) < 1e-12

    seq_rel = gb_result_or_none(SequentialTwoSidedTTest(
        stat_a, stat_b, SequentialConfig(alpha=alpha, sequential_tuning_parameter=TUNING)).compute_result())
    seq_abs = gb_result_or_none(SequentialTwoSidedTTest(
        stat_a, stat_b, SequentialConfig(alpha=alpha, sequential_tuning_parameter=TUNING,
                                         difference_type="absolute")).compute_result())
    return {
        "arm": treatment["name"],
        "users": n1,
        "successes": x1,
        "rate": f(p1),
        "abs_diff": f(p1 - p0),
        "abs_ci": [f(wald[0]), f(wald[1])],
        "abs_p_value": f(p_z) if math.isfinite(p_z) else 1.0,
        "newcombe_ci": [f(newcombe[0]), f(newcombe[1])],
        "wilson_ci": [f(wilson[0]), f(wilson[1])],
        "rel_lift": rel_lift,
        "rel_ci": rel_ci,
        "rel_p_value": rel_p,
        "chance_to_win": ctw,
        "seq_rel_ci": None if seq_rel is None else [f(seq_rel.ci[0]), f(seq_rel.ci[1])],
        "seq_abs_ci": None if seq_abs is None else [f(seq_abs.ci[0]), f(seq_abs.ci[1])],
        "minimum_detectable_lift": mde(p0, n1, n0, alpha),
    }


def summary_case(name, alpha, weights, target, arms):
    control, treatments = arms[0], arms[1:]
    comparisons = [comparison(control, t, alpha) for t in treatments]
    raw = [c["abs_p_value"] for c in comparisons]
    holm = multipletests(raw, method="holm")[1]
    bh = multipletests(raw, method="fdr_bh")[1]
    for c, h, b in zip(comparisons, holm, bh):
        c["p_value_holm"] = f(h)
        c["p_value_bh"] = f(b)
        c["significant"] = bool(h < alpha)

    users = [a["users"] for a in arms]
    w = weights or [1.0] * len(arms)
    expected = np.array(w, dtype=float) / sum(w) * sum(users)
    srm = stats.chisquare(users, f_exp=expected).pvalue
    assert abs(srm - check_srm(users, w)) < 1e-12, "scipy and gbstats disagree on SRM"

    p0 = control["successes"] / control["users"]
    expected_doc = {"srm_p_value": f(srm), "comparisons": comparisons}
    if target is not None:
        if 0 < p0 and 0 < p0 * (1 + target) < 1 and p0 < 1:
            n = samplesize_proportions_2indep_onetail(p0 * target, p0, POWER, ratio=1, alpha=alpha,
                                                      alternative="two-sided")
            expected_doc["required_users_per_arm"] = int(math.ceil(n))
            expected_doc["required_users_per_arm_exact"] = f(n)
        else:
            expected_doc["required_users_per_arm"] = None
    mdes = [c["minimum_detectable_lift"] for c in comparisons]
    expected_doc["minimum_detectable_lift"] = (
        None if p0 <= 0 or any(m is None for m in mdes) else max(mdes))

    summary_input = {"alpha": alpha, "arms": arms}
    if weights is not None:
        summary_input["expected_weights"] = weights
    if target is not None:
        summary_input["target_relative_lift"] = target
    return {"name": name, "input": summary_input, "expected": expected_doc}


def cuped_cases():
    """Per-arm sufficient statistics of simulated customers and gbstats' CUPED results."""
    rng = np.random.default_rng(20240607)
    cases = []
    for name, n_a, n_b, uplift, alpha in [
        ("strong covariate, equal arms", 4000, 4000, 0.03, 0.05),
        ("unequal arms", 3000, 1200, 0.05, 0.05),
        ("no effect", 2500, 2500, 0.0, 0.05),
        ("small arms", 60, 55, 0.1, 0.1),
    ]:
        arms = []
        for n, lift in ((n_a, 0.0), (n_b, uplift)):
            x = rng.uniform(0.0, 0.8, size=n)
            y = (rng.uniform(size=n) < np.clip(x + lift, 0, 1)).astype(float)
            arms.append({"n": int(n), "sum_y": f(y.sum()), "sum_x": f(x.sum()),
                         "sum_x2": f((x * x).sum()), "sum_xy": f((x * y).sum())})

        def stat(a):
            return RegressionAdjustedStatistic(
                n=a["n"], post_statistic=ProportionStatistic(n=a["n"], sum=a["sum_y"]),
                pre_statistic=SampleMeanStatistic(n=a["n"], sum=a["sum_x"], sum_squares=a["sum_x2"]),
                post_pre_sum_of_products=a["sum_xy"], theta=0)

        expected = {}
        z = stats.norm.isf(alpha / 2)
        for kind, relative in (("absolute", False), ("relative", True)):
            a, b = stat(arms[0]), stat(arms[1])
            test = SequentialTwoSidedTTest(a, b, SequentialConfig(
                alpha=alpha, difference_type=kind))  # only for theta and the moments
            est = test.point_estimate
            var = test.variance
            se = math.sqrt(var)
            expected[kind] = {"estimate": f(est), "ci": [f(est - z * se), f(est + z * se)],
                              "p_value": f(2 * stats.norm.sf(abs(est / se)))}
            expected["theta"] = f(test.stat_a.theta)
        cases.append({"name": name, "alpha": alpha, "control": arms[0], "treatment": arms[1],
                      "expected": expected})
    return cases


def multiple_cases():
    rng = np.random.default_rng(7)
    cases = []
    for m in (1, 2, 3, 5, 8):
        for _ in range(3):
            p = rng.uniform(0, 0.2, size=m) ** rng.uniform(0.5, 2)
            cases.append({"p_values": [f(v) for v in p],
                          "holm": [f(v) for v in multipletests(p, method="holm")[1]],
                          "bh": [f(v) for v in multipletests(p, method="fdr_bh")[1]]})
    cases.append({"p_values": [0.01, 0.01, 0.04, 0.04],
                  "holm": [f(v) for v in multipletests([0.01, 0.01, 0.04, 0.04], method="holm")[1]],
                  "bh": [f(v) for v in multipletests([0.01, 0.01, 0.04, 0.04], method="fdr_bh")[1]]})
    return cases


def write(name, cases):
    document = {
        "generated_by": "scripts/gen_fixtures.py",
        "versions": {
            "statsmodels": statsmodels.__version__,
            "scipy": scipy.__version__,
            "gbstats": importlib.metadata.version("gbstats"),
            "numpy": np.__version__,
        },
        "power": POWER,
        "sequential_tuning": TUNING,
        "cases": cases,
    }
    path = FIXTURES / name
    path.write_text(json.dumps(document, indent=1) + "\n")
    print(f"wrote {len(cases)} cases to {path.name}")


def main():
    FIXTURES.mkdir(exist_ok=True)
    write("summary_cases.json", [summary_case(*case) for case in CASES])
    write("cuped_cases.json", cuped_cases())
    write("multiple_cases.json", multiple_cases())


if __name__ == "__main__":
    main()
