#!/usr/bin/env bash
# Stops Kafka and PostgreSQL (each a no-op when not running). Tries both even
# if one fails; exits non-zero if either did.
set -euo pipefail
INFRA_NAME=down
# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

rc=0
"$INFRA_DIR/kafka.sh" stop || rc=1
"$INFRA_DIR/postgres.sh" stop || rc=1
exit "$rc"
