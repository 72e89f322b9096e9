# The two commands a fresh Debian 12 machine needs (as root); both set everything up first.
#   make run    the main job
#   make test   the test suite
.PHONY: setup run test bench
setup:
	@./scripts/setup.sh

run: setup
	.venv/bin/capsize demo

test: setup
	.venv/bin/python -m pytest -q -p no:cacheprovider tests

bench: setup
	.venv/bin/python -m benchmarks.runc_cycle
