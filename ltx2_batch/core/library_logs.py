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
)  # fmt: skip
_quiet = False  # set by quiet_libraries: the policy `after_import` applies again


def quiet_env(verbose: bool) -> dict[str, str]:
    """Environment variables that keep library chatter out of a child process (empty when verbose)."""
    if verbose:
        return {}
    # transformers reads its verbosity once, when its logging is first configured: set it for every process
    # (and Ray's C++ side logs its retries while joining a cluster at WARNING)
    return {"TRANSFORMERS_VERBOSITY": "error", "PYTHONWARNINGS": "ignore", "RAY_BACKEND_LOG_LEVEL": "error"}


def quiet_libraries(verbose: bool) -> None:
    """Apply the policy to this process (the CLI's edge calls it once, before any model work)."""
    global _quiet  # noqa: PLW0603 - one process-wide policy, set once at the CLI's edge
    if verbose:
        logging.getLogger().setLevel(logging.INFO)
        return
    _quiet = True
    for key, value in quiet_env(verbose).items():
        os.environ.setdefault(key, value)
    logging.getLogger().setLevel(logging.WARNING)  # the root handler: libraries that log through it
    _library_loggers_to_error()
    logging.getLogger("ltx2_batch").setLevel(logging.INFO)
    warnings.filterwarnings("ignore")
    warnings.filterwarnings("default", module=r"ltx2_batch(\.|$)")


def after_import() -> None:
    """Apply the policy again once torch is imported: torch sets up its own logging when it loads (its
    `torch` logger back to WARNING, with its own handler), which would let `torch.utils._pytree` print
    warnings when an extra like torchao registers its types. A no-op unless quiet_libraries ran quiet."""
    if _quiet:
        _library_loggers_to_error()


def _library_loggers_to_error() -> None:
    for name in _LIBRARY_LOGGERS:
        logging.getLogger(name).setLevel(logging.ERROR)
