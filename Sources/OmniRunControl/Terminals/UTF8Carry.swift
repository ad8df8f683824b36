/// Holds back an incomplete UTF-8 sequence at the end of a chunk, so that text
/// split across chunks is not turned into replacement characters.
package struct UTF8Carry: Sendable {
    private var pending: [UInt8] = []

    package init() {}

    package mutating func text(_ bytes: [UInt8]) -> String {
        let all = pending + bytes
        let cut = Self.completePrefixLength(all)
        pending = Array(all[cut...])
        return String(decoding: all[..<cut], as: UTF8.self)
    }

    package mutating func flush() -> String {
        defer { pending = [] }
        return String(decoding: pending, as: UTF8.self)
    }

    /// Length of the longest prefix that does not end inside a multi-byte sequence.
    package static func completePrefixLength(_ bytes: [UInt8]) -> Int {
        var i = bytes.count - 1
        var back = 0
        while i >= 0, back < 4 {
            let byte = bytes[i]
            if byte & 0xC0 != 0x80 {
                let needed: Int
                if byte & 0x80 == 0 { needed = 1 } else if byte & 0xE0 == 0xC0 { needed = 2 } else if byte & 0xF0 == 0xE0 { needed = 3 } else if byte & 0xF8 == 0xF0 { needed = 4 } else { return bytes.count }
                return bytes.count - i >= needed ? bytes.count : i
            }
            i -= 1
            back += 1
        }
        return bytes.count
    }
}
