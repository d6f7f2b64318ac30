#!/usr/bin/env sh
# Starts a workspace's Coder agent: fetches the agent binary this deployment serves and runs it.
# ${ACCESS_URL}, ${AUTH_TYPE}, ${OS} and ${ARCH} are filled in before the script reaches the
# machine (the coder provider fills the first two, the server the others).
set -eu

dir="${CODER_AGENT_BINARY_DIR:-$(mktemp -d -t coder-agent.XXXXXX)}"
url="${ACCESS_URL}bin/coder-${OS}-${ARCH}"
cd "$dir"

fetch() {
  if command -v curl >/dev/null 2>&1; then
    curl -fsSL --compressed "$url" -o coder
  elif command -v wget >/dev/null 2>&1; then
    wget -q "$url" -O coder
  elif command -v busybox >/dev/null 2>&1; then
    busybox wget -q "$url" -O coder
  else
    echo "error: neither curl, wget nor busybox is installed to download $url" >&2
    return 1
  fi
}

tries=0
until fetch; do
  tries=$((tries + 1))
  echo "error: downloading the Coder agent from $url failed (attempt $tries); retrying in 30s" >&2
  sleep 30
done
chmod +x coder

export CODER_AGENT_AUTH="${AUTH_TYPE}"
export CODER_AGENT_URL="${ACCESS_URL}"
exec ./coder agent
