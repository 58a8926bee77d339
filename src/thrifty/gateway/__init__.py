"""The request path: stages with request and answer halves, listed in `build.py`."""
