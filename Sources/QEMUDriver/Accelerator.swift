import CKVMProbe
import Foundation
import Logging

/// Which way guest code runs.
public enum Accelerator: String, Sendable, Codable {
    case kvm
    case tcg
}

public enum AcceleratorChoice: String, Sendable {
    case auto, kvm, tcg
}

/// Decides KVM versus TCG by measuring, not by the device existing: nested KVM can
/// be slower than emulation by orders of magnitude.
enum AcceleratorProbe {
    /// 100k iterations take ~0.1 ms on real hardware virtualisation; where KVM is
    /// ~1000× slower they take ~100 ms. Anything over 20 ms is not worth using.
    static let iterations: UInt32 = 100_000
    static let thresholdMicros: Int64 = 20_000

    static func decide(_ choice: AcceleratorChoice, logger: Logger) -> Accelerator {
        switch choice {
        case .kvm: return .kvm
        case .tcg: return .tcg
        case .auto:
            let micros = omr_kvm_probe(iterations)
            if micros < 0 {
                logger.info("KVM unusable, using TCG", metadata: ["errno": "\(-micros)"])
                return .tcg
            }
            let fast = micros <= thresholdMicros
            logger.info(
                "KVM speed probe", metadata: ["micros": "\(micros)", "iterations": "\(iterations)", "use": "\(fast ? "kvm" : "tcg")"])
            return fast ? .kvm : .tcg
        }
    }
}

/// The host's TSC rate in kHz, handed to the guest kernel so that it need not
/// calibrate (calibration under TCG sometimes hangs the boot).
enum HostTSC {
    static func kilohertz() -> Int? {
        if let text = try? String(contentsOfFile: "/sys/devices/system/cpu/cpu0/tsc_freq_khz", encoding: .utf8),
            let value = Int(text.trimmingCharacters(in: .whitespacesAndNewlines)), value > 0
        {
            return value
        }
        guard let cpuinfo = try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8) else { return nil }
        for line in cpuinfo.split(separator: "\n") where line.hasPrefix("cpu MHz") {
            if let value = line.split(separator: ":").last.flatMap({ Double($0.trimmingCharacters(in: .whitespaces)) }) {
                return Int((value * 1000).rounded())
            }
        }
        return nil
    }
}
