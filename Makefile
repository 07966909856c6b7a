# The two set-up commands of the README: `make demo` and `make test`.
.PHONY: demo test venv browser redis

venv:
	bash scripts/bootstrap.sh

demo: venv
	.venv/bin/synpref demo

test: venv browser redis
	.venv/bin/python -m pytest

browser:  # Debian's chromium, driven by the end-to-end browser tests
	bash scripts/install_browser.sh

redis:  # Debian's redis-server, the broker of the Celery tests (they start and stop their own)
	bash scripts/install_redis.sh
