#!/usr/bin/env bash
# Installs the system packages emu needs, if any is missing, and says what it does.
# Sourced by scripts/up, scripts/test and scripts/bench; safe to run again.
set -euo pipefail

emu_need_packages() {
  local missing=()
  command -v nft >/dev/null || missing+=(nftables)
  command -v ip >/dev/null || missing+=(iproute2)
  command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || missing+=(nginx-light)
  command -v curl >/dev/null || missing+=(curl)
  command -v busybox >/dev/null || missing+=(busybox)
  command -v dig >/dev/null || missing+=(dnsutils)
  command -v setpriv >/dev/null || missing+=(util-linux)
  command -v conntrack >/dev/null || [ -x /usr/sbin/conntrack ] || missing+=(conntrack)
  # Link impairments (emu fault delay/loss/…) queue packets with the NFQUEUE target.
  command -v iptables-restore >/dev/null || [ -x /usr/sbin/iptables-restore ] || missing+=(iptables)
  if [ "${EMU_WITH_VAGRANT:-0}" = 1 ]; then
    command -v vagrant >/dev/null || missing+=(vagrant)
  fi
  # The benchmark's data path throughput: pods of the networkstatic/iperf3 image run the host's
  # iperf3 (logic/src/images.rs). The DNS benchmark's load generator (dnsperf) and its baseline
  # server (dnsmasq, run by a pod of the 4km3/dnsmasq image): dnsmasq-base is the program alone,
  # without the dnsmasq package's service, so nothing starts listening on the host. The ingress
  # benchmark's load generator (wrk, run in the outside world; --latency gives its percentiles).
  # The scale benchmark's baseline, Mininet with Linux bridges (brctl): without its recommended
  # openvswitch-switch (a service), nothing it installs starts a daemon or touches the network.
  if [ "${EMU_WITH_BENCH:-0}" = 1 ]; then
    command -v iperf3 >/dev/null || missing+=(iperf3)
    command -v dnsperf >/dev/null || missing+=(dnsperf)
    [ -x /usr/sbin/dnsmasq ] || missing+=(dnsmasq-base)
    command -v wrk >/dev/null || missing+=(wrk)
    command -v mn >/dev/null || missing+=(mininet)
    command -v brctl >/dev/null || [ -x /usr/sbin/brctl ] || missing+=(bridge-utils)
  fi
  if [ ${#missing[@]} -gt 0 ]; then
    echo "==> Installing missing system packages: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
  # Debian's nginx package starts a host nginx on port 80; emu runs its own nginx inside pods only.
  if [ -n "${missing[*]:-}" ] && [[ " ${missing[*]} " == *" nginx-light "* ]]; then
    if command -v systemctl >/dev/null && systemctl is-active --quiet nginx 2>/dev/null; then
      systemctl stop nginx || true
    fi
  fi
  return 0
}

emu_need_root() {
  if [ "$(id -u)" != 0 ]; then
    echo "error: run this as root (it installs packages and creates network namespaces): sudo $0 $*" >&2
    exit 1
  fi
}

# Installs the built emu and every program it runs into ${1:-/usr/local}, with its man pages and
# shell completions. `emu install` knows the list of programs (emu_core::images::companion_programs),
# so no script keeps a second one.
emu_install() {
  local prefix="${1:-/usr/local}"
  echo "==> Installing emu into ${prefix} (target/debug/emu install --prefix ${prefix})"
  target/debug/emu install --prefix "$prefix" >/dev/null
}

emu_build() {
  command -v cargo >/dev/null || { echo "error: cargo (the Rust toolchain) is required: https://rustup.rs" >&2; exit 1; }
  echo "==> Building emu (cargo build --workspace)"
  cargo build --workspace --quiet
}
