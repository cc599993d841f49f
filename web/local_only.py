"""Keeping the pages local: nothing a LocalChat page loads comes from another site.

Taipy 4.1's page asks three other sites for something on every load: Google's font service
(its style kit's Lato font), cdnjs (MathJax, for LaTeX text, which LocalChat never shows) and
GitHub (Taipy's favicon). A chat that runs on the user's own computer tells nobody when it is
opened, and on a machine without internet the page must not wait for those sites. So:
- every response carries a Content-Security-Policy that lets a page load scripts, styles,
  fonts, images and connections from the app only: the browser then asks no other site for
  anything, before any network request is made;
- Lato is served from `assets/fonts` (declared in main.css), the favicon from `assets/`.
Links to other sites (a model's page on Hugging Face) still open: CSP does not govern them.
The same policy keeps other sites from showing the app in a frame (`frame-ancestors`), where
they could lay it under their own buttons.
"""

from __future__ import annotations

from flask import Flask, Response

FAVICON = "assets/favicon.svg"  # relative to the app's folder; .taipyignore lets it be served

# 'unsafe-inline': Taipy's page has inline scripts and MUI writes inline styles; neither can
# load anything from elsewhere under this policy.
POLICY = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self' 'unsafe-inline'",
        "style-src 'self' 'unsafe-inline'",
        "img-src 'self' data: blob:",
        "font-src 'self' data:",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'self'",
        "form-action 'self'",
        "frame-ancestors 'self'",
    ]
)


def add_local_only_policy(flask_app: Flask) -> None:
    """Send the policy with every response `flask_app` makes."""

    @flask_app.after_request
    def _add_policy(response: Response) -> Response:
        response.headers.setdefault("Content-Security-Policy", POLICY)
        return response
