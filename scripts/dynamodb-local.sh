#!/usr/bin/env bash
# Run DynamoDB Local (shared DB; in memory unless DYNAMODB_LOCAL_DB_PATH) in the background
# for local dev and tests.
#
#   scripts/dynamodb-local.sh start  [port]   # default port 8000; no-op if already running+healthy
#   scripts/dynamodb-local.sh stop   [port]   # SIGTERM it and wait for it to exit
#   scripts/dynamodb-local.sh status [port]   # exit 0 if running and answering ListTables
#   scripts/dynamodb-local.sh restart [port]
#   scripts/dynamodb-local.sh kill   [port]   # SIGKILL, no shutdown: a crash (fault tests)
#   scripts/dynamodb-local.sh pause  [port]   # SIGSTOP: a hung server; `resume` (SIGCONT) or `kill` ends it
#   scripts/dynamodb-local.sh resume [port]
#
# State: .tools/run/dynamodb-<port>.pid and .tools/run/dynamodb-<port>.log
# Endpoint for clients: http://127.0.0.1:<port>
# Clients must send a SigV4-shaped Authorization header whose access key id is
# alphanumeric ([A-Za-z0-9]+, e.g. AWS_ACCESS_KEY_ID=local); the signature, secret and
# region are not checked. With -sharedDb every key/region sees the same tables.
#
# Env knobs: DYNAMODB_LOCAL_START_TIMEOUT (seconds, default 30),
#            DYNAMODB_LOCAL_JAVA_OPTS (extra JVM flags, default none),
#            DYNAMODB_LOCAL_DB_PATH (a directory: keep the data there, `-dbPath <dir>`,
#              instead of in memory, so it survives a stop, kill or restart; created if
#              missing; default unset: in memory).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)"
RUN_DIR="$ROOT/.tools/run"

usage() {
    echo "usage: $0 {start|stop|status|restart|kill|pause|resume} [port]   (default port 8000)" >&2
    exit 2
}

[[ $# -ge 1 && $# -le 2 ]] || usage
CMD="$1"
PORT="${2:-8000}"
[[ "$PORT" =~ ^[0-9]+$ && "$PORT" -ge 1 && "$PORT" -le 65535 ]] || { echo "invalid port: $PORT" >&2; exit 2; }

PID_FILE="$RUN_DIR/dynamodb-$PORT.pid"
LOG_FILE="$RUN_DIR/dynamodb-$PORT.log"
START_TIMEOUT="${DYNAMODB_LOCAL_START_TIMEOUT:-30}"

log() { echo "dynamodb-local: $*" >&2; }

# Python helper (python3 is always there: the tooling's venv needs it).
#   probe PORT                    -> one ListTables call: 0 ok, 1 nothing listening, 2 bad answer
#   wait  PORT PID TIMEOUT        -> poll ListTables until ok (0), PID died (3) or timeout (4)
#   portfree PORT                 -> 0 if nothing accepts TCP on 127.0.0.1:PORT, else 1
ddb_py() {
    python3 - "$@" <<'PY'
import json, os, socket, sys, time, urllib.error, urllib.request

def list_tables(port):
    req = urllib.request.Request(
        f"http://127.0.0.1:{port}/",
        data=b"{}",
        method="POST",
        headers={
            "Content-Type": "application/x-amz-json-1.0",
            "X-Amz-Target": "DynamoDB_20120810.ListTables",
            # DynamoDB Local only parses this: the access key id must be [A-Za-z0-9]+;
            # signature/region are not verified.
            "Authorization": "AWS4-HMAC-SHA256 Credential=local/20260101/us-east-1/dynamodb/aws4_request, "
                             "SignedHeaders=host, Signature=0",
        },
    )
    try:
        with urllib.request.urlopen(req, timeout=3) as r:
            body = r.read()
            if r.status == 200 and "TableNames" in json.loads(body):
                return 0, body
            return 2, body
    except urllib.error.HTTPError as e:
        return 2, f"HTTP {e.code}: {e.read()[:300]!r}".encode()
    except (OSError, ValueError) as e:  # refused / reset / timeout / not JSON yet
        return 1, str(e).encode()

def alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie (exited, not yet reaped) counts as dead.
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return True

cmd, port = sys.argv[1], int(sys.argv[2])
if cmd == "probe":
    rc, body = list_tables(port)
    if rc == 2:
        sys.stderr.write(f"unexpected ListTables answer on port {port}: {body[:300]!r}\n")
    sys.exit(rc)
elif cmd == "wait":
    pid, deadline = int(sys.argv[3]), time.monotonic() + float(sys.argv[4])
    last = b""
    while time.monotonic() < deadline:
        if not alive(pid):
            sys.exit(3)
        rc, last = list_tables(port)
        if rc == 0:
            sys.exit(0)
        time.sleep(0.2)
    sys.stderr.write(f"last ListTables attempt: {last[:300]!r}\n")
    sys.exit(4)
elif cmd == "portfree":
    s = socket.socket()
    s.settimeout(1)
    try:
        s.connect(("127.0.0.1", port))
        sys.exit(1)
    except OSError:
        sys.exit(0)
    finally:
        s.close()
PY
}

# Is $1 (a pid) still a live (non-zombie) process?
pid_alive() {
    kill -0 "$1" 2>/dev/null || return 1
    [[ "$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null)" != "Z" ]]
}

# Prints the pid from the pid file if that process is alive and is DynamoDB Local.
running_pid() {
    [[ -f "$PID_FILE" ]] || return 1
    local pid
    pid="$(<"$PID_FILE")"
    [[ "$pid" =~ ^[0-9]+$ ]] || return 1
    pid_alive "$pid" || return 1
    # Guard against a recycled pid: must really be our java process.
    if [[ -r "/proc/$pid/cmdline" ]]; then
        tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q 'DynamoDBLocal.jar' || return 1
    fi
    echo "$pid"
}

log_tail() {
    if [[ -f "$LOG_FILE" ]]; then
        echo "----- last lines of $LOG_FILE -----" >&2
        tail -n 40 "$LOG_FILE" >&2 || true
        echo "-----" >&2
    fi
}

do_status() {
    local pid
    if ! pid="$(running_pid)"; then
        log "not running on port $PORT"
        return 3
    fi
    if ddb_py probe "$PORT"; then
        log "running on http://127.0.0.1:$PORT (pid $pid)"
        return 0
    fi
    log "process $pid is alive but not answering ListTables on port $PORT"
    return 1
}

do_start() {
    local pid rc
    if pid="$(running_pid)"; then
        if ddb_py probe "$PORT"; then
            log "already running on http://127.0.0.1:$PORT (pid $pid)"
            return 0
        fi
        # Possibly still booting (started by a concurrent call): give it the usual time.
        log "pid $pid exists but is not answering yet; waiting up to ${START_TIMEOUT}s"
        rc=0; ddb_py wait "$PORT" "$pid" "$START_TIMEOUT" || rc=$?
        if [[ $rc -eq 0 ]]; then
            log "running on http://127.0.0.1:$PORT (pid $pid)"
            return 0
        fi
        log "ERROR: pid $pid on port $PORT is unhealthy; run '$0 restart $PORT'"
        log_tail
        return 1
    fi
    rm -f "$PID_FILE"

    if ! ddb_py portfree "$PORT"; then
        log "ERROR: port $PORT is already in use by a process this script did not start"
        return 1
    fi

    # Make sure Java and the jar are there; this also exports DYNAMODB_LOCAL_DIR.
    # shellcheck source=scripts/tools.sh
    source "$ROOT/scripts/tools.sh"
    local dir="$DYNAMODB_LOCAL_DIR"
    [[ -f "$dir/DynamoDBLocal.jar" ]] || { log "ERROR: no DynamoDBLocal.jar in $dir"; return 1; }

    mkdir -p "$RUN_DIR"
    : >"$LOG_FILE"
    log "starting on port $PORT (log: ${LOG_FILE#"$ROOT"/})"
    # New session (setsid) so Ctrl-C / SIGHUP aimed at the caller's terminal or process
    # group does not take it down; the inner shell records its own pid and then execs
    # java, so the pid file holds the JVM's pid exactly.
    local launcher=() java_opts=() storage=(-inMemory)
    read -r -a java_opts <<<"${DYNAMODB_LOCAL_JAVA_OPTS:-}"
    if [[ -n "${DYNAMODB_LOCAL_DB_PATH:-}" ]]; then
        mkdir -p "$DYNAMODB_LOCAL_DB_PATH"
        local db_path
        db_path="$(cd "$DYNAMODB_LOCAL_DB_PATH" && pwd -P)"
        storage=(-dbPath "$db_path")
        log "data directory: $db_path"
    fi
    command -v setsid >/dev/null 2>&1 && launcher=(setsid)
    # shellcheck disable=SC2016
    # It runs in $RUN_DIR, where it writes its dynamodb-local-metadata.json,
    # not in the caller's directory (a test's is its crate's).
    "${launcher[@]}" nohup bash -c 'echo $$ >"$1"; cd "$2"; shift 2; exec "$@"' _ "$PID_FILE" "$RUN_DIR" \
        java "${java_opts[@]}" \
        "-Djava.library.path=$dir/DynamoDBLocal_lib" \
        -jar "$dir/DynamoDBLocal.jar" \
        "${storage[@]}" -sharedDb -port "$PORT" \
        >>"$LOG_FILE" 2>&1 </dev/null &

    # Wait for the pid file (written by the launcher shell before exec).
    local i
    for ((i = 0; i < 50; i++)); do
        [[ -s "$PID_FILE" ]] && break
        sleep 0.1
    done
    [[ -s "$PID_FILE" ]] || { log "ERROR: launcher did not write $PID_FILE"; log_tail; return 1; }
    pid="$(<"$PID_FILE")"

    rc=0; ddb_py wait "$PORT" "$pid" "$START_TIMEOUT" || rc=$?
    case $rc in
        0)
            log "ready on http://127.0.0.1:$PORT (pid $pid)"
            return 0
            ;;
        3)
            log "ERROR: DynamoDB Local (pid $pid) exited during startup"
            rm -f "$PID_FILE"
            ;;
        *)
            log "ERROR: DynamoDB Local (pid $pid) did not answer ListTables on 127.0.0.1:$PORT within ${START_TIMEOUT}s"
            kill_and_wait "$pid" || true
            rm -f "$PID_FILE"
            ;;
    esac
    log_tail
    return 1
}

# SIGTERM, wait up to 10 s, then SIGKILL and wait up to 5 s more.
kill_and_wait() {
    local pid="$1" i
    kill -TERM "$pid" 2>/dev/null || true
    # A paused process (`pause`) acts on SIGTERM only once continued.
    kill -CONT "$pid" 2>/dev/null || true
    for ((i = 0; i < 100; i++)); do
        pid_alive "$pid" || return 0
        sleep 0.1
    done
    log "pid $pid ignored SIGTERM for 10s; sending SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
    for ((i = 0; i < 50; i++)); do
        pid_alive "$pid" || return 0
        sleep 0.1
    done
    log "ERROR: pid $pid is still alive"
    return 1
}

do_stop() {
    local pid
    if ! pid="$(running_pid)"; then
        rm -f "$PID_FILE"
        log "not running on port $PORT"
        return 0
    fi
    log "stopping pid $pid (port $PORT)"
    kill_and_wait "$pid" || return 1
    rm -f "$PID_FILE"
    log "stopped"
}

# SIGKILL: the JVM gets no chance to answer, flush or close anything.
do_kill() {
    local pid i
    if ! pid="$(running_pid)"; then
        rm -f "$PID_FILE"
        log "not running on port $PORT"
        return 0
    fi
    kill -KILL "$pid" 2>/dev/null || true
    for ((i = 0; i < 100; i++)); do
        if ! pid_alive "$pid"; then
            rm -f "$PID_FILE"
            log "killed pid $pid (port $PORT)"
            return 0
        fi
        sleep 0.05
    done
    log "ERROR: pid $pid survived SIGKILL"
    return 1
}

# SIGSTOP/SIGCONT: the process keeps its port, and the kernel keeps accepting
# connections and requests for it, but nothing answers while it is stopped.
do_signal() {
    local signal="$1" pid
    pid="$(running_pid)" || { log "not running on port $PORT"; return 1; }
    kill "-$signal" "$pid"
    log "sent SIG$signal to pid $pid (port $PORT)"
}

case "$CMD" in
    start) do_start ;;
    stop) do_stop ;;
    status) do_status ;;
    restart) do_stop && do_start ;;
    kill) do_kill ;;
    pause) do_signal STOP ;;
    resume) do_signal CONT ;;
    *) usage ;;
esac
