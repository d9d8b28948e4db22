#!/usr/bin/env bash
# Run by .ci/run: every tracked file that starts with a `#!` line is
# executable in git (a user runs `./run.sh`, not `bash run.sh`), and every
# shell script parses (`bash -n`). Files without a `#!` line (sourced
# helpers such as deploy/lib.sh) are only parsed.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
status=0
while read -r mode _ _ path; do
  [ -f "$path" ] || continue
  first="$(head -c 2 "$path" | tr -d '\000')"
  if [ "$first" = "#!" ] && [ "$mode" != 100755 ]; then
    echo "check-scripts: $path starts with #! but is not executable (git update-index --chmod=+x $path)" >&2
    status=1
  fi
  case "$path" in
    *.sh)
      if ! bash -n "$path"; then
        echo "check-scripts: $path does not parse" >&2
        status=1
      fi
      ;;
  esac
done < <(git ls-files -s)
exit $status
