#!/usr/bin/env bash
# pip-audit of the pinned dependencies in requirements.lock. The vulnerability database is PyPI's
# JSON API; where only the package index is reachable, every package comes back "could not be
# audited", so that case gets one plain line instead of a page of per-package errors.
set -uo pipefail
bin=${BIN:-.venv/bin}
out=$(timeout 300 "$bin/pip-audit" -r requirements.lock --no-deps --disable-pip --strict \
  --progress-spinner off --timeout 15 2>&1)
status=$?
if [ "$status" -ne 0 ] && grep -q "could not be audited" <<<"$out"; then
  echo "make audit: the vulnerability database (PyPI's JSON API) is unreachable from here; nothing was audited" >&2
  exit 2
fi
if [ "$status" -eq 124 ]; then
  echo "make audit: pip-audit gave no answer within 300 s; the vulnerability database is unreachable" >&2
  exit 2
fi
printf '%s\n' "$out"
exit "$status"
