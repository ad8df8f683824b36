/// A sandbox's public id: `sb_` and 8 lowercase base-36 characters, so that it is a
/// valid DNS label inside preview host names.
public struct SandboxID: Hashable, Sendable, Codable, CustomStringConvertible, Comparable {
    public let rawValue: String

    public init?(_ rawValue: String) {
        guard Self.isValid(rawValue) else { return nil }
        self.rawValue = rawValue
    }

    public static func random() -> SandboxID {
        var generator = SystemRandomNumberGenerator()
        return random(using: &generator)
    }

    public static func random<G: RandomNumberGenerator>(using generator: inout G) -> SandboxID {
        let alphabet = Array("0123456789abcdefghijklmnopqrstuvwxyz")
        let suffix = String((0..<8).map { _ in alphabet[Int(generator.next(upperBound: UInt64(alphabet.count)))] })
        return SandboxID(uncheckedRawValue: "sb_" + suffix)
    }

    private init(uncheckedRawValue: String) { self.rawValue = uncheckedRawValue }

    public static func isValid(_ value: String) -> Bool {
        let bytes = Array(value.utf8)
        guard bytes.count == 11, value.hasPrefix("sb_") else { return false }
        return bytes[3...].allSatisfy { ($0 >= 48 && $0 <= 57) || ($0 >= 97 && $0 <= 122) }
    }

    /// A hostname for the guest (a DNS label: no underscore).
    public var hostname: String { "sb-" + rawValue.dropFirst(3) }

    public var description: String { rawValue }

    public static func < (lhs: SandboxID, rhs: SandboxID) -> Bool { lhs.rawValue < rhs.rawValue }

    public init(from decoder: any Decoder) throws {
        let value = try decoder.singleValueContainer().decode(String.self)
        guard Self.isValid(value) else {
            throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath, debugDescription: "invalid sandbox id"))
        }
        self.rawValue = value
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(rawValue)
    }
}
