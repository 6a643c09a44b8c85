#!/usr/bin/env bash
# Fails if any secret the test suite handled (API keys, webhook secrets, JWTs, session and
# refresh tokens, GameTalk secret keys, passwords) appears in the logs its servers wrote.
# The suite writes both, one pair of files per test process, into the directory given here
# (see crates/herald/tests/it/log_capture.rs); scripts/test.sh runs this after the tests.
set -euo pipefail
dir=${1:?usage: scripts/check-log-secrets.sh DIR}
shopt -s nullglob
secret_files=("$dir"/secrets-*.txt)
logs=("$dir"/herald-*.log)
if [ ${#secret_files[@]} -eq 0 ] || [ ${#logs[@]} -eq 0 ]; then
    echo "check-log-secrets: no suite logs in $dir (did the integration tests run?)" >&2
    exit 1
fi
all="$dir/all-secrets.txt"
cat "${secret_files[@]}" | grep -v '^$' | sort -u > "$all"
count=$(wc -l < "$all")
size=$(cat "${logs[@]}" | wc -c)
if [ "$count" -lt 10 ] || [ "$size" -eq 0 ]; then
    echo "check-log-secrets: only $count secrets and $size bytes of logs: the capture is not working" >&2
    exit 1
fi
if leaks=$(grep -F -o -h -f "$all" "${logs[@]}" | sort -u); then
    echo "check-log-secrets: $(echo "$leaks" | wc -l) secrets appear in the server logs (first 8 characters shown):" >&2
    echo "$leaks" | cut -c1-8 | sed 's/$/.../' >&2
    exit 1
fi
echo "check-log-secrets: none of $count secrets appears in $size bytes of server logs"
