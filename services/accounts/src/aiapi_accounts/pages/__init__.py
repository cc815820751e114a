"""The customer dashboard: server-rendered pages at ``/`` on the accounts service's public port.

The pages sit on the same commands as the JSON API under ``/api/v1`` and on the same cookie
session; every form that writes carries the session's CSRF token as a hidden field. They work
with JavaScript off; ``static/app.js`` only adds copy buttons and live deposit progress.
"""

from aiapi_accounts.pages.routes import page_routes

__all__ = ["page_routes"]
