/// An 8-bit RGB image, rows top to bottom, three bytes per pixel (what screenshots are:
/// opaque; an alpha channel is dropped when a PNG is decoded).
public struct RGBImage: Sendable, Equatable {
    public let width: Int
    public let height: Int
    /// `width * height * 3` bytes: R, G, B of each pixel, row by row.
    public var pixels: [UInt8]

    public init(width: Int, height: Int, pixels: [UInt8]) {
        precondition(width > 0 && height > 0 && pixels.count == width * height * 3, "pixel count does not match the size")
        self.width = width
        self.height = height
        self.pixels = pixels
    }

    /// An image of one colour.
    public init(width: Int, height: Int, red: UInt8, green: UInt8, blue: UInt8) {
        var pixels = [UInt8](repeating: 0, count: width * height * 3)
        for index in stride(from: 0, to: pixels.count, by: 3) {
            pixels[index] = red
            pixels[index + 1] = green
            pixels[index + 2] = blue
        }
        self.init(width: width, height: height, pixels: pixels)
    }

    /// The pixel at (x, y) as `[r, g, b]`.
    public func pixel(x: Int, y: Int) -> [UInt8] {
        let start = (y * width + x) * 3
        return Array(pixels[start..<start + 3])
    }
}
