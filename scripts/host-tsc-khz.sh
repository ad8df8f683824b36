#!/usr/bin/env bash
# Print the host's TSC rate in kHz (an integer), for the guest command line
# "tsc_early_khz=<kHz> tsc=reliable no_timer_check" (see ARCHITECTURE.md, Guest boot facts).
# Sources, best first: the kernel log's "tsc: Refined TSC clocksource calibration: X MHz",
# then "tsc: Detected X MHz processor" (dmesg, else journalctl -k), then /proc/cpuinfo "cpu MHz".
# -v prints the source used on stderr.
set -euo pipefail

verbose=0
[[ "${1:-}" == "-v" ]] && verbose=1

mhz_to_khz() { # "2299.998" -> 2299998
  awk -v m="$1" 'BEGIN { printf "%d\n", m * 1000 + 0.5 }'
}

from_log() { # LOGTEXT -> MHz
  local refined detected
  refined=$(grep -oE 'tsc: Refined TSC clocksource calibration: [0-9]+(\.[0-9]+)? MHz' <<<"$1" | tail -n1 | awk '{ print $(NF-1) }')
  detected=$(grep -oE 'tsc: Detected [0-9]+(\.[0-9]+)? MHz processor' <<<"$1" | tail -n1 | awk '{ print $3 }')
  printf '%s\n' "${refined:-$detected}"
}

mhz="" src=""
if log=$(dmesg 2>/dev/null) && [[ -n "$log" ]]; then
  mhz=$(from_log "$log") src="dmesg"
fi
if [[ -z "$mhz" ]] && command -v journalctl >/dev/null 2>&1; then
  if log=$(journalctl -k -b --no-pager -q 2>/dev/null | grep 'tsc:'); then
    mhz=$(from_log "$log") src="journalctl -k"
  fi
fi
if [[ -z "$mhz" ]]; then
  mhz=$(awk -F: '/^cpu MHz/ { gsub(/ /, "", $2); print $2; exit }' /proc/cpuinfo) src="/proc/cpuinfo"
fi
[[ "$mhz" =~ ^[0-9]+(\.[0-9]+)?$ ]] || { echo "host-tsc-khz: cannot determine the TSC rate" >&2; exit 1; }
((verbose == 0)) || echo "host-tsc-khz: $mhz MHz from $src" >&2
mhz_to_khz "$mhz"
