"""nbgrader preprocessors of the submission pipeline."""
