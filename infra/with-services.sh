#!/usr/bin/env bash
# Usage: infra/with-services.sh CMD [ARGS...]
# Starts whichever of PostgreSQL and Kafka is not already running, runs CMD
# with PIPELINE_KAFKA_BOOTSTRAP / PIPELINE_DATABASE_URL pointing at them
# (unless already set), then stops only the services it started itself, and
# exits with CMD's exit code.
#
# CMD runs in the foreground so it keeps the terminal; on Ctrl-C the whole
# foreground process group gets SIGINT, CMD ends, and the EXIT trap cleans up.
# A SIGTERM sent to this script alone is handled once CMD has finished.
set -euo pipefail
INFRA_NAME=with-services
# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

(($# > 0)) || die "usage: $0 CMD [ARGS...]"

started=()
# shellcheck disable=SC2317 # invoked from the EXIT trap
cleanup() {
  local i svc
  for ((i = ${#started[@]} - 1; i >= 0; i--)); do
    svc=${started[i]}
    "$INFRA_DIR/$svc.sh" stop || info "could not stop $svc; run infra/down.sh"
  done
  started=()
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

for svc in postgres kafka; do
  if "$INFRA_DIR/$svc.sh" status >/dev/null 2>&1; then
    info "$svc already running; leaving it running afterwards"
  else
    # Recorded before starting, so a start that fails half-way is undone too.
    started+=("$svc")
    "$INFRA_DIR/$svc.sh" start
  fi
done

export PIPELINE_KAFKA_BOOTSTRAP=${PIPELINE_KAFKA_BOOTSTRAP:-$(kafka_bootstrap)}
export PIPELINE_DATABASE_URL=${PIPELINE_DATABASE_URL:-$(pg_dsn)}

rc=0
"$@" || rc=$?
exit "$rc"
