"""What every HTTP adapter shares: RFC 9457 problems (:mod:`.problems`), authentication and
roles (:mod:`.auth`), the request-body guards (:mod:`.bodies`, :mod:`.body_limit`) and
request-scoped access to settings and the database (:mod:`.deps`).

The API and the web pages are adapters over :mod:`updog.service`; the protection layer's
middleware answers with the same problems. Nothing here imports an adapter."""
