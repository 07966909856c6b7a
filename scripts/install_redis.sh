#!/usr/bin/env bash
# The broker of the Celery tests (tests/test_celery.py) and benchmark: Debian's redis-server.
# Only the program is used: the tests start their own server on 127.0.0.1 and stop it (the
# package's service is not started where systemd does not run).
PATH=$PATH:/usr/sbin:/usr/bin exec bash "$(dirname "$0")/apt_install.sh" redis-server redis-server "for the Celery tests"
