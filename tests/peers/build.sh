#!/usr/bin/env bash
# Builds the upstream programs coderd-rs's tests run against, from the Go modules pinned beside
# this script, into a cache directory outside the checkout:
#
#   coder/      the coder CLI (github.com/coder/coder/v2, -tags slim: CLI and agent, no server)
#   provider/   the coder terraform provider, laid out as a terraform filesystem mirror, and a
#               terraform CLI configuration that installs coder/coder from it with no network
#   terraform/  terraform v1.5.7, only when no terraform (or tofu) is on PATH
#
# Each is built once per pinned version (the directory names carry the version) and reused
# after. A part that cannot be built is reported and skipped; the others are still built.
# The last lines of the output are `KEY=value` lines for .ci/run (and anyone else) to export:
#   CODERD_CODER_CLI=<path>   TF_CLI_CONFIG_FILE=<path>   CODERD_TERRAFORM_DIR=<dir for PATH>
#
# Environment:
#   CODERD_PEERS_CACHE            cache directory (default /var/cache/coderd-rs/peers)
#   CODERD_PEERS_BUILD_TERRAFORM  auto (default: only without terraform/tofu on PATH), always, never
#   CODERD_PEERS_ONLY             space-separated subset of: coder provider terraform
#   GOMODCACHE, GOCACHE           Go's own caches (Go's defaults are outside the checkout too)
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cache="${CODERD_PEERS_CACHE:-/var/cache/coderd-rs/peers}"
build_terraform="${CODERD_PEERS_BUILD_TERRAFORM:-auto}"
only="${CODERD_PEERS_ONLY:-coder provider terraform}"

# The pinned toolchain is whatever `go` is here; never download another one. Builds are static
# and path-independent, as upstream's release builds are.
export GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS="-mod=readonly -buildvcs=false"

say() { printf 'peers: %s\n' "$*" >&2; }

wanted() { [[ " $only " == *" $1 "* ]]; }

# The version a module's go.mod requires of `module`.
pinned() {
  awk -v m="$2" '$1 == "require" && $2 == m { print $3 } $1 == m && $2 ~ /^v/ { print $2 }' \
    "$here/$1/go.mod" | head -n1
}

# build <module dir> <package> <output file> [go build args...]: builds into a temporary file
# first, so an interrupted build never leaves a binary that looks finished.
build() {
  local dir="$1" pkg="$2" out="$3"
  shift 3
  mkdir -p "$(dirname "$out")"
  local start=$SECONDS
  say "building $pkg (cold builds take minutes; see tests/peers/README.md)"
  if (cd "$here/$dir" && go build -trimpath "$@" -o "$out.tmp.$$" "$pkg"); then
    mv -f "$out.tmp.$$" "$out"
    say "built $out in $((SECONDS - start))s"
  else
    rm -f "$out.tmp.$$"
    say "FAILED to build $pkg (from tests/peers/$dir)"
    return 1
  fi
}

if ! command -v go >/dev/null 2>&1; then
  say "FAILED: no go on PATH; nothing built"
  exit 0
fi
mkdir -p "$cache"
say "cache: $cache ($(go version))"

exports=()

# The coder CLI, version stamped as upstream's release builds stamp it.
if wanted coder; then
  v="$(pinned coder github.com/coder/coder/v2)"
  cli="$cache/coder/$v/coder"
  if [ -x "$cli" ] || build coder github.com/coder/coder/v2/cmd/coder "$cli" -tags slim \
    -ldflags "-s -w -X github.com/coder/coder/v2/buildinfo.tag=${v#v}"; then
    say "coder CLI $v: $cli"
    exports+=("CODERD_CODER_CLI=$cli")
  fi
fi

# The coder provider, as a filesystem mirror (the unpacked layout: hostname/namespace/type/
# version/os_arch/), and a CLI configuration that takes coder/coder only from it.
if wanted provider; then
  v="$(pinned provider github.com/coder/terraform-provider-coder/v2)"
  os_arch="$(go env GOOS)_$(go env GOARCH)"
  root="$cache/provider/$v"
  plugin="$root/mirror/registry.terraform.io/coder/coder/${v#v}/$os_arch/terraform-provider-coder_$v"
  if [ -x "$plugin" ] || build provider github.com/coder/terraform-provider-coder/v2 "$plugin" \
    -ldflags "-s -w"; then
    cat >"$root/terraformrc.tmp.$$" <<EOF
# Written by tests/peers/build.sh: coder/coder $v from the local mirror, never the network.
provider_installation {
  filesystem_mirror {
    path    = "$root/mirror"
    include = ["registry.terraform.io/coder/coder"]
  }
  direct {
    exclude = ["registry.terraform.io/coder/coder"]
  }
}
EOF
    mv -f "$root/terraformrc.tmp.$$" "$root/terraformrc"
    say "coder provider $v: $root/terraformrc"
    exports+=("TF_CLI_CONFIG_FILE=$root/terraformrc")
  fi
fi

# Terraform, for machines that have none.
if wanted terraform; then
  existing="$(command -v terraform || command -v tofu || true)"
  case "$build_terraform" in
    always) existing="" ;;
    never) existing="${existing:-none}" ;;
    auto) ;;
    *)
      say "CODERD_PEERS_BUILD_TERRAFORM must be auto, always or never, not $build_terraform"
      exit 2
      ;;
  esac
  if [ -n "$existing" ]; then
    say "terraform: not built ($existing is used)"
  else
    v="$(pinned terraform github.com/hashicorp/terraform)"
    dir="$cache/terraform/$v"
    if [ -x "$dir/terraform" ] || build terraform github.com/hashicorp/terraform "$dir/terraform" \
      -ldflags "-s -w"; then
      say "terraform $v: $dir/terraform"
      exports+=("CODERD_TERRAFORM_DIR=$dir")
    fi
  fi
fi

for e in ${exports[@]+"${exports[@]}"}; do
  printf '%s\n' "$e"
done
