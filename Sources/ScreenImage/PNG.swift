import CZlib
import OmniRunError

/// PNG decoding (8-bit grey, grey+alpha, RGB, RGBA and palette images, not interlaced —
/// what X11 screen grabbers and browsers write) and encoding (8-bit RGB, a filter chosen
/// per row, zlib level 6). Alpha is dropped: screenshots are opaque.
public enum PNG {
    public static let signature: [UInt8] = [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]
    /// Largest image decoded (width × height): an 8K screen has 33 million pixels.
    public static let maxPixels = 40_000_000

    // MARK: decoding

    public static func decode(_ data: [UInt8]) throws -> RGBImage {
        guard data.starts(with: signature) else { throw malformed("not a PNG (bad signature)") }
        var header: Header?
        var palette: [UInt8] = []
        var compressed: [UInt8] = []
        var offset = signature.count
        var ended = false
        while !ended {
            guard offset + 12 <= data.count else { throw malformed("truncated (no IEND chunk)") }
            let length = Int(readUInt32(data, offset))
            guard length <= data.count - offset - 12 else { throw malformed("chunk longer than the file") }
            let typeStart = offset + 4
            let bodyStart = offset + 8
            let body = data[bodyStart..<bodyStart + length]
            let storedCRC = readUInt32(data, bodyStart + length)
            let computedCRC = data.withUnsafeBufferPointer {
                UInt32(crc32(0, $0.baseAddress! + typeStart, uInt(length + 4)))
            }
            guard storedCRC == computedCRC else { throw malformed("CRC mismatch") }
            let type = String(decoding: data[typeStart..<bodyStart], as: UTF8.self)
            switch type {
            case "IHDR": header = try Header(Array(body))
            case "PLTE": palette = Array(body)
            case "IDAT":
                guard header != nil else { throw malformed("IDAT before IHDR") }
                compressed.append(contentsOf: body)
            case "IEND": ended = true
            default: break  // ancillary chunks (text, gamma, physical size…) are not needed
            }
            offset = bodyStart + length + 4
        }
        guard let header else { throw malformed("no IHDR chunk") }
        if header.colorType == 3 && (palette.isEmpty || palette.count % 3 != 0) {
            throw malformed("palette image without a valid PLTE chunk")
        }
        let raw = try inflate(compressed, expected: header.height * (1 + header.rowBytes))
        let rows = try unfilter(raw, header: header)
        return try toRGB(rows, header: header, palette: palette)
    }

    struct Header {
        var width: Int
        var height: Int
        var colorType: UInt8
        var channels: Int

        var rowBytes: Int { width * channels }

        init(_ body: [UInt8]) throws {
            guard body.count == 13 else { throw malformed("IHDR has \(body.count) bytes, not 13") }
            width = Int(readUInt32(body, 0))
            height = Int(readUInt32(body, 4))
            guard width > 0, height > 0, width <= 1 << 20, height <= 1 << 20, width * height <= PNG.maxPixels else {
                throw OmniRunError(.unsupported, "PNG of \(width)×\(height) pixels is larger than \(PNG.maxPixels) pixels")
            }
            let bitDepth = body[8]
            colorType = body[9]
            switch colorType {
            case 0: channels = 1
            case 2: channels = 3
            case 3: channels = 1
            case 4: channels = 2
            case 6: channels = 4
            default: throw malformed("colour type \(colorType) does not exist")
            }
            guard bitDepth == 8 else { throw OmniRunError(.unsupported, "PNG bit depth \(bitDepth) (only 8 is read)") }
            guard body[10] == 0, body[11] == 0 else { throw malformed("unknown compression or filter method") }
            guard body[12] == 0 else { throw OmniRunError(.unsupported, "interlaced PNG") }
        }
    }

    static func inflate(_ compressed: [UInt8], expected: Int) throws -> [UInt8] {
        var output = [UInt8](repeating: 0, count: expected)
        var length = uLongf(expected)
        let status = output.withUnsafeMutableBufferPointer { out in
            compressed.withUnsafeBufferPointer { input in
                uncompress(out.baseAddress, &length, input.baseAddress, uLong(input.count))
            }
        }
        guard status == Z_OK, Int(length) == expected else {
            throw malformed("image data does not inflate to \(expected) bytes (zlib status \(status))")
        }
        return output
    }

    /// Undoes the per-row filters; returns the rows' bytes without their filter bytes.
    static func unfilter(_ raw: [UInt8], header: Header) throws -> [UInt8] {
        let stride = header.rowBytes
        let bpp = header.channels
        var rows = [UInt8](repeating: 0, count: header.height * stride)
        try raw.withUnsafeBufferPointer { input in
            try rows.withUnsafeMutableBufferPointer { out in
                for y in 0..<header.height {
                    let filter = input[y * (stride + 1)]
                    let source = y * (stride + 1) + 1
                    let row = y * stride
                    let previous = row - stride
                    for x in 0..<stride {
                        let a = x >= bpp ? Int(out[row + x - bpp]) : 0
                        let b = y > 0 ? Int(out[previous + x]) : 0
                        let c = (x >= bpp && y > 0) ? Int(out[previous + x - bpp]) : 0
                        let predicted: Int
                        switch filter {
                        case 0: predicted = 0
                        case 1: predicted = a
                        case 2: predicted = b
                        case 3: predicted = (a + b) / 2
                        case 4: predicted = paeth(a, b, c)
                        default: throw malformed("unknown row filter \(filter)")
                        }
                        out[row + x] = UInt8(truncatingIfNeeded: Int(input[source + x]) + predicted)
                    }
                }
            }
        }
        return rows
    }

    static func toRGB(_ rows: [UInt8], header: Header, palette: [UInt8]) throws -> RGBImage {
        let count = header.width * header.height
        if header.colorType == 2 { return RGBImage(width: header.width, height: header.height, pixels: rows) }
        var pixels = [UInt8](repeating: 0, count: count * 3)
        for index in 0..<count {
            let out = index * 3
            switch header.colorType {
            case 0, 4:
                let grey = rows[index * header.channels]
                pixels[out] = grey
                pixels[out + 1] = grey
                pixels[out + 2] = grey
            case 6:
                pixels[out] = rows[index * 4]
                pixels[out + 1] = rows[index * 4 + 1]
                pixels[out + 2] = rows[index * 4 + 2]
            default:  // 3: palette
                let entry = Int(rows[index]) * 3
                guard entry + 2 < palette.count else { throw malformed("palette index \(rows[index]) out of range") }
                pixels[out] = palette[entry]
                pixels[out + 1] = palette[entry + 1]
                pixels[out + 2] = palette[entry + 2]
            }
        }
        return RGBImage(width: header.width, height: header.height, pixels: pixels)
    }

    // MARK: encoding

    public static func encode(_ image: RGBImage, level: Int32 = 6) -> [UInt8] {
        let filtered = filter(image)
        var compressed = [UInt8](repeating: 0, count: Int(compressBound(uLong(filtered.count))))
        var length = uLongf(compressed.count)
        let status = compressed.withUnsafeMutableBufferPointer { out in
            filtered.withUnsafeBufferPointer { compress2(out.baseAddress, &length, $0.baseAddress, uLong($0.count), level) }
        }
        precondition(status == Z_OK, "zlib compress2 failed with \(status) on a buffer of compressBound size")
        compressed.removeSubrange(Int(length)...)

        var png = signature
        var header: [UInt8] = []
        appendUInt32(&header, UInt32(image.width))
        appendUInt32(&header, UInt32(image.height))
        header += [8, 2, 0, 0, 0]  // 8 bits, RGB, deflate, adaptive filters, not interlaced
        appendChunk(&png, "IHDR", header)
        appendChunk(&png, "IDAT", compressed)
        appendChunk(&png, "IEND", [])
        return png
    }

    /// Every row with the filter that gives the smallest sum of absolute differences
    /// (the usual heuristic), each row prefixed with its filter byte.
    static func filter(_ image: RGBImage) -> [UInt8] {
        let stride = image.width * 3
        var output = [UInt8](repeating: 0, count: image.height * (stride + 1))
        var candidates = [UInt8](repeating: 0, count: 5 * stride)
        image.pixels.withUnsafeBufferPointer { pixels in
            output.withUnsafeMutableBufferPointer { out in
                candidates.withUnsafeMutableBufferPointer { candidate in
                    for y in 0..<image.height {
                        let row = y * stride
                        var costs = (0, 0, 0, 0, 0)
                        for x in 0..<stride {
                            let value = Int(pixels[row + x])
                            let a = x >= 3 ? Int(pixels[row + x - 3]) : 0
                            let b = y > 0 ? Int(pixels[row - stride + x]) : 0
                            let c = (x >= 3 && y > 0) ? Int(pixels[row - stride + x - 3]) : 0
                            let none = UInt8(truncatingIfNeeded: value)
                            let sub = UInt8(truncatingIfNeeded: value - a)
                            let up = UInt8(truncatingIfNeeded: value - b)
                            let average = UInt8(truncatingIfNeeded: value - (a + b) / 2)
                            let predicted = UInt8(truncatingIfNeeded: value - PNG.paeth(a, b, c))
                            candidate[x] = none
                            candidate[stride + x] = sub
                            candidate[2 * stride + x] = up
                            candidate[3 * stride + x] = average
                            candidate[4 * stride + x] = predicted
                            costs.0 += cost(none)
                            costs.1 += cost(sub)
                            costs.2 += cost(up)
                            costs.3 += cost(average)
                            costs.4 += cost(predicted)
                        }
                        let all = [costs.0, costs.1, costs.2, costs.3, costs.4]
                        var best = 0
                        for filter in 1..<5 where all[filter] < all[best] { best = filter }
                        let start = y * (stride + 1)
                        out[start] = UInt8(best)
                        for x in 0..<stride { out[start + 1 + x] = candidate[best * stride + x] }
                    }
                }
            }
        }
        return output
    }

    /// A filtered byte's cost: its distance from zero as a signed byte.
    @inline(__always) static func cost(_ value: UInt8) -> Int { value < 128 ? Int(value) : 256 - Int(value) }

    // MARK: helpers

    static func paeth(_ a: Int, _ b: Int, _ c: Int) -> Int {
        let p = a + b - c
        let pa = abs(p - a), pb = abs(p - b), pc = abs(p - c)
        if pa <= pb && pa <= pc { return a }
        return pb <= pc ? b : c
    }

    static func readUInt32(_ bytes: [UInt8], _ offset: Int) -> UInt32 {
        bytes[offset..<offset + 4].reduce(0) { $0 << 8 | UInt32($1) }
    }

    static func appendUInt32(_ bytes: inout [UInt8], _ value: UInt32) {
        bytes += [UInt8(value >> 24), UInt8(value >> 16 & 0xFF), UInt8(value >> 8 & 0xFF), UInt8(value & 0xFF)]
    }

    static func appendChunk(_ png: inout [UInt8], _ type: String, _ body: [UInt8]) {
        appendUInt32(&png, UInt32(body.count))
        let typed = Array(type.utf8) + body
        png += typed
        let crc = typed.withUnsafeBufferPointer { crc32(0, $0.baseAddress, uInt($0.count)) }
        appendUInt32(&png, UInt32(crc))
    }

    static func malformed(_ message: String) -> OmniRunError {
        OmniRunError(.protocolViolation, "malformed PNG: \(message)")
    }
}

extension PNG {
    /// Width and height from the header, without decoding the image.
    public static func size(of data: [UInt8]) throws -> (width: Int, height: Int) {
        guard data.starts(with: signature), data.count >= 33,
            String(decoding: data[12..<16], as: UTF8.self) == "IHDR"
        else { throw malformed("no PNG header") }
        return (Int(readUInt32(data, 16)), Int(readUInt32(data, 20)))
    }
}
