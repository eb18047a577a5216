"""helpers.speed and the race's figure (notebook 09): the FLOP count, the race's agreement check, grading mode."""
from __future__ import annotations

import numpy as np
import pytest

from helpers import plots, speed


def test_conv_flops_is_the_lesson_formula():
    assert speed.conv_flops((100, 31, 31, 3), (3, 3, 3, 25), {"pad": 1, "stride": 2}) == 2 * 100 * 16 * 16 * 9 * 3 * 25
    assert speed.conv_flops((64, 32, 32, 64), (3, 3, 64, 64), {"pad": 1, "stride": 1}) == 4_831_838_208
    with pytest.raises(ValueError, match=r"A_shape must be \(m, n_H_prev, n_W_prev, n_C_prev\)"):
        speed.conv_flops((31, 31, 3), (3, 3, 3, 25), {"pad": 1, "stride": 2})


def test_race_times_agreeing_contestants_and_refuses_different_answers(reference, capsys):
    rng = np.random.default_rng(0)
    A, W, b = rng.standard_normal((2, 7, 6, 3)), rng.standard_normal((3, 3, 3, 4)), rng.standard_normal((1, 1, 1, 4))
    hp = {"pad": 1, "stride": 2}
    loops = (reference["conv_forward"], reference["conv_backward"])
    fast = (reference["conv_forward_fast"], reference["conv_backward_fast"])
    results = speed.race({"loops": loops, "fast": fast}, A, W, b, hp, repeat=2)
    assert set(results) == {"loops", "fast"} and all(t["forward"] > 0 and t["backward"] > 0 for t in results.values())
    assert "forward" in capsys.readouterr().out

    def no_bias(A_prev, W, b, hparameters):
        return fast[0](A_prev, W, np.zeros_like(b), hparameters)[0], (A_prev, W, b, hparameters)

    with pytest.raises(AssertionError, match="disagree on Z"):
        speed.race({"loops": loops, "wrong": (no_bias, fast[1])}, A, W, b, hp, repeat=1)


def test_race_and_its_figure_return_at_once_while_grading(monkeypatch):
    def boom(*args):
        raise RuntimeError("a demonstration ran while grading")

    monkeypatch.setenv("CNN_COURSE_GRADING", "1")
    assert speed.race({"x": (boom, boom)}, np.zeros((1, 3, 3, 1)), np.zeros((1, 1, 1, 1)), np.zeros((1, 1, 1, 1)),
                      {"pad": 0, "stride": 1}) is None
    assert plots.show_race({"x": {"forward": 1.0, "backward": 1.0}}, 1e6, 10.0) is None


def test_show_race_and_show_im2col_draw_and_validate():
    fig = plots.show_race({"loops": {"forward": 2.0, "backward": 4.0}, "fast": {"forward": 2e-3, "backward": 5e-3}},
                          3.5e7, peak=50.0)
    assert len(fig.axes) == 2 and fig.axes[0].get_xscale() == "log"
    with pytest.raises(ValueError, match="must hold positive 'forward' and 'backward' times"):
        plots.show_race({"loops": {"forward": 0.0}}, 1e6)
    rng = np.random.default_rng(1)
    fig = plots.show_im2col(rng.standard_normal((1, 5, 5, 2)), rng.standard_normal((3, 3, 2, 3)), stride=2)
    assert len(fig.axes) >= 4
    with pytest.raises(ValueError, match="A_prev has 3 channels but W expects n_C_prev = 2"):
        plots.show_im2col(np.zeros((1, 5, 5, 3)), np.zeros((3, 3, 2, 3)))
