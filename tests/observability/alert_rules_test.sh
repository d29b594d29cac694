#!/usr/bin/env bash
# docs/alerts/conclave-alerts.yml is a valid Prometheus rule file and its rules fire as
# docs/alerts/conclave-alerts.test.yml expects (promtool from Debian's `prometheus`).
# Usage: alert_rules_test.sh REPO_ROOT. Exits 77 (skipped) without promtool.
set -euo pipefail
root=${1:?usage: alert_rules_test.sh REPO_ROOT}
if ! command -v promtool >/dev/null 2>&1; then
  echo "SKIP: promtool not found (scripts/setup.sh installs Debian's prometheus)"
  exit 77
fi
cd "$root/docs/alerts"
promtool check rules conclave-alerts.yml
promtool test rules conclave-alerts.test.yml
# The in-process defaults and the file name the same alerts.
for name in $(grep -o '"Conclave[A-Za-z]*"' "$root/config/observability_config.cpp" | tr -d '"'); do
  grep -q "alert: $name\$" conclave-alerts.yml || { echo "FAIL: $name is not in conclave-alerts.yml"; exit 1; }
done
echo "alert rules: promtool check and unit tests pass; the default rules match"
