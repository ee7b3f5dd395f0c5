"""The HTTP plugin: RoadRunner's HTTP worker protocol served by aiohttp in front of a PHP pool.

``convert`` (request context and reply heads), ``forms`` (PHP bracket trees), ``dispatch`` (the
terminal handler), ``middleware`` (the ``http.middleware`` names) and ``plugin`` (HttpPlugin).
"""
