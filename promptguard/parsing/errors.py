class ParseError(ValueError):
    """The input is not of the shape its parser expects; the message says why."""
