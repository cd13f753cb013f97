"""A request refused with an HTTP status and a JSON body the client can act on."""


class Refusal(Exception):
    """A refusal: HTTP status, an error code, a sentence, optional problems and headers.

    ``problems`` are ``[(path, reason)]``: a JSON path or a place (``row 3``) and what is
    wrong there."""

    def __init__(self, status: int, code: str, message: str, problems=(), headers=None):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.problems = list(problems)
        self.headers = dict(headers or {})

    def body(self) -> dict:
        body = {"error": self.code, "message": self.message}
        if self.problems:
            body["problems"] = [{"path": path, "reason": reason} for path, reason in self.problems]
        return body
