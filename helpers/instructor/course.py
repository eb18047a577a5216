"""The course's table of contents: assignments, their notebooks, and the functions they grade."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Assignment:
    id: str          # folder under notebooks/, and nbgrader's assignment id
    notebook: str    # notebook name without .ipynb
    title: str
    functions: tuple[str, ...]

    @property
    def source(self) -> Path:
        return self.source_at(ROOT)

    def source_at(self, root: Path | str, source_directory: str = "notebooks") -> Path:
        """The source notebook in the course directory ``root``."""
        return Path(root) / source_directory / self.id / f"{self.notebook}.ipynb"


ASSIGNMENTS: tuple[Assignment, ...] = (
    Assignment("01_zero_padding", "zero_padding", "Images as arrays, and zero padding", ("zero_pad",)),
    Assignment("02_conv_single_step", "conv_single_step", "One step of convolution", ("conv_single_step",)),
    Assignment("03_conv_forward", "conv_forward", "Convolution forward", ("conv_forward",)),
    Assignment("04_conv_backward", "conv_backward", "Convolution backward", ("conv_backward",)),
    Assignment("05_pool_forward", "pool_forward", "Pooling forward: max and average", ("pool_forward",)),
    Assignment("06_pool_backward", "pool_backward", "Pooling backward",
               ("create_mask_from_window", "distribute_value", "pool_backward")),
    Assignment("07_relu", "relu", "ReLU forward and backward", ("relu", "relu_backward")),
    Assignment("08_sobel", "sobel", "A Sobel filter on a real photograph",
               ("to_grayscale", "sobel_kernels", "filter2d", "sobel_edges")),
)

BY_ID = {a.id: a for a in ASSIGNMENTS}
GRADED_FUNCTIONS = {f: a for a in ASSIGNMENTS for f in a.functions}


def get(assignment_id: str) -> Assignment:
    """The assignment with this id, or a ValueError that lists the known ids."""
    try:
        return BY_ID[assignment_id]
    except KeyError:
        raise ValueError(f"unknown assignment {assignment_id!r}; known: {', '.join(BY_ID)}") from None
