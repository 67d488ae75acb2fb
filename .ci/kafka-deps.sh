#!/usr/bin/env bash
# Installs what the Kafka integration tests need, only when it is missing: the tansu broker.
set -euo pipefail
export PATH="$HOME/.cargo/bin:$PATH"
command -v tansu >/dev/null || cargo install tansu --version 0.6.0 --locked --features dynostore,libsql
