# The two commands a fresh Debian 12 machine needs (as root); both set everything up first.
#   make run    the main job
#   make test   the test suite
#   make vm-ci  the CI resilience checks in VMs, the whole library on cgroup v2 and v1 (vagrant/ci.sh;
#               vagrant/README.md has the times; --mode systemd is the 17-min run), not part of test
#   make reference-report  the seed scenarios on capsize, Docker and Podman, compared, into reports/reference/
#               (refused unless every check held or is n/a (exit 3: a role Podman lacks); FORCE=1 writes it anyway)
.PHONY: setup run demo test bench vm-ci reference-report docs fuzz conformance
setup:
	@./scripts/setup.sh

run: setup
	.venv/bin/capsize run scenarios/seed

demo: setup
	.venv/bin/capsize demo

test: setup
	.venv/bin/python -m pytest -q -p no:cacheprovider --durations=25 tests

# the Engine API fuzz test of the suite (tests/daemon/test_fuzz.py), longer: 200 examples per
# operation, up to 15 minutes
fuzz: setup
	CAPSIZE_FUZZ_EXAMPLES=200 CAPSIZE_FUZZ_SECONDS=900 .venv/bin/python -m pytest -q -s -p no:cacheprovider \
		-o timeout=1200 tests/daemon/test_fuzz.py

# runc v1.1.5's bats suite and OCI runtime-tools (pinned in ../shared/conformance) against
# capsize-runc and runc in the same run, side by side; fails when capsize-runc does worse than
# conformance/expected-*.txt (about 6 min; conformance/README.md). Built offline into CONFORMANCE_DIR.
CONFORMANCE_DIR ?= /var/tmp/capsize-conformance
conformance: setup
	./conformance/build.sh $(CONFORMANCE_DIR)
	.venv/bin/python conformance/run.py --build $(CONFORMANCE_DIR)

# each prints capsize next to its reference (runc/crun, containerd-shim-runc-v2, containerd,
# dockerd) measured in the same run, as ratios; benchmarks/README.md has the targets and results
bench: setup
	.venv/bin/python -m benchmarks.runc_cycle --runs 30
	.venv/bin/python -m benchmarks.shim_memory --modes template
	.venv/bin/python -m benchmarks.runtimed_restart
	.venv/bin/python -m benchmarks.daemon_bench --runs 20
	.venv/bin/python -m benchmarks.tty_bench --runs 15
	.venv/bin/python -m benchmarks.build_bench --runs 10
	.venv/bin/python -m benchmarks.api_load
	.venv/bin/python -m benchmarks.net_bench --runs 10

# scenarios/README.md's verb tables and scenarios/scenario.schema.json, from the verb registry
docs: setup
	.venv/bin/capsize docs

vm-ci: setup
	./vagrant/ci.sh

REFERENCE_TMP = /tmp/capsize-reference-run
reference-report: setup
	rm -rf $(REFERENCE_TMP) && mkdir -p $(REFERENCE_TMP)
	rc=0; .venv/bin/capsize run --engine capsize --engine docker --engine podman scenarios/seed --out $(REFERENCE_TMP) -q || rc=$$?; \
	run=$$(ls -d $(REFERENCE_TMP)/*/ | tail -1); \
	if [ "$$rc" != 0 ] && [ "$$rc" != 3 ] && [ -z "$(FORCE)" ]; then \
		echo "reference-report: the seed scenarios did not all pass (exit $$rc; see $$run): reports/reference/ unchanged (FORCE=1 writes it anyway)"; exit 1; fi; \
	rm -rf reports/reference && mkdir -p reports/reference && \
	cp "$$run/journal.json" reports/reference/ && \
	(cd "$$run" && find . \( -name events.jsonl -o -name snapshots.jsonl -o -name logs.jsonl \) -exec cp --parents {} $(CURDIR)/reports/reference/ \;) && \
	.venv/bin/capsize report reports/reference -q
