"""The web UI at `/ui`: a static page (HTML, one vanilla JavaScript module, CSS) over the JSON API.

No build step and nothing fetched from elsewhere at run time: the files in `static/` ship as package data,
and `routes.py` serves them without a key (they hold no data) under a strict Content-Security-Policy. The
page signs in with an API key kept in the tab's session storage and sends it as `Authorization: Bearer` on
every data call, so it shows exactly what that key may see: the catalog (`/tools`), a tool page that tries
calls and hands out client snippets, and for admin keys the operations page (`/status`, `/stats/calls`).
docs/ui.md describes it.

    routes       router: GET /ui (the page and its two assets), GET /ui/session (who the key is)
    static/      index.html, app.js, app.css
"""
