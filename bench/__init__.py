"""The benchmark, apart from the service: the strategy comparison of `synlearner bench`
(`compare.py`, its report `compare_report.py`), the generated task streams it runs
(`streams/`), and the speed scripts (`bench_*.py`, each run as `python bench/bench_x.py`)."""
