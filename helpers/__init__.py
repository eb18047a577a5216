"""Helpers for the course *CNN building blocks from scratch, in NumPy*.

Learner-facing modules (imported by every notebook):

- :mod:`helpers.checks`: ``check_function`` and friends, with messages that say what was
  expected, what was given, and where in the lesson to look;
- :mod:`helpers.plots`: figures drawn from real arrays;
- :mod:`helpers.data`: the photograph (Pillow), the handwritten digits and the reference cases (HDF5, h5py);
- :mod:`helpers.network`: the pinned parts of notebook 10's network (initial weights, training settings);
- :mod:`helpers.gradcheck`: numerical gradient checking with a pass/fail threshold;
- :mod:`helpers.speed`: FLOP counts, best-of timings and the GEMM peak, for notebook 09's race.

The instructor tools live in :mod:`helpers.instructor` (console script ``cnn-course``).
Nothing in this package implements a graded function.
"""
from .checks import (check_accuracy, check_case, check_equal, check_function, check_loops, check_not_mutated,
                     show_expected)
from .data import load_case, load_digits, load_photo, photo_batch, vertical_line_image
from .gradcheck import (check_activation_gradient, check_conv_gradients, check_gradient, check_layer_gradients,
                        check_network_gradients, check_pool_gradients, numerical_gradient, relative_error)

__all__ = [
    "check_accuracy", "check_case", "check_equal", "check_function", "check_loops", "check_not_mutated",
    "show_expected", "load_case", "load_digits", "load_photo", "photo_batch", "vertical_line_image",
    "check_activation_gradient", "check_conv_gradients", "check_gradient", "check_layer_gradients",
    "check_network_gradients", "check_pool_gradients", "numerical_gradient", "relative_error",
]
