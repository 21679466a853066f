"""Run the same code from several threads at the same moment, each with its own database connection."""

import threading

from django.db import connection


def run_at_once(function, times):
    """Call `function()` from `times` threads released together. Returns (results, errors)."""
    start = threading.Barrier(times)
    results, errors = [], []

    def worker():
        try:
            start.wait()
            results.append(function())
        except Exception as error:  # noqa: BLE001 - handed back for the test to judge
            errors.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=worker) for _ in range(times)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results, errors
