#!/usr/bin/env bash
# Builds tests/peers/sdkcheck (our program that calls every operation of the API reference through
# upstream's codersdk) into the peers' cache directory, once per pinned coder version:
#
#   $CODERD_PEERS_CACHE/sdkcheck/<version>/sdkcheck   (default cache /var/cache/coderd-rs/peers)
#
# An existing build of the same version is reused only when it was built from the same
# *.go, go.mod and go.sum (their hash is kept beside it), so editing the program rebuilds it.
# The last line of the output is `CODERD_SDKCHECK=<path>` for .ci/run (and anyone) to export;
# when Go is missing or the build fails it says so on stderr and prints no such line.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cache="${CODERD_PEERS_CACHE:-/var/cache/coderd-rs/peers}"
export GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS="-mod=readonly -buildvcs=false"

say() { printf 'sdkcheck: %s\n' "$*" >&2; }

if ! command -v go >/dev/null 2>&1; then
  say "FAILED: no go on PATH; sdkcheck not built"
  exit 0
fi
m=github.com/coder/coder/v2
v="$(awk -v m="$m" '$1 == "require" && $2 == m { print $3 } $1 == m && $2 ~ /^v/ { print $2 }' "$here/go.mod" | head -n1)"
if [ -z "$v" ]; then
  say "FAILED: tests/peers/sdkcheck/go.mod requires no $m"
  exit 0
fi
out="$cache/sdkcheck/$v/sdkcheck"
sum="$(cd "$here" && cat ./*.go go.mod go.sum | sha256sum | cut -d' ' -f1)"
if [ -x "$out" ] && [ "$(cat "$out.sha256" 2>/dev/null)" = "$sum" ]; then
  say "reusing $out"
else
  mkdir -p "$(dirname "$out")"
  start=$SECONDS
  say "building against github.com/coder/coder/v2 $v (a cold build takes minutes)"
  if (cd "$here" && go build -trimpath -ldflags "-s -w" -o "$out.tmp.$$" .); then
    mv -f "$out.tmp.$$" "$out"
    printf '%s\n' "$sum" >"$out.sha256"
    say "built $out in $((SECONDS - start))s"
  else
    rm -f "$out.tmp.$$"
    say "FAILED to build tests/peers/sdkcheck"
    exit 0
  fi
fi
printf 'CODERD_SDKCHECK=%s\n' "$out"
