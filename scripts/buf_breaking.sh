#!/usr/bin/env bash
# `buf breaking`: protos/ as it is now must keep the v1 contract of
#  - where this branch left main (its merge base: main's own later additions are not losses here),
#  - and the commit before the newest one that changed protos/, which is what checks a clean
#    clone of main, where the merge base is HEAD itself.
# Earlier contracts come from git objects (`git archive`), so it works offline and in a fresh
# clone without a remote.
set -euo pipefail
buf=${BUF:-.venv/bin/buf}
if ! git rev-parse -q --verify HEAD >/dev/null 2>&1; then
  echo "buf breaking: no git history here, so no earlier contract to compare with; skipped" >&2
  exit 0
fi
main=$(git rev-parse -q --verify main || git rev-parse -q --verify origin/main || git rev-parse HEAD)
bases=("$(git merge-base HEAD "$main")")
newest=$(git rev-list -n 1 HEAD -- protos)
if [ -n "$newest" ] && before=$(git rev-parse -q --verify "$newest^"); then
  bases+=("$before")
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
for base in $(printf '%s\n' "${bases[@]}" | sort -u); do
  # A commit from before the contract existed has nothing to break.
  git cat-file -e "$base:protos" 2>/dev/null || continue
  mkdir "$tmp/$base"
  git archive "$base" protos | tar -x -C "$tmp/$base"
  if ! "$buf" breaking protos --against "$tmp/$base/protos"; then
    echo "buf breaking: protos/ breaks the v1 contract of commit $(git rev-parse --short "$base")" >&2
    exit 1
  fi
done
