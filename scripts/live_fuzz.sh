#!/usr/bin/env bash
# The API's contract checked against a live server: `tenantry serve --demo` in a scratch
# directory, then schemathesis over its own /openapi.json with the demo owner's access token,
# 50 examples per operation: no server error, every status and content type documented.
#
#   scripts/live_fuzz.sh                      # the embedded SQLite default
#   scripts/live_fuzz.sh postgresql://postgres@127.0.0.1:5432/tenantry_fuzz   # an empty database
#   TENANTRY_FUZZ_PATHS='/model-access|/compliance' scripts/live_fuzz.sh   # only paths matching
#
# Operations that end the caller's own session or account (logout, revoking a session, erasure)
# are left out: the stateful phase follows links to them and the rest of the run would be 401s.
# A Stripe webhook secret is set, as a deployment taking Stripe webhooks has one (without it
# /webhooks/stripe answers its documented 503). Prints schemathesis's report; exits with its code.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
db=${1:-}
examples=${TENANTRY_FUZZ_EXAMPLES:-50}
only=()
[[ -n "${TENANTRY_FUZZ_PATHS:-}" ]] && only=(--include-path-regex "$TENANTRY_FUZZ_PATHS")
dir=$(mktemp -d)
port=$("$root/.venv/bin/python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
export TENANTRY_ACCESS_TOKEN_TTL_SECONDS=86400 TENANTRY_STRIPE_WEBHOOK_SECRET=whsec_live_fuzz
cd "$dir"
if [[ -n "$db" ]]; then
    export TENANTRY_DATABASE_URL=$db
    "$root/.venv/bin/tenantry" migrate
fi
"$root/.venv/bin/tenantry" serve --demo --port "$port" >serve.log 2>&1 &
server=$!
trap 'kill "$server" 2>/dev/null; rm -rf "$dir"' EXIT
for _ in $(seq 1 120); do
    curl -sf -m 5 "http://127.0.0.1:$port/healthz" >/dev/null && break
    sleep 1
done
password=$(grep -o "demo@example.com / [^ ]*" serve.log | awk '{print $3}')
token=$(curl -sf -X POST "http://127.0.0.1:$port/api/v1/auth/login" \
    -H 'content-type: application/json' \
    -d "{\"email\":\"demo@example.com\",\"password\":\"$password\"}" |
    "$root/.venv/bin/python" -c 'import json, sys; print(json.load(sys.stdin)["access_token"])')
"$root/.venv/bin/schemathesis" run "http://127.0.0.1:$port/openapi.json" -n "$examples" \
    -c not_a_server_error,status_code_conformance,content_type_conformance \
    -H "Authorization: Bearer $token" --continue-on-failure --request-timeout 60 \
    --exclude-path-regex '(/auth/logout|/me/sessions/\{session_id\}|/users/\{user_id\})$' \
    "${only[@]}"
