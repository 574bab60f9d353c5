# shellcheck shell=bash
# Helpers shared by infra/*.sh (sourced, never run). The scripts start a real
# single-node Kafka (KRaft, jars from Maven Central) and a real PostgreSQL on
# loopback for development and tests.
#
# State layout under INFRA_STATE_DIR (default <repo>/.infra-state):
#   kafka/libs/               jars fetched by Maven (.pom.sha1 marks a complete fetch)
#   kafka/data/               KRaft log dir, formatted once
#   kafka/server.properties   regenerated on every start from the ports below
#   postgres/                 data/, sock/, postgres.log; owned by the `postgres`
#                             user when run as root (may be a symlink, see postgres.sh)
#   logs/kafka.log            broker output (previous run in kafka.log.1)
#   run/                      kafka.pid and the lock files that serialise start/stop

INFRA_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(dirname "$INFRA_DIR")
STATE_DIR=$(realpath -m "${INFRA_STATE_DIR:-$REPO_ROOT/.infra-state}")
KAFKA_PORT=${PIPELINE_KAFKA_PORT:-9092}
KAFKA_CONTROLLER_PORT=${PIPELINE_KAFKA_CONTROLLER_PORT:-9093}
PG_PORT=${PIPELINE_PG_PORT:-5432}
# Set by each script before sourcing; prefixes every message.
INFRA_NAME=${INFRA_NAME:-infra}

info() { printf '%s: %s\n' "$INFRA_NAME" "$*" >&2; }
die() {
  printf '%s: error: %s\n' "$INFRA_NAME" "$*" >&2
  exit 1
}

for _port in "$KAFKA_PORT" "$KAFKA_CONTROLLER_PORT" "$PG_PORT"; do
  if ! [[ $_port =~ ^[0-9]+$ ]] || ((_port < 1 || _port > 65535)); then
    die "invalid port '$_port' (check PIPELINE_KAFKA_PORT, PIPELINE_KAFKA_CONTROLLER_PORT, PIPELINE_PG_PORT)"
  fi
done
unset _port

is_root() { [[ $(id -u) == 0 ]]; }

# True when something accepts TCP connections on 127.0.0.1:PORT.
port_open() {
  # shellcheck disable=SC2016 # $1 is expanded by the inner bash, on purpose
  timeout 3 bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$1"' _ "$1" 2>/dev/null
}

# Best-effort description of who listens on PORT (for error messages).
port_owner() {
  local who=""
  if command -v ss >/dev/null; then
    who=$(ss -H -ltnp "sport = :$1" 2>/dev/null | grep -o 'users:(.*)' | head -n 1 || true)
  fi
  printf '%s' "${who:-an unknown process}"
}

fail_if_port_taken() { # PORT WHAT
  if port_open "$1"; then
    die "127.0.0.1:$1 ($2) is already in use by $(port_owner "$1"), which is not the" \
      "service started from $STATE_DIR. Stop that process, or pick free ports with" \
      "PIPELINE_KAFKA_PORT / PIPELINE_KAFKA_CONTROLLER_PORT / PIPELINE_PG_PORT."
  fi
}

# True when PID is a live process (zombies count as dead: a zombie keeps its
# /proc entry until its parent reaps it, which may never happen in containers).
proc_alive() {
  local state
  state=$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -d ' ' -f 1) || return 1
  [[ -n $state && $state != Z ]]
}

# True when PID is alive and its command line contains NEEDLE (guards against
# a pid file whose pid now belongs to an unrelated process).
proc_matches() { # PID NEEDLE
  proc_alive "$1" && tr '\0' ' ' <"/proc/$1/cmdline" 2>/dev/null | grep -qF -- "$2"
}

# Sends SIGTERM, waits up to GRACE seconds, then SIGKILL.
terminate() { # PID GRACE
  local pid=$1 deadline=$((SECONDS + $2))
  kill -TERM "$pid" 2>/dev/null || return 0
  while proc_alive "$pid"; do
    if ((SECONDS >= deadline)); then
      info "pid $pid still alive after $2 s; sending SIGKILL"
      kill -KILL "$pid" 2>/dev/null || true
      sleep 1
      return 0
    fi
    sleep 0.5
  done
}

show_log_tail() { # FILE
  [[ -r $1 ]] || return 0
  printf '%s: last lines of %s:\n' "$INFRA_NAME" "$1" >&2
  tail -n 40 "$1" | sed 's/^/    /' >&2
}

# Serialises start/stop of one service across concurrent callers. The lock is
# held on fd 9 until the script exits; long-lived children must be started
# with `9>&-` so they do not keep holding it.
take_lock() { # NAME
  mkdir -p "$STATE_DIR/run"
  exec 9>"$STATE_DIR/run/$1.lock"
  flock -w 600 9 || die "timed out waiting for another start/stop of $1 (lock $STATE_DIR/run/$1.lock)"
}

kafka_bootstrap() { printf '127.0.0.1:%s' "$KAFKA_PORT"; }
pg_dsn() { printf 'postgresql://pipeline:pipeline@127.0.0.1:%s/pipeline' "$PG_PORT"; }

# -- Kafka from the Maven Central jars (kafka.sh, kafka-secure.sh) -------------
KAFKA_LIBS=$STATE_DIR/kafka/libs
LIBS=$KAFKA_LIBS
MVN_LOG=$STATE_DIR/logs/maven.log
LOG4J_CONF=$INFRA_DIR/kafka/log4j2.properties
JAVA=${JAVA_HOME:+$JAVA_HOME/bin/}java

require_java() {
  command -v "$JAVA" >/dev/null ||
    die "java not found. Kafka 4 needs Java 17+; on Debian/Ubuntu: apt-get install -y openjdk-17-jre-headless (or set JAVA_HOME)."
  local spec major
  spec=$("$JAVA" -XshowSettings:properties -version 2>&1 | awk -F' = ' '/java.specification.version/ {print $2; exit}')
  major=${spec#1.} # Java 8 and older report "1.8"
  major=${major%%.*}
  [[ $major =~ ^[0-9]+$ ]] || die "cannot tell the Java version of $(command -v "$JAVA")"
  ((major >= 17)) ||
    die "Java $spec found ($(command -v "$JAVA")) but Kafka 4 needs Java 17+; on Debian/Ubuntu: apt-get install -y openjdk-17-jre-headless, then set JAVA_HOME."
}

# Fetches the jars once; again only when pom.xml changes or a fetch was cut short.
ensure_libs() {
  local pom=$INFRA_DIR/kafka/pom.xml sum
  sum=$(sha1sum <"$pom" | cut -d ' ' -f 1)
  [[ -f $LIBS/.pom.sha1 && $(cat "$LIBS/.pom.sha1") == "$sum" ]] && return 0
  # kafka.sh and kafka-secure.sh share the jars: one fetch at a time (fd 8).
  mkdir -p "$STATE_DIR/run"
  exec 8>"$STATE_DIR/run/kafka-libs.lock"
  flock -w 900 8 || die "timed out waiting for another fetch of the Kafka jars"
  if [[ -f $LIBS/.pom.sha1 && $(cat "$LIBS/.pom.sha1") == "$sum" ]]; then
    exec 8>&-
    return 0
  fi
  command -v mvn >/dev/null ||
    die "mvn not found; it is needed once to fetch the Kafka jars from Maven Central. On Debian/Ubuntu: apt-get install -y maven"
  info "fetching Kafka jars from Maven Central into $LIBS (first start only)"
  rm -rf "$LIBS"
  mkdir -p "$LIBS"
  mkdir -p "$(dirname "$MVN_LOG")"
  if ! mvn -B -Dstyle.color=never -f "$pom" dependency:copy-dependencies \
    -DoutputDirectory="$LIBS" -DincludeScope=runtime >"$MVN_LOG" 2>&1; then
    show_log_tail "$MVN_LOG"
    die "Maven could not fetch the Kafka jars (network access to Maven Central is needed once; log: $MVN_LOG)"
  fi
  echo "$sum" >"$LIBS/.pom.sha1"
  exec 8>&-
}
