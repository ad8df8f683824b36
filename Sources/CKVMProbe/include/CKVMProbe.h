#ifndef OMNIRUN_CKVMPROBE_H
#define OMNIRUN_CKVMPROBE_H

/// Runs a tiny real-mode guest loop of `iterations` decrements under KVM and
/// returns the wall time in microseconds, or a negative errno when KVM cannot run
/// it. Whether /dev/kvm exists says nothing about whether it is fast: nested
/// virtualisation can be a thousand times slower than emulation.
long long omr_kvm_probe(unsigned int iterations);

#endif
