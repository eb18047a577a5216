"""The pinned parts of notebook 10's network: its shape, its initial weights and its training settings.

The learner writes the network's forward and backward passes, the SGD step and the training loop
(notebook 10). What is pinned here is what every learner and the grader must share so that a
correct solution always gives the same network: the initial weights (:func:`init_params`, seeded),
the training settings (:data:`TRAINING`: epochs, batch size, learning rate, momentum, seed) and the
test accuracy that a correct solution always reaches (:data:`ACCURACY_THRESHOLD`). The batch order
is part of the contract of ``train_cnn``: ``rng = np.random.default_rng(seed)``, then, every epoch,
``perm = rng.permutation(m)`` and the batches ``perm[k:k + batch_size]`` for k = 0, batch_size, ...

This module holds no implementation of any graded function. Introduced in notebook 10.
"""
from __future__ import annotations

import numpy as np

from .data import load_digits

#: conv (16 filters 3 x 3, pad 1) -> ReLU -> max pool 2 -> conv (32 filters 3 x 3, pad 1) -> ReLU
#: -> max pool 2 -> flatten -> dense 10 -> softmax, on 8 x 8 x 1 digits.
ARCHITECTURE = (
    ("conv1", "16 filters 3 x 3 x 1, stride 1, pad 1", (8, 8, 16)),
    ("relu1", "ReLU", (8, 8, 16)),
    ("pool1", "max pool f 2, stride 2", (4, 4, 16)),
    ("conv2", "32 filters 3 x 3 x 16, stride 1, pad 1", (4, 4, 32)),
    ("relu2", "ReLU", (4, 4, 32)),
    ("pool2", "max pool f 2, stride 2", (2, 2, 32)),
    ("flatten", "(m, 2, 2, 32) -> (m, 128), row-major (NumPy's reshape)", (128,)),
    ("dense", "128 -> 10", (10,)),
)
CONV_HPARAMETERS = {"stride": 1, "pad": 1}
POOL_HPARAMETERS = {"f": 2, "stride": 2}
FILTERS = (16, 32)
N_CLASSES = 10

#: The training run that is graded: ``train_cnn(X_train, y_train, init_params(0), **TRAINING)``.
TRAINING = {"num_epochs": 10, "batch_size": 32, "learning_rate": 0.05, "beta": 0.9, "seed": 0}
#: A correct network trained with TRAINING from init_params(0) reaches this test accuracy (the
#: reference reaches 98.3 %; it stays above 98 % with other seeds and with rounding differences).
ACCURACY_THRESHOLD = 0.97


def param_shapes(filters: tuple[int, int] = FILTERS, n_classes: int = N_CLASSES) -> dict:
    """The shape of every parameter, in the course's layouts (weights (f, f, n_C_prev, n_C), biases
    (1, 1, 1, n_C); the dense layer's W (n_in, n_out) and b (1, n_out))."""
    c1, c2 = filters
    return {"W1": (3, 3, 1, c1), "b1": (1, 1, 1, c1), "W2": (3, 3, c1, c2), "b2": (1, 1, 1, c2),
            "W3": (4 * c2, n_classes), "b3": (1, n_classes)}


def init_params(seed: int = 0) -> dict:
    """The initial parameters of the network, the same for every learner: He initialisation.

    Each weight is drawn from ``np.random.default_rng(seed).standard_normal`` (in the order W1, W2,
    W3) times ``sqrt(2 / fan_in)`` for the two convolutions (fan_in = f * f * n_C_prev, because a
    ReLU follows them) and ``sqrt(1 / fan_in)`` for the dense layer; every bias starts at 0.
    Returns a new dict ``{"W1", "b1", "W2", "b2", "W3", "b3"}`` of float64 arrays.
    """
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise TypeError(f"init_params: seed must be an int; got {type(seed).__name__}")
    rng = np.random.default_rng(int(seed))
    shapes = param_shapes()
    params = {}
    for layer, gain in (("1", 2.0), ("2", 2.0), ("3", 1.0)):
        shape = shapes["W" + layer]
        fan_in = int(np.prod(shape[:-1]))
        params["W" + layer] = rng.standard_normal(shape) * np.sqrt(gain / fan_in)
        params["b" + layer] = np.zeros(shapes["b" + layer])
    return {k: params[k] for k in shapes}


def training_args(seed: int | None = None) -> tuple:
    """The positional arguments of the graded training run: ``(X_train, y_train, init_params(seed),
    num_epochs, batch_size, learning_rate, beta, seed)`` with the values of :data:`TRAINING`."""
    X_train, y_train, _, _ = load_digits()
    t = dict(TRAINING)
    if seed is not None:
        t["seed"] = int(seed)
    return (X_train, y_train, init_params(t["seed"]), t["num_epochs"], t["batch_size"], t["learning_rate"],
            t["beta"], t["seed"])
