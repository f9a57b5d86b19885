"""Pure rules and values: no IO, no drivers."""
