"""The operator's dashboard served by clara_core.monitor: routes and token check
(web.py), the jinja2 page (templates/) and its local static files (static/: the
page script, its style sheet and the vendored uPlot charting library, MIT)."""
