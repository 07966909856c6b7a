#!/usr/bin/env bash
# The browser the end-to-end tests drive through Playwright: Debian's chromium from apt.
# (`playwright install` would download a browser from a CDN that these machines cannot reach.)
exec bash "$(dirname "$0")/apt_install.sh" chromium chromium "for the browser tests"
