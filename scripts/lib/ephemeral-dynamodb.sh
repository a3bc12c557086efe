# Sourced by scripts/test.sh and scripts/bench.sh (from the repo root, after
# scripts/tools.sh): starts DynamoDB Local on a free port (or
# $DYNAMODB_LOCAL_PORT), stops it when the shell exits, and points the AWS
# SDK at it with dummy credentials. Extra cleanup goes in $ephemeral_cleanup.
ddb_port="${DYNAMODB_LOCAL_PORT:-$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')}"
scripts/dynamodb-local.sh start "$ddb_port"
ephemeral_cleanup=""
trap 'eval "$ephemeral_cleanup"; scripts/dynamodb-local.sh stop "$ddb_port" >/dev/null 2>&1' EXIT
export AWS_ENDPOINT_URL_DYNAMODB="http://127.0.0.1:$ddb_port"
export AWS_REGION=us-east-1 AWS_ACCESS_KEY_ID=local AWS_SECRET_ACCESS_KEY=local
unset LATCHKEY_TABLE_NAME
