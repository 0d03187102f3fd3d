"""The root of every error hipsense raises on purpose."""

__all__ = ["HipsenseError"]


class HipsenseError(Exception):
    """Base class of all hipsense errors.

    Catch this to handle anything hipsense reports; subclasses carry the facts as
    attributes and say in their message what was expected and what was found.
    """
