#!/usr/bin/env bash
# The whole test suite, on a fresh machine too: installs the Kafka-protocol
# broker the integration tests start (tansu) and the browser the triage page
# test drives (chromium) when they are missing, then runs every test. The tests start and stop their own brokers on free loopback ports.
set -euo pipefail
cd "$(dirname "$0")/.."

export PATH="$HOME/.cargo/bin:$PATH"
if ! command -v tansu >/dev/null 2>&1; then
  echo "test.sh: installing tansu 0.6.0 (about 10 minutes, once)" >&2
  cargo install tansu --version 0.6.0 --locked --features dynostore,libsql
fi

# rdkafka links the system OpenSSL (TLS, SASL SCRAM and OAUTHBEARER), found through pkg-config.
if ! pkg-config --exists openssl 2>/dev/null; then
  echo "test.sh: installing libssl-dev and pkg-config (apt-get, once)" >&2
  sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update && $sudo apt-get install -y --no-install-recommends libssl-dev pkg-config
fi

# The triage page test drives a real browser: Debian's headless-capable Chromium.
if ! command -v chromium >/dev/null 2>&1; then
  echo "test.sh: installing chromium (apt-get, once)" >&2
  sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update && $sudo apt-get install -y --no-install-recommends chromium
fi

cargo test --profile test-release "$@"
