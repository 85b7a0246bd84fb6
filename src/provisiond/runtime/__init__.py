"""Runtime: reconciler, executor, manager. Talks to the world only through ``core.ports``."""
