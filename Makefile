# The two set-up commands of the README: `make demo` and `make test`.
.PHONY: demo test venv

venv:
	bash scripts/bootstrap.sh

demo: venv
	.venv/bin/synpref demo

test: venv
	.venv/bin/python -m pytest
