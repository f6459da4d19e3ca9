"""The web console served by ``pushcore api`` under ``/console/``: server-rendered pages
(Jinja2 templates, htmx for partial updates, uPlot charts) over the same service code as the
JSON API.  Third-party browser assets come from npm (``package.json`` / ``package-lock.json``
beside this file, installed by ``make setup``) and are served as they are."""
