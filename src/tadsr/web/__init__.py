"""`tadsr serve`: a local web page for upscaling (the optional `web` extra).

`cli` registers the sub-command without importing the web stack; `app` is the Starlette app
(one page from `static/`, a JSON API); `jobs` is the queue whose worker runs the Upscaler.
"""
