"""Web entry point (also the ``main_file`` NiceGUI's test fixtures execute)."""

from app.web import serve

if __name__ in {"__main__", "__mp_main__"}:
    serve()
