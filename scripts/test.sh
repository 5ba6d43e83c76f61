#!/usr/bin/env bash
# Runs every test of the workspace, the real-server and tool tests
# included, on a machine with only the Rust toolchain: installs what is
# missing first (Debian or Ubuntu, as root or with sudo), then runs
# `cargo test --workspace --all-features` with no test skipped.
#
# A supervised body's poll takes a generic path in a release build and a
# path compiled once in a debug build (`RunOnce::poll` says why): the
# unit, supervision, panic, group and attribute tests then run again in
# release.
#
# Usage: scripts/test.sh [extra cargo test arguments]
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-test-tools.sh
# Never skip the real-server tests: they are installed now.
export SUPERVISED_REQUIRE_SERVERS=1
cargo test --workspace --all-features "$@"
cargo test --release --all-features -p supervised-core --lib \
    --test supervisor --test hostile_bodies --test panic_hook --test group "$@"
cargo test --release --all-features -p supervised --test attribute "$@"
