# The two commands of the README: `make run` and `make test`. Everything they need is installed
# here, on a fresh machine, from PyPI and Debian's packages.

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
DEBIAN_PACKAGES := chromium libharfbuzz-subset0 poppler-utils fonts-dejavu-core
# `make bench` only (not `make test`): the load generator, and what fast receipt PDFs need.
BENCH_PACKAGES := wrk libharfbuzz-subset0 fonts-dejavu-core
SCALE ?= small

# The development stack talks to localstripe, the offline Stripe stand-in that `make run` starts.
DEV_ENV := DEBUG=1 \
	STRIPE_SECRET_KEY=sk_test_localstripe STRIPE_PUBLISHABLE_KEY=pk_test_localstripe \
	STRIPE_WEBHOOK_SECRET=whsec_localstripe STRIPE_API_BASE=http://127.0.0.1:8420 \
	STRIPE_JS_URL=http://127.0.0.1:8420/js.stripe.com/v3/

.PHONY: run test lint format install system-deps clean totp bench bench-deps

run: install system-deps
	$(DEV_ENV) $(PY) manage.py migrate --noinput
	$(DEV_ENV) $(PY) manage.py seed_demo
	$(DEV_ENV) $(PY) manage.py rundev

# The demo staff users' current two-factor code (they sign in with password + this code).
totp: install
	$(DEV_ENV) $(PY) manage.py totp

test: install system-deps lint
	$(PY) -m pytest $(PYTEST_ARGS)

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: install
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

install: $(STAMP)

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
	rm -rf $(VENV) var staticfiles
