"""Turn a pydantic validation error into one sentence that names the field."""

from pydantic import ValidationError


def first_error(exc: ValidationError) -> str:
    """Describe the first problem in `exc` as "field: what is wrong"."""
    error = exc.errors()[0]
    where = ".".join(str(part) for part in error["loc"]) or "body"
    if error["type"] == "extra_forbidden":
        return f"{where}: unknown field"
    return f"{where}: {error['msg']}"
