"""The runtime's two listeners (see ``docs/operations.md``, "Control plane"):

- :mod:`~orgloop.control.server`: the owner's control socket ``<data>/control.sock`` (mode 0600 in a 0700
  directory, peer uid checked): apply, stop, state, status, tap;
- :mod:`~orgloop.control.http`: the read-only TCP port on 127.0.0.1 (``runtime.control_port``):
  ``GET /healthz``, ``/metrics``, ``/status`` and nothing else.

:mod:`~orgloop.control.client` talks to the socket, :mod:`~orgloop.control.paths` says where it is,
:mod:`~orgloop.control.tap` copies routed events to watchers, :mod:`~orgloop.control.metrics` renders
Prometheus text. Submodules are imported on use, so the CLI pays only for what it calls.
"""
