"""The daemon: config, main loop, metrics, HTTP endpoints, systemd integration, CLI."""
