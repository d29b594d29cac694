#!/usr/bin/env bash
# The include rules of docs/ARCHITECTURE.md, checked over the tree:
#   - no CAF below actors/: serve/, engine/, gpu/, model/, config/, toolkit/ never
#     include <caf/...>;
#   - net/ reaches the serving system only through serve/: no actors/ or engine/ include;
#   - serve/ never includes actors/ or net/; engine/ never serve/, actors/ or net/;
#   - store/ (the gateway's state store) stands alone: no serve/, actors/, net/ or engine/;
#   - JSON stays at the edges: no boost/json in serve/ headers.
# Usage: layering_test.sh REPO_ROOT. Prints every breach; exits 1 when there is one.
set -uo pipefail
root=${1:?usage: layering_test.sh REPO_ROOT}
cd "$root" || exit 2
fail=0
check() {  # DESCRIPTION PATTERN DIRS...
  local what=$1 pattern=$2
  shift 2
  local hits
  hits=$(grep -rnE --include='*.h' --include='*.cpp' --include='*.cu' --include='*.cuh' \
    "$pattern" "$@" 2>/dev/null)
  if [ -n "$hits" ]; then
    echo "breach: $what"
    echo "$hits"
    fail=1
  fi
}
for d in serve engine gpu model config toolkit actors net store; do
  [ -d "$d" ] || { echo "missing folder $d (run from the repository root)"; exit 2; }
done
check "CAF below actors/" '#include *[<"]caf/' serve engine gpu model config toolkit store
check "store/ above itself" '#include *"(serve|actors|net|engine)/' store
check "net/ past serve/" '#include *"(actors|engine)/' net
check "serve/ above itself" '#include *"(actors|net)/' serve
check "engine/ above itself" '#include *"(serve|actors|net)/' engine
check "JSON in serve/ headers" '#include *[<"]boost/json' serve/*.h
if [ "$fail" = 0 ]; then echo "include rules hold"; fi
exit $fail
