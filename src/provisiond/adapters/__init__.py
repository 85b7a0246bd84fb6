"""Adapters: one per external system (Proxmox, Kubernetes, MQTT, HTTP, spec files).

They do the I/O and translate wire formats into the core's types; nothing else lives here.
"""
