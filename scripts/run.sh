#!/usr/bin/env bash
# Runs presave locally in dev mode: the fake provider (standing in for
# Spotify, Google and Apple), the API and one worker. Ctrl-C stops them all.
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
  # Apple Music: a MusicKit key the fake creates and knows.
  mkdir -p .local/run
  export APPLE_MUSIC_API_URL=${APPLE_MUSIC_API_URL:-$base/} MUSICKIT_JS_URL=${MUSICKIT_JS_URL:-$base/musickit/v3/musickit.js}
  export FAKE_APPLE_KEY_FILE=${FAKE_APPLE_KEY_FILE:-.local/run/applemusic.p8}
  export APPLE_TEAM_ID=${APPLE_TEAM_ID:-FAKETEAM01} APPLE_KEY_ID=${APPLE_KEY_ID:-FAKEKEY001} APPLE_PRIVATE_KEY_FILE=${APPLE_PRIVATE_KEY_FILE:-$FAKE_APPLE_KEY_FILE}
  FAKE_ADDR=$FAKE_ADDR bin/fakeprovider & pids+=($!)
  for _ in $(seq 50); do [[ -s $FAKE_APPLE_KEY_FILE ]] && break; sleep 0.1; done
fi
bin/worker & pids+=($!)
bin/api & pids+=($!)
echo "presave is running: API on http://${API_ADDR:-127.0.0.1:8080} (healthz at /healthz), worker health on http://${WORKER_ADDR:-127.0.0.1:9090}/healthz. Ctrl-C stops."
wait -n "${pids[@]}"
