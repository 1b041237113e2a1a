#!/usr/bin/env bash
# Sign a Powens webhook body the way Powens does (CONTRACT.md §3) and POST it to docrelay.
# usage: examples/send-webhook.sh EVENT FILE   (env: DOCRELAY_URL, INBOUND_WEBHOOK_SECRET)
set -euo pipefail
event=$1 file=$2
url=${DOCRELAY_URL:-http://localhost:3000}
secret=${INBOUND_WEBHOOK_SECRET:?set INBOUND_WEBHOOK_SECRET (in development: the admin token)}
path=/webhooks/powens/$event
date=$(date -u +%Y-%m-%dT%H:%M:%SZ)
# HMAC-SHA256 over "POST.<path>.<date>.<raw body>", base64.
signature=$( { printf 'POST.%s.%s.' "$path" "$date"; cat "$file"; } | openssl dgst -sha256 -hmac "$secret" -binary | base64)
curl -sS -X POST "$url$path" \
  -H 'Content-Type: application/json' \
  -H "BI-Signature-Date: $date" \
  -H "BI-Signature: $signature" \
  --data-binary "@$file"
echo
