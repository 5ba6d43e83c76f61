#!/usr/bin/env bash
# Runs every test of the workspace, the real-server and tool tests
# included, on a machine with only the Rust toolchain: installs what is
# missing first (Debian or Ubuntu, as root or with sudo), then runs
# `cargo test --workspace --all-features` with no test skipped.
#
# Usage: scripts/test.sh [extra cargo test arguments]
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-test-tools.sh
# Never skip the real-server tests: they are installed now.
export SUPERVISED_REQUIRE_SERVERS=1
exec cargo test --workspace --all-features "$@"
