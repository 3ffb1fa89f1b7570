"""What a user's mistake becomes on the page: a gr.Error with the message, and one log line.

Gradio prints the whole traceback of every gr.Error raised in a handler unless told not to. An
empty prompt or a vote sent twice is the user's doing, not the server's: the console gets one
line saying what was refused, and the traceback is kept for errors that are the server's.
"""

from __future__ import annotations

import logging

import gradio as gr

log = logging.getLogger("gemma_arena.ui")


def log_to_console() -> None:
    """Show the app's own log lines (a refused action, one line each) on the server's console,
    and nothing more of other libraries' logs than before."""
    logger = logging.getLogger("gemma_arena")
    if not logger.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", "%H:%M:%S"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        logger.propagate = False


def user_error(exc: BaseException | str, *, action: str = "") -> gr.Error:
    """A gr.Error for a refused user action (`exc`'s message), logged as one line."""
    message = str(exc)
    log.info("refused %s: %s", action or "a request", message.splitlines()[0] if message else "")
    return gr.Error(message, print_exception=False)
