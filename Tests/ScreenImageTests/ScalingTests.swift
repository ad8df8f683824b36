import OmniRunError
import Testing

@testable import ScreenImage

@Suite("Screenshot scaling")
struct ScalingTests {
    @Test func targetSizesAndFactors() throws {
        let half = try ScreenshotScale(scale: 0.5).target(width: 1024, height: 768)
        #expect(half.width == 512 && half.height == 384 && half.factor == 0.5)
        // fit inside a box, aspect ratio kept: the tighter side decides
        let box = try ScreenshotScale(maxWidth: 1280, maxHeight: 800).target(width: 1920, height: 1080)
        #expect(box.width == 1280 && box.height == 720)
        #expect(abs(box.factor - 1280.0 / 1920.0) < 1e-9)
        let tall = try ScreenshotScale(maxHeight: 384).target(width: 1024, height: 768)
        #expect(tall.width == 512 && tall.height == 384)
        // never enlarged
        let larger = try ScreenshotScale(maxWidth: 4000).target(width: 1024, height: 768)
        #expect(larger.width == 1024 && larger.height == 768 && larger.factor == 1)
        #expect(try ScreenshotScale().isIdentity && ScreenshotScale(scale: 1).isIdentity)
        #expect(try !ScreenshotScale(scale: 0.99).isIdentity)
        let tiny = try ScreenshotScale(scale: 0.0001).target(width: 1024, height: 768)
        #expect(tiny.width == 1 && tiny.height == 1)
    }

    @Test func badScalesAreRefused() {
        for make in [
            { try ScreenshotScale(scale: 0) }, { try ScreenshotScale(scale: 1.5) }, { try ScreenshotScale(scale: -1) },
            { try ScreenshotScale(scale: .nan) }, { try ScreenshotScale(maxWidth: 0) }, { try ScreenshotScale(maxHeight: 100_000) },
            { try ScreenshotScale(scale: 0.5, maxWidth: 100) },
        ] {
            #expect(throws: OmniRunError.self) { _ = try make() }
        }
    }

    @Test func areaAveragingKeepsFlatColoursAndAveragesBlocks() {
        let flat = RGBImage(width: 1024, height: 768, red: 0x12, green: 0xAB, blue: 0x34)
        let small = flat.downscaled(width: 333, height: 250)
        #expect(small.width == 333 && small.height == 250)
        #expect(small.pixels == RGBImage(width: 333, height: 250, red: 0x12, green: 0xAB, blue: 0x34).pixels)

        // a 2×2 checkerboard of black and white averages to grey at half size
        var pixels = [UInt8]()
        for y in 0..<4 { for x in 0..<4 { pixels += [UInt8]((x + y) % 2 == 0 ? [0, 0, 0] : [255, 255, 255]) } }
        let board = RGBImage(width: 4, height: 4, pixels: pixels).downscaled(width: 2, height: 2)
        #expect(board.pixels == [UInt8](repeating: 128, count: 12))

        // the left half red, the right half blue: halving keeps the boundary sharp
        var halves = [UInt8]()
        for _ in 0..<6 { for x in 0..<8 { halves += x < 4 ? [255, 0, 0] : [0, 0, 255] } }
        let shrunk = RGBImage(width: 8, height: 6, pixels: halves).downscaled(width: 4, height: 3)
        #expect(shrunk.pixel(x: 1, y: 1) == [255, 0, 0] && shrunk.pixel(x: 2, y: 1) == [0, 0, 255])
        // a non-integer ratio mixes the column that straddles the boundary
        let odd = RGBImage(width: 8, height: 6, pixels: halves).downscaled(width: 3, height: 2)
        #expect(odd.pixel(x: 0, y: 0) == [255, 0, 0] && odd.pixel(x: 2, y: 0) == [0, 0, 255])
        #expect(odd.pixel(x: 1, y: 0) == [128, 0, 128])
    }
}
