"""Runs: the run directory store, launching and stopping workers, the worker itself, devices."""
