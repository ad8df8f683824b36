import AgentProtocol
import Glibc

/// A screen capture straight from the X server: the agent speaks the core X11 protocol on
/// the display's Unix socket (connection set-up, then one `GetImage` of the root window in
/// ZPixmap format) and turns the pixels into RGB. No program is started, nothing is written
/// to a file; ~25× faster than starting a grabber under emulation. Blocking: run it on a
/// thread pool.
struct X11Capture {
    struct Image {
        var width: Int
        var height: Int
        /// Three bytes per pixel, rows top to bottom.
        var rgb: [UInt8]
    }

    /// Largest screen captured (the X protocol's own limit is 65535 per side).
    static let maxPixels = 40_000_000

    static func capture(socketPath: String, timeoutSeconds: Int = 20) throws -> Image {
        let fd = try connect(socketPath, timeoutSeconds: timeoutSeconds)
        defer { close(fd) }
        // Set-up: little-endian ('l'), protocol 11.0, no authorisation (Xvnc runs without -auth).
        try writeAll(fd, [0x6C, 0, 11, 0, 0, 0, 0, 0, 0, 0, 0, 0])
        let prefix = try readExactly(fd, 8)
        let extra = try readExactly(fd, Int(u16(prefix, 6)) * 4)
        guard prefix[0] == 1 else {
            let reason = String(decoding: extra.prefix(Int(prefix[1])), as: UTF8.self)
            throw failure("the X server refused the connection: \(reason)")
        }
        let setup = try Setup(extra)

        // GetImage (opcode 73), ZPixmap (2), length 5 words: the whole root window, all planes.
        var request: [UInt8] = [73, 2, 5, 0]
        request += le32(setup.root) + [0, 0, 0, 0] + le16(setup.width) + le16(setup.height) + [0xFF, 0xFF, 0xFF, 0xFF]
        try writeAll(fd, request)
        let reply = try readExactly(fd, 32)
        guard reply[0] == 1 else { throw failure("GetImage failed with X error \(reply[1])") }
        let data = try readExactly(fd, Int(u32(reply, 4)) * 4)
        return try setup.toRGB(data)
    }

    /// What the capture needs from the set-up reply: the root window, its size, and how
    /// its pixels are laid out.
    struct Setup {
        var root: UInt32
        var width: UInt16
        var height: UInt16
        var bitsPerPixel: Int
        var scanlinePad: Int
        var bigEndian: Bool
        var masks: (red: UInt32, green: UInt32, blue: UInt32)

        init(_ data: [UInt8]) throws {
            guard data.count >= 32 else { throw X11Capture.failure("short set-up reply") }
            let vendorLength = Int(u16(data, 16))
            let formatCount = Int(data[21])
            bigEndian = data[22] == 1
            var offset = 32 + (vendorLength + 3) / 4 * 4
            var formats: [UInt8: (bpp: Int, pad: Int)] = [:]
            for _ in 0..<formatCount {
                guard offset + 8 <= data.count else { throw X11Capture.failure("short pixmap formats") }
                formats[data[offset]] = (Int(data[offset + 1]), Int(data[offset + 2]))
                offset += 8
            }
            guard offset + 40 <= data.count else { throw X11Capture.failure("no screen in the set-up reply") }
            root = u32(data, offset)
            width = u16(data, offset + 20)
            height = u16(data, offset + 22)
            let visual = u32(data, offset + 32)
            let depth = data[offset + 38]
            let depthCount = Int(data[offset + 39])
            guard let format = formats[depth], [16, 24, 32].contains(format.bpp), format.pad % 8 == 0, format.pad > 0 else {
                throw X11Capture.failure("unsupported pixel format for depth \(depth)")
            }
            guard width > 0, height > 0, Int(width) * Int(height) <= X11Capture.maxPixels else {
                throw X11Capture.failure("screen of \(width)×\(height) pixels")
            }
            bitsPerPixel = format.bpp
            scanlinePad = format.pad
            offset += 40
            var found: (UInt32, UInt32, UInt32)?
            for _ in 0..<depthCount where found == nil {
                guard offset + 8 <= data.count else { break }
                let visuals = Int(u16(data, offset + 2))
                offset += 8
                for index in 0..<visuals where offset + index * 24 + 24 <= data.count {
                    let at = offset + index * 24
                    if u32(data, at) == visual { found = (u32(data, at + 8), u32(data, at + 12), u32(data, at + 16)) }
                }
                offset += visuals * 24
            }
            guard let found, found.0 != 0, found.1 != 0, found.2 != 0 else {
                throw X11Capture.failure("the root visual is not a true-colour visual")
            }
            masks = found
        }

        func toRGB(_ data: [UInt8]) throws -> Image {
            let width = Int(self.width), height = Int(self.height)
            let stride = (width * bitsPerPixel + scanlinePad - 1) / scanlinePad * scanlinePad / 8
            guard data.count >= stride * height else { throw X11Capture.failure("GetImage returned \(data.count) bytes, not \(stride * height)") }
            let bytes = bitsPerPixel / 8
            var rgb = [UInt8](repeating: 0, count: width * height * 3)
            if bitsPerPixel == 32, !bigEndian, masks == (0xFF_0000, 0xFF00, 0xFF) {
                // The usual case (24-bit colour in 32-bit little-endian pixels: B, G, R, X):
                // a straight byte shuffle, which matters under emulation.
                data.withUnsafeBufferPointer { source in
                    rgb.withUnsafeMutableBufferPointer { out in
                        var target = 0
                        for y in 0..<height {
                            var at = y * stride
                            for _ in 0..<width {
                                out[target] = source[at + 2]
                                out[target + 1] = source[at + 1]
                                out[target + 2] = source[at]
                                target += 3
                                at += 4
                            }
                        }
                    }
                }
                return Image(width: width, height: height, rgb: rgb)
            }
            let red = Channel(masks.red), green = Channel(masks.green), blue = Channel(masks.blue)
            data.withUnsafeBufferPointer { source in
                rgb.withUnsafeMutableBufferPointer { out in
                    var target = 0
                    for y in 0..<height {
                        var at = y * stride
                        for _ in 0..<width {
                            var pixel: UInt32 = 0
                            for byte in 0..<bytes {
                                let value = UInt32(source[at + byte])
                                pixel |= bigEndian ? value << (8 * (bytes - 1 - byte)) : value << (8 * byte)
                            }
                            out[target] = red.value(pixel)
                            out[target + 1] = green.value(pixel)
                            out[target + 2] = blue.value(pixel)
                            target += 3
                            at += bytes
                        }
                    }
                }
            }
            return Image(width: width, height: height, rgb: rgb)
        }
    }

    /// One colour channel of a true-colour pixel: its mask's shift and width, widened to 8 bits.
    struct Channel {
        var shift: UInt32
        var bits: UInt32
        var mask: UInt32

        init(_ mask: UInt32) {
            self.mask = mask
            shift = UInt32(mask.trailingZeroBitCount)
            bits = UInt32((mask >> shift).nonzeroBitCount)  // true-colour masks are contiguous
        }

        func value(_ pixel: UInt32) -> UInt8 {
            let raw = (pixel & mask) >> shift
            if bits == 8 { return UInt8(truncatingIfNeeded: raw) }
            let maximum = (UInt32(1) << bits) - 1
            return UInt8(truncatingIfNeeded: (raw * 255 + maximum / 2) / maximum)
        }
    }

    // MARK: socket

    static func connect(_ path: String, timeoutSeconds: Int) throws -> Int32 {
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw failure("socket: errno \(errno)") }
        var timeout = timeval(tv_sec: timeoutSeconds, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        guard bytes.count < MemoryLayout.size(ofValue: address.sun_path) else {
            close(fd)
            throw failure("display socket path too long")
        }
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            raw.copyBytes(from: bytes)
            raw[bytes.count] = 0
        }
        let status = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
            }
        }
        guard status == 0 else {
            let code = errno
            close(fd)
            throw failure("cannot connect to the X display: errno \(code)")
        }
        return fd
    }

    static func writeAll(_ fd: Int32, _ bytes: [UInt8]) throws {
        var sent = 0
        while sent < bytes.count {
            let count = bytes.withUnsafeBytes { write(fd, $0.baseAddress! + sent, bytes.count - sent) }
            if count < 0 && errno == EINTR { continue }
            guard count > 0 else { throw failure("write to the X display failed: errno \(errno)") }
            sent += count
        }
    }

    static func readExactly(_ fd: Int32, _ count: Int) throws -> [UInt8] {
        var buffer = [UInt8](repeating: 0, count: count)
        var received = 0
        while received < count {
            let got = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress! + received, count - received) }
            if got < 0 && errno == EINTR { continue }
            guard got > 0 else { throw failure(got == 0 ? "the X display closed the connection" : "read from the X display failed: errno \(errno)") }
            received += got
        }
        return buffer
    }

    static func u16(_ bytes: [UInt8], _ at: Int) -> UInt16 { UInt16(bytes[at]) | UInt16(bytes[at + 1]) << 8 }
    static func u32(_ bytes: [UInt8], _ at: Int) -> UInt32 {
        UInt32(bytes[at]) | UInt32(bytes[at + 1]) << 8 | UInt32(bytes[at + 2]) << 16 | UInt32(bytes[at + 3]) << 24
    }
    static func le16(_ value: UInt16) -> [UInt8] { [UInt8(value & 0xFF), UInt8(value >> 8)] }
    static func le32(_ value: UInt32) -> [UInt8] { [UInt8(value & 0xFF), UInt8(value >> 8 & 0xFF), UInt8(value >> 16 & 0xFF), UInt8(value >> 24)] }

    static func failure(_ message: String) -> AgentFailure {
        AgentFailure(status: 500, code: AgentErrorCode.failed, message: "screen capture: \(message)")
    }
}
