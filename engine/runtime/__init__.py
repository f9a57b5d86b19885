"""Processes: the CLI, the demo, the supervisor, the writer process."""
