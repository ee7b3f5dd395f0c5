"""The multi-front data plane (docs/data-plane.md): N front processes serve the data listeners.

``count``: how many fronts a config gets (``server.num_fronts``). ``control``: the front's side, its
control service on a private unix socket. ``supervisor``: the supervisor's side, which spawns,
watches, respawns and stops the fronts and stands in for the ``grpc``/``http`` plugins towards the
informer, resetter and status plugins.
"""
