#!/usr/bin/env bash
# Audit the locked dependencies with pip-audit. Known vulnerabilities fail; when the
# vulnerability service cannot be reached, say so plainly instead of reporting a pass.
set -uo pipefail
cd "$(dirname "$0")/.."
UV="${UV:-$(command -v uv || echo .tools/bin/uv)}"
requirements=$(mktemp)
trap 'rm -f "$requirements"' EXIT
"$UV" export --quiet --format requirements-txt --all-packages --no-emit-workspace --no-hashes > "$requirements"
output=$("$UV" run pip-audit --progress-spinner off -r "$requirements" 2>&1)
status=$?
echo "$output"
total=$(grep -cvE '^(#|$| )' "$requirements")
unaudited=$(grep -c "could not be audited" <<<"$output")
if [ "$status" -ne 0 ]; then
  exit "$status"
fi
if [ "$unaudited" -gt 0 ]; then
  echo "pip-audit: AUDIT INCOMPLETE: $unaudited of $total dependencies could not be checked" \
       "(the vulnerability service is unreachable from this machine)." >&2
fi
