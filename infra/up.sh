#!/usr/bin/env bash
# Starts the dev/test PostgreSQL and Kafka (each only if not running), waits
# until both answer, and prints the settings a worker or test needs on stdout
# (progress goes to stderr), e.g.: eval "$(infra/up.sh | sed 's/^/export /')"
set -euo pipefail
INFRA_NAME=up
# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

"$INFRA_DIR/postgres.sh" start
"$INFRA_DIR/kafka.sh" start
echo "PIPELINE_KAFKA_BOOTSTRAP=$(kafka_bootstrap)"
echo "PIPELINE_DATABASE_URL=$(pg_dsn)"
