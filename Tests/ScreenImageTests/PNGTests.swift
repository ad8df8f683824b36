import Foundation
import OmniRunError
import Testing

@testable import ScreenImage

/// The PNG codec against an independent one: Python's zlib and struct
/// (`scripts/testdata/png-make.py` writes, `png-probe.py` reads).
@Suite("PNG codec")
struct PNGTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().path

    static func python(_ script: String, _ arguments: [String]) throws -> Data {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/python3")
        process.arguments = ["\(root)/scripts/testdata/\(script)"] + arguments
        let out = Pipe()
        process.standardOutput = out
        try process.run()
        let data = out.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        try #require(process.terminationStatus == 0, "\(script) failed")
        return data
    }

    static func temporaryFile() -> String {
        FileManager.default.temporaryDirectory.appendingPathComponent("png-\(UUID().uuidString).png").path
    }

    @Test(arguments: [0, 2, 3, 4, 6])
    func decodesEveryColourTypeAndFilter(colourType: Int) throws {
        let file = Self.temporaryFile()
        defer {
            try? FileManager.default.removeItem(atPath: file)
            try? FileManager.default.removeItem(atPath: file + ".rgb")
        }
        _ = try Self.python("png-make.py", [file, "\(colourType)", "37", "23"])
        let png = try [UInt8](Data(contentsOf: URL(fileURLWithPath: file)))
        let expected = try [UInt8](Data(contentsOf: URL(fileURLWithPath: file + ".rgb")))
        let image = try PNG.decode(png)
        #expect(image.width == 37 && image.height == 23)
        #expect(image.pixels == expected)
    }

    @Test func encodedImagesReadBackExactlyElsewhere() throws {
        // a gradient with noise and a flat area: every filter gets chosen somewhere
        var pixels = [UInt8]()
        for y in 0..<50 {
            for x in 0..<61 {
                if y > 30 {
                    pixels += [0x12, 0xAB, 0x34]
                } else {
                    pixels += [UInt8(x * 4 & 0xFF), UInt8((x * y) & 0xFF), UInt8((y * 7 + (x % 3)) & 0xFF)]
                }
            }
        }
        let image = RGBImage(width: 61, height: 50, pixels: pixels)
        let png = PNG.encode(image)
        #expect(try PNG.decode(png) == image)

        let file = Self.temporaryFile()
        defer { try? FileManager.default.removeItem(atPath: file) }
        try Data(png).write(to: URL(fileURLWithPath: file))
        let points = [(0, 0), (60, 0), (17, 13), (30, 29), (0, 49), (60, 49)]
        let probed = try JSONSerialization.jsonObject(with: Self.python("png-probe.py", [file] + points.map { "\($0.0),\($0.1)" }))
        let object = try #require(probed as? [String: Any])
        #expect(object["width"] as? Int == 61 && object["height"] as? Int == 50)
        let read = try #require(object["pixels"] as? [String: [Int]])
        for (x, y) in points {
            #expect(read["\(x),\(y)"] == image.pixel(x: x, y: y).map(Int.init), "pixel \(x),\(y)")
        }
    }

    @Test func badInputIsAnErrorNotACrash() throws {
        let good = PNG.encode(RGBImage(width: 4, height: 3, red: 1, green: 2, blue: 3))
        var badCRC = good
        badCRC[20] ^= 0xFF
        var cases: [[UInt8]] = [[], Array("GIF89a".utf8), Array(good.prefix(20)), badCRC, Array(good.prefix(good.count - 12))]
        // a header claiming a huge image
        var huge = good
        huge.replaceSubrange(16..<24, with: [0, 0, 0x80, 0, 0, 0, 0x80, 0])
        cases.append(huge)
        for data in cases {
            #expect(throws: OmniRunError.self) { try PNG.decode(data) }
        }
    }
}
