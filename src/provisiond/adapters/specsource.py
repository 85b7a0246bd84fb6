"""``SpecFiles``: the fleet spec on disk as a ``SpecSource`` (what the reconciler loads).

``load`` is ``specfile.load_desired`` (raises ``SpecError`` with every issue, file:line).
``fingerprint`` changes whenever a spec file is added, removed or rewritten: it hashes the
sorted list of ``(path, size, mtime_ns)`` of the ``*.yaml``/``*.yml`` files under the paths
(directories not recursed, dotfiles skipped — the loader's rules), following symlinks so a
Kubernetes ConfigMap's ``..data`` swap counts as a change. It reads no file contents, so the
watcher can poll it cheaply.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from pathlib import Path

from provisiond.adapters.specfile import SUFFIXES, PathLike, load_desired
from provisiond.core.desired import DesiredState


class SpecFiles:
    def __init__(self, paths: Iterable[PathLike]) -> None:
        self.paths = tuple(Path(p) for p in paths)

    def load(self) -> DesiredState:
        return load_desired(self.paths)

    def _files(self) -> list[Path]:
        files: list[Path] = []
        for path in self.paths:
            if path.is_dir():
                files.extend(
                    p for p in path.iterdir() if p.suffix in SUFFIXES and not p.name.startswith(".")
                )
            else:
                files.append(path)
        return sorted(files)

    def fingerprint(self) -> str:
        h = hashlib.sha256()
        for file in self._files():
            try:
                st = file.stat()
                h.update(f"{file}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
            except OSError:
                h.update(f"{file}\0missing\n".encode())
        return h.hexdigest()
