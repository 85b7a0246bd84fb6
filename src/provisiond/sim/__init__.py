"""Simulators of the systems provisiond drives (Proxmox VE, later Kubernetes).

Invariant: the simulators depend only on ``provisiond.core`` data models (topology), never on
the daemon's runtime or adapters, so they can stand in for the real systems in every test.
"""
