#!/usr/bin/env bash
# Runs presave locally in dev mode: the fake provider (standing in for
# Spotify and Google), the API and one worker. Ctrl-C stops them all.
set -euo pipefail
cd "$(dirname "$0")/.."
export PRESAVE_DEV=${PRESAVE_DEV:-1}
pids=()
cleanup() { kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; }
trap cleanup EXIT INT TERM
if [[ -x bin/fakeprovider ]]; then
  FAKE_ADDR=${FAKE_ADDR:-127.0.0.1:8090}
  base="http://$FAKE_ADDR"
  export SPOTIFY_ACCOUNTS_URL=${SPOTIFY_ACCOUNTS_URL:-$base} SPOTIFY_API_URL=${SPOTIFY_API_URL:-$base/v1/}
  export GOOGLE_AUTH_URL=${GOOGLE_AUTH_URL:-$base/o/oauth2/auth} GOOGLE_TOKEN_URL=${GOOGLE_TOKEN_URL:-$base/google/token}
  export GOOGLE_REVOKE_URL=${GOOGLE_REVOKE_URL:-$base/google/revoke} GOOGLE_USERINFO_URL=${GOOGLE_USERINFO_URL:-$base/google/v1/userinfo}
  export YOUTUBE_API_URL=${YOUTUBE_API_URL:-$base/}
  FAKE_ADDR=$FAKE_ADDR bin/fakeprovider & pids+=($!)
fi
bin/worker & pids+=($!)
bin/api & pids+=($!)
echo "presave is running: API on http://${API_ADDR:-127.0.0.1:8080} (healthz at /healthz), worker health on http://${WORKER_ADDR:-127.0.0.1:9090}/healthz. Ctrl-C stops."
wait -n "${pids[@]}"
