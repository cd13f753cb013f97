"""The demo's own error."""


class DemoError(RuntimeError):
    """Something the demo needs is missing or did not work; the message says what to do."""
