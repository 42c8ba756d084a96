"""The one-line error of a data set without ground-truth factors names the fix that exists now:
every data set that has factors (the study's sets, not only dSprites), or, for an image folder,
the factors.csv that gives it some."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from bvae_tui.datasets.errors import DataError
from bvae_tui.datasets.registry import factors_fix
from bvae_tui.engine.errors import ConfigError


def _check(message: str, folder: bool) -> None:
    assert "\n" not in message and "no ground-truth factors" in message
    if folder:
        assert "factors.csv beside its images" in message, message
    else:
        for name in ("shapes3d", "smallnorb", "cars3d", "mpi3d-toy", "color-dsprites",
                     "folder:PATH with a factors.csv"):
            assert name in message, message
        assert "celeba" not in message.split("no ground-truth factors", 1)[1]


@pytest.mark.parametrize("name, folder", [("celeba", False), ("folder:/tmp/pics", True)])
def test_eval_explore_and_metrics_name_the_fix(name, folder):
    from bvae_tui.engine.analysis.evaluate import require_factors
    from bvae_tui.engine.analysis.explore import need_factors
    from bvae_tui.engine.analysis.metrics.ground_truth import GroundTruth

    if not folder:
        with pytest.raises(DataError) as info:
            require_factors(name, "run r1")
        _check(str(info.value), folder)
    bare = SimpleNamespace(name=name, factor_sizes=(), classes=None)
    with pytest.raises(ConfigError) as info:
        need_factors(bare, "--respond")
    _check(str(info.value), folder)
    with pytest.raises(DataError) as info:
        GroundTruth(bare)
    _check(str(info.value), folder)


def test_factors_fix_lists_only_sets_with_factors():
    text = factors_fix("chairs")
    assert "chairs" not in text and "celeba" not in text and "dsprites-mini" in text
