"""Pure ASGI middleware, one concern per module; composed in :func:`updog.api.app.create_app`."""
