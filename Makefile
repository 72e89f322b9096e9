# The two commands a fresh Debian 12 machine needs (as root); both set everything up first.
#   make run    the main job
#   make test   the test suite
#   make vm-ci  the CI resilience checks in VMs (vagrant/ci.sh: about 15 min, not part of test)
.PHONY: setup run demo test bench vm-ci
setup:
	@./scripts/setup.sh

run: setup
	.venv/bin/capsize run scenarios/seed

demo: setup
	.venv/bin/capsize demo

test: setup
	.venv/bin/python -m pytest -q -p no:cacheprovider tests

bench: setup
	.venv/bin/python -m benchmarks.runc_cycle

vm-ci: setup
	./vagrant/ci.sh
