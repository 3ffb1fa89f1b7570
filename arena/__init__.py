"""Pure domain logic: fan-out and measurement, battles, ratings, memory estimates.

Import the submodules you need; this package imports nothing at import time.
"""
