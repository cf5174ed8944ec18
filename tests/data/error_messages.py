"""Shared assertion for the data tests: an error is one line that names every given part."""


def one_line_error(exc_info, *parts: str) -> str:
    message = str(exc_info.value)
    assert "\n" not in message
    for part in parts:
        assert part in message, message
    return message
