"""provisiond — keeps a Proxmox VE cluster, its GPU VMs and their Kubernetes nodes as declared."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("provisiond")
except PackageNotFoundError:  # pragma: no cover - running from a tree without metadata
    __version__ = "0.0.0"

__all__ = ["__version__"]
