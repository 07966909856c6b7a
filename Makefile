# The two set-up commands of the README: `make demo` and `make test`.
.PHONY: demo test venv browser

venv:
	bash scripts/bootstrap.sh

demo: venv
	.venv/bin/synpref demo

test: venv browser
	.venv/bin/python -m pytest

browser:  # Debian's chromium, driven by the end-to-end browser tests
	bash scripts/install_browser.sh
