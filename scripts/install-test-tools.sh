#!/usr/bin/env bash
# Installs what the tests need beyond the Rust toolchain, when missing:
# PostgreSQL and etcd for the lease tests (which start them on 127.0.0.1
# themselves), protoc for etcd-client's build, promtool,
# systemd-analyze and Chromium for the operator's kit, and the pinned
# kubernetes-validate and prometheus-operator's CRD models. Debian or
# Ubuntu, as root or with sudo.
set -euo pipefail

missing=()
compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null || missing+=(postgresql)
command -v etcd >/dev/null || missing+=(etcd-server)
command -v protoc >/dev/null || missing+=(protobuf-compiler)
command -v promtool >/dev/null || missing+=(prometheus)
command -v systemd-analyze >/dev/null || missing+=(systemd)
command -v chromium >/dev/null || missing+=(chromium)
if ((${#missing[@]})); then
    as_root=()
    if [[ $(id -u) -ne 0 ]]; then
        if ! command -v sudo >/dev/null; then
            echo "scripts/install-test-tools.sh: ${missing[*]} missing, and installing needs root or sudo" >&2
            exit 1
        fi
        as_root=(sudo)
    fi
    echo "installing ${missing[*]}"
    "${as_root[@]}" apt-get update -qq
    DEBIAN_FRONTEND=noninteractive "${as_root[@]}" apt-get install -y -qq "${missing[@]}" >/dev/null
fi
if ! command -v kubernetes-validate >/dev/null; then
    python3 -m pip install --quiet --disable-pip-version-check kubernetes-validate==1.34.1
fi
# prometheus-operator's CRD schemas as typed models (v0.80.1), for
# deploy/kubernetes/check-monitoring.py.
if ! python3 -c "import cloudcoil.models.prometheus_operator" 2>/dev/null; then
    python3 -m pip install --quiet --disable-pip-version-check \
        cloudcoil==0.6.0 cloudcoil-models-prometheus-operator==0.80.1.0
fi
