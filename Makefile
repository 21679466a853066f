# The two commands of the README: `make run` and `make test`. Everything they need is installed
# here, on a fresh machine, from PyPI and Debian's packages.

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
DEBIAN_PACKAGES := chromium libharfbuzz-subset0 poppler-utils fonts-dejavu-core gettext
# `make bench` only (not `make test`): the load generator, and what fast receipt PDFs need.
BENCH_PACKAGES := wrk libharfbuzz-subset0 fonts-dejavu-core
SCALE ?= small
# One pytest worker per core, each test file on one worker (its module fixtures built once).
PYTEST_ARGS ?= -n auto --dist loadfile

# The development stack talks to localstripe, the offline Stripe stand-in that `make run` starts.
DEV_ENV := DEBUG=1 \
	STRIPE_SECRET_KEY=sk_test_localstripe STRIPE_PUBLISHABLE_KEY=pk_test_localstripe \
	STRIPE_WEBHOOK_SECRET=whsec_localstripe STRIPE_API_BASE=http://127.0.0.1:8420 \
	STRIPE_JS_URL=http://127.0.0.1:8420/js.stripe.com/v3/

.PHONY: run test e2e lint format install system-deps node-deps clean totp bench bench-deps catalogues messages

run: install system-deps catalogues
	$(DEV_ENV) $(PY) manage.py migrate --noinput
	$(DEV_ENV) $(PY) manage.py seed_demo
	$(DEV_ENV) $(PY) manage.py rundev

# The demo staff users' current two-factor code (they sign in with password + this code).
totp: install
	$(DEV_ENV) $(PY) manage.py totp

test: install system-deps lint catalogues node-deps
	rm -f test-results/axe-summary.json
	$(PY) -m pytest $(PYTEST_ARGS)

# The browser tests alone (e2e/), with what they need.
e2e: install system-deps catalogues node-deps
	rm -f test-results/axe-summary.json
	$(PY) -m pytest $(PYTEST_ARGS) e2e

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: install
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

install: $(STAMP)

# The translation catalogues (locale/pt_PT): compiled from the committed .po on every `make run` and
# `make test` (gettext's msgfmt, from Debian's packages); the .mo files are never committed.
I18N_SKIP := --ignore=.venv --ignore=node_modules --ignore=var --ignore=staticfiles
catalogues: install system-deps
	DEBUG=1 $(PY) manage.py compilemessages $(I18N_SKIP) -v 0

# After changing texts: extract them into locale/pt_PT/LC_MESSAGES/django.po, translate the new
# entries (docs/glossary-pt.md), then `make test` checks that none is missing or fuzzy.
messages: install system-deps
	DEBUG=1 $(PY) manage.py makemessages -l pt_PT --no-obsolete $(I18N_SKIP) --ignore=bench --ignore=e2e --ignore='*/tests/*'

# axe-core, which the browser tests run on every page they visit (e2e/conftest.py): the version
# pinned in package-lock.json, installed again only when that changes. npm from Debian when missing.
NODE_STAMP := node_modules/.installed
node-deps: $(NODE_STAMP)

$(NODE_STAMP): package.json package-lock.json
	@command -v npm >/dev/null || $(MAKE) --no-print-directory system-deps DEBIAN_PACKAGES="nodejs npm"
	npm ci --no-audit --no-fund
	touch $@

$(STAMP): requirements.txt requirements-dev.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $@

# Debian packages: Chromium for the browser tests, HarfBuzz subsetting for fast WeasyPrint PDFs,
# poppler-utils to read PDFs back. Installed only when missing (needs root, as on these machines).
system-deps:
	@missing=""; for p in $(DEBIAN_PACKAGES); do \
		dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
		echo "Installing Debian packages:$$missing"; \
		if [ "$$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi; \
		$$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing; \
	fi

# The benchmark (docs/deploy.md, "Benchmark"): `make bench` (small, a few minutes) or
# `make bench SCALE=full`; more options with BENCH_ARGS="--duration 20 --connections 16". It builds its
# own database (var/bench/, or DATABASE_URL=postgres://.../portal_bench with REDIS_URL for RedisHuey).
bench: install bench-deps
	$(PY) -m bench.run --scale $(SCALE) $(BENCH_ARGS)

# Installed only here, so that `make test` never waits for apt to fetch a load generator it does not use.
bench-deps:
	@$(MAKE) --no-print-directory system-deps DEBIAN_PACKAGES="$(BENCH_PACKAGES)"

clean:
	rm -rf $(VENV) var staticfiles node_modules
