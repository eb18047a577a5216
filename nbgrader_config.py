"""nbgrader configuration for the course (see https://nbgrader.readthedocs.io/en/stable/configuration/)."""
import os

c = get_config()  # noqa: F821 - provided by traitlets

HERE = os.path.dirname(os.path.abspath(__file__))

c.CourseDirectory.root = HERE
c.CourseDirectory.course_id = "cnn-building-blocks"
c.CourseDirectory.source_directory = "notebooks"
c.CourseDirectory.release_directory = "release"
c.CourseDirectory.submitted_directory = "submitted"
c.CourseDirectory.autograded_directory = "autograded"
c.CourseDirectory.feedback_directory = "feedback"
# The gradebook: SQLite at <root>/gradebook.db unless CNN_COURSE_DB_URL (or `cnn-course --db-url`) names
# another SQLAlchemy URL that nbgrader accepts.
if os.environ.get("CNN_COURSE_DB_URL"):
    c.CourseDirectory.db_url = os.environ["CNN_COURSE_DB_URL"]
# Files that never go to students or back to them.
c.CourseDirectory.ignore = [".ipynb_checkpoints", "*.pyc", "__pycache__", "feedback", ".*"]

# The stub that replaces each solution region in the student edition.
c.ClearSolutions.code_stub = {"python": "# YOUR CODE HERE\nraise NotImplementedError()"}
c.ClearSolutions.text_stub = "YOUR ANSWER HERE"

# Grading: restore test cells a student deleted (plain nbgrader too).
c.OverwriteCells.add_missing_cells = True

# cnn-course autograde's settings (timeouts, budget, sandbox limits, output caps) and their
# defaults are in helpers/instructor/options.py (GradingOptions); set any of them here, e.g.
# c.GradingOptions.cell_timeout = 45
# and a command-line flag overrides it for one run.
