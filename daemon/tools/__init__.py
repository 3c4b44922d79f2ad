"""Offline tools apart from the service: the command line, `install-service`, `predict`,
the report, and the demo stream of `synlearner demo` (the benchmark is `synlearner.bench`)."""
