"""Look at a run: ``report.html`` (one self-contained page) and runs compared side by side.

The page is drawn from what a run folder holds and from a
:class:`Predictions` of its evaluation set, which the caller computes (the
``report`` command and the end of training do; see
:mod:`hapi_runner.report.evaluation`). This package itself needs numpy,
matplotlib and Pillow, not Paddle.
"""

from .build import REPORT, build_report
from .compare import compare_runs, format_comparison
from .predictions import Predictions

__all__ = ["REPORT", "Predictions", "build_report", "compare_runs", "format_comparison"]
