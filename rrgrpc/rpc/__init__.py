"""The control plane: the Goridge RPC endpoint (server.py) and its built-in services, informer.py
(workers, scaling, activity) and resetter.py (zero-downtime worker reset)."""
