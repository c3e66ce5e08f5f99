"""`guard serve`: the moderation and provenance HTTP service (FastAPI on uvicorn), the C2PA Soft Binding
Resolution API over the manifest store, API keys, limits, metrics, the audit log and the verification page.

`create_app(settings)` builds the app (`guard.serve.app`); the routes are thin shells over the same library
calls as the CLI. Importing this package imports neither FastAPI nor any model: `guard keys api` and
`guard audit` use `guard.serve.keys` and `guard.serve.audit` without the server.
"""


def create_app(settings=None):
    """The FastAPI app (see `guard.serve.app.create_app`)."""
    from guard.serve.app import create_app as build

    return build(settings)
