"""The bootstrap interval is np.quantile's, bit for bit, without importing numpy.ma."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from common.ranking._quantiles import percentile_interval


@pytest.mark.parametrize("n", [1, 2, 3, 7, 40, 41, 999, 1000, 1001])
def test_the_interval_is_numpys_bit_for_bit(n: int) -> None:
    rng = np.random.default_rng(n)
    for trial in range(40):
        samples = rng.normal(size=(n, 9)) * 10.0 ** rng.integers(-3, 4) + 1000 * rng.normal()
        if trial % 4 == 0:
            samples[rng.integers(n), 2] = np.nan
        if trial % 5 == 0:
            samples[:, 6] = 1234.5
        if trial % 3 == 0:
            samples[: n // 2, 7] = samples[-1, 7]  # ties
        want = np.quantile(samples, [0.025, 0.975], axis=0)
        assert np.array_equal(percentile_interval(samples), want, equal_nan=True)


def test_it_leaves_numpy_ma_unimported() -> None:
    code = (
        "import sys, numpy as np; from common.ranking._quantiles import percentile_interval; "
        "percentile_interval(np.random.default_rng(0).normal(size=(1000, 5))); "
        "print('numpy.ma' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
