"""Load-test tooling for examreg. It never imports `engine` (Locust runs on gevent)."""
