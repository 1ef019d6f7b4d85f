# Shared helpers for the scripts in this folder. Source it; do not run it.
# shellcheck shell=bash

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export SSO_CACHE_DIR="${SSO_CACHE_DIR:-$HOME/.cache/sso-operator}"
# Build outputs live outside the clone so that fresh clones (and CI) build incrementally.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$SSO_CACHE_DIR/target}"
export PATH="$SSO_CACHE_DIR/bin:$PATH"

step() { printf '\n==> %s\n' "$*"; }

# Installs the Debian packages named as arguments that are not installed yet.
ensure_apt_packages() {
  local missing=()
  for pkg in "$@"; do
    [[ "$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null)" == "install ok installed" ]] || missing+=("$pkg")
  done
  if ((${#missing[@]})); then
    step "installing Debian packages: ${missing[*]}"
    local sudo=""
    [[ $(id -u) -ne 0 ]] && sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
  fi
}

# Checks that a command exists, or explains how to get it.
require_command() {
  if ! command -v "$1" >/dev/null; then
    echo "error: '$1' is needed: $2" >&2
    exit 1
  fi
}

# Builds kubectl from the same Kubernetes release as the local control plane.
ensure_kubectl() {
  step "building kubectl (cached after the first build)"
  (cd "$repo_root/tests/kube" && go build -o "$SSO_CACHE_DIR/bin/kubectl.new" k8s.io/kubernetes/cmd/kubectl \
    && mv "$SSO_CACHE_DIR/bin/kubectl.new" "$SSO_CACHE_DIR/bin/kubectl")
}
