"""The jobs plugin: RoadRunner's queue processing (pipelines, drivers, consumers, ``jobs.*`` RPC)."""
