"""Stopping partitions embedded in threads of their own (a range run with a remote encoder does two at once):
Python raises KeyboardInterrupt (Ctrl-C) and Dagster its interrupt (a terminate) in the main thread only, so
the step sets `STOP` and each partition stops at its next batch, keeping the batches it wrote, as one
interrupted in the main thread does."""

import threading

STOP = threading.Event()


def stop_if_asked() -> None:
    """Raises KeyboardInterrupt in a partition's thread once the step was asked to stop."""
    if STOP.is_set():
        raise KeyboardInterrupt
