"""Entry point of the `hipsense` command."""


def main(argv: list[str] | None = None) -> int:
    """Run the command line; return the exit status."""
    return 0
