"""HTTP routes, one router per resource; mounted by :func:`updog.api.app.create_app`.

Each router carries its full path prefix (``/api/v1/...``) itself rather than receiving it
from ``include_router``: the matched route's ``path`` is then the complete template, which
the metrics and access log use as their ``route`` label.
"""

#: Prefix of version 1 of the API.
API_PREFIX = "/api/v1"
