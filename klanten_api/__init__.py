"""Klanten API 1.0 server: application factory, settings, authorisation, errors, HTTP glue, CLI."""
import warnings

# connexion imports starlette's test client at start-up, which warns about its httpx backend on every
# start; nothing of ours uses it, and the server's stderr is for JSON log lines only.
warnings.filterwarnings("ignore", message=r"Using `httpx` with `starlette\.testclient` is deprecated")
