"""The pure core: spec models, observed state, actions, planner, scheduler, guards, errors, ports.

Invariant: nothing under ``provisiond.core`` performs I/O, reads a clock or draws randomness.
import-linter enforces that it imports no network, file, async-I/O or client library.
"""
