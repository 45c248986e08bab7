"""Library chatter on the console: silenced unless `verbose=true`.

A run's console is for our progress and errors. The libraries under us talk too: transformers warns that a
"slow image processor" is used, ltx-core/ltx-pipelines log INFO lines per model build, torch and friends
raise UserWarnings. Unless verbose, those are dropped in this process (loggers below WARNING for our own,
ERROR for libraries; Python warnings from outside ltx2_batch ignored) and in the processes it starts
(`quiet_env`, for Ray workers). Must not: touch our own `ltx2_batch` logger's messages or stderr errors.
"""

from __future__ import annotations

import logging
import os
import warnings

# torchao (the fp8 extra) is imported by transformers whenever it is installed, and logs WARNINGs about its
# optional CUDA kernels on a CPU torch
_LIBRARY_LOGGERS = (
    "transformers", "ltx_core", "ltx_pipelines", "torch", "torchao", "PIL", "urllib3", "filelock",
)


def quiet_env(verbose: bool) -> dict[str, str]:
    """Environment variables that keep library chatter out of a child process (empty when verbose)."""
    if verbose:
        return {}
    # transformers reads its verbosity once, when its logging is first configured: set it for every process
    # (and Ray's C++ side logs its retries while joining a cluster at WARNING)
    return {"TRANSFORMERS_VERBOSITY": "error", "PYTHONWARNINGS": "ignore", "RAY_BACKEND_LOG_LEVEL": "error"}


def quiet_libraries(verbose: bool) -> None:
    """Apply the policy to this process (the CLI's edge calls it once, before any model work)."""
    if verbose:
        logging.getLogger().setLevel(logging.INFO)
        return
    for key, value in quiet_env(verbose).items():
        os.environ.setdefault(key, value)
    logging.getLogger().setLevel(logging.WARNING)  # the root handler: libraries that log through it
    for name in _LIBRARY_LOGGERS:
        logging.getLogger(name).setLevel(logging.ERROR)
    logging.getLogger("ltx2_batch").setLevel(logging.INFO)
    warnings.filterwarnings("ignore")
    warnings.filterwarnings("default", module=r"ltx2_batch(\.|$)")
