#!/usr/bin/env bash
# Install everything the tests need, then run the whole suite: every tier with the compiled extension,
# then the non-e2e tiers again with the pure-Python twins (RELAYGATE_NO_EXTENSIONS=1).
# Extra arguments go to both pytest runs (e.g. -x, -k name).
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v redis-server >/dev/null 2>&1; then
  echo "tests/run.sh: installing redis-server (Debian package)"
  apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null
fi

# the semantic cache's test of an old search module loads Debian's RediSearch 1.2 into redis-server
if [ ! -f /usr/lib/redis/modules/redisearch.so ]; then
  echo "tests/run.sh: installing redis-redisearch (Debian package)"
  apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-redisearch >/dev/null
fi

# tests/store and the e2e store tests run a real PostgreSQL server (tests/pg.py finds initdb on PATH or in
# Debian's /usr/lib/postgresql/*/bin)
if ! command -v initdb >/dev/null 2>&1 && ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
  echo "tests/run.sh: installing postgresql (Debian package)"
  apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
fi

# the admin UI's browser tests drive Debian's Chromium through Playwright (never a downloaded browser)
if [ ! -x /usr/bin/chromium ]; then
  echo "tests/run.sh: installing chromium (Debian package)"
  apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
fi

# bench.instructions counts a request's instructions under valgrind's cachegrind (tests/bench/test_instructions.py)
if ! command -v valgrind >/dev/null 2>&1; then
  echo "tests/run.sh: installing valgrind (Debian package)"
  apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq valgrind >/dev/null
fi

python -m pip install -q --disable-pip-version-check -e ".[test]"

# the Node clients of the compat suite (openai-node, the Vercel AI SDK), from package-lock.json
if command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1; then
  (cd tests/compat/node && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
  # the single sign-on tests' OpenID provider (node-oidc-provider)
  if [ -f tests/ui/oidc/package-lock.json ]; then
    (cd tests/ui/oidc && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
  fi
  # Azurite, Azure's storage emulator, for the response cache's azure-blob level
  (cd tests/cache/azurite && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
else
  echo "tests/run.sh: node/npm not found: the Node client tests in tests/compat will skip"
fi

# two pytest workers (pytest-xdist), whole test files per worker: most tests wait on real servers and
# processes, so the 2-core machine runs the suite in about half the time of one worker (19 -> 10 minutes
# for the first pass); session fixtures (PostgreSQL, redis-server) start once per worker
echo "== compiled extensions: all tiers =="
python -m pytest -q -n 2 --dist loadfile --durations=25 "$@"
echo "== pure-Python twins (RELAYGATE_NO_EXTENSIONS=1): every tier but e2e =="
RELAYGATE_NO_EXTENSIONS=1 python -m pytest -q -n 2 --dist loadfile -rfE -m "not e2e" "$@"
