"""Offline tools apart from the service: the command line, the report, the strategy
comparison (`synlearner bench`) and the synthetic streams of the demo and the benchmark."""
