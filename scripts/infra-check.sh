#!/usr/bin/env bash
# `make infra-check`: lint the SAM template, offline (no AWS credentials, no AWS calls).
#   - cfn-lint infra/template.yaml: every error and warning rule, plus the informational
#     rules .cfnlintrc.yaml adds; any match fails
#   - sam validate --lint: the SAM CLI's own validation of the template, then cfn-lint again
#     as the SAM CLI runs it
# cfn-lint and the SAM CLI come from .tools/venv (scripts/tools.sh installs them pinned).
set -euo pipefail
cd "$(dirname "$0")/.."

# shellcheck source=scripts/tools.sh
source scripts/tools.sh

export SAM_CLI_TELEMETRY=0
template=infra/template.yaml

echo "infra-check: cfn-lint $template" >&2
cfn-lint "$template"
echo "infra-check: sam validate --lint --template $template" >&2
sam validate --lint --template "$template"
echo "infra-check: ok" >&2
