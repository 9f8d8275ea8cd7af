"""CLI subcommands, one module per group; each registers with ``aezoo.cli.command``."""
