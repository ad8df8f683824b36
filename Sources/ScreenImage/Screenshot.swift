/// A screenshot as the API answers it: a PNG, the factor it was shrunk by, and the
/// screen's own size.
public struct Screenshot: Sendable {
    public var png: [UInt8]
    /// Image width ÷ screen width (1 when not shrunk).
    public var factor: Double
    public var screenWidth: Int
    public var screenHeight: Int

    /// From a raw capture: shrunk if asked, encoded as PNG.
    public init(capture image: RGBImage, scaling: ScreenshotScale) {
        let target = scaling.target(width: image.width, height: image.height)
        let output = target.factor == 1 ? image : image.downscaled(width: target.width, height: target.height)
        self.init(png: PNG.encode(output), factor: target.factor, screenWidth: image.width, screenHeight: image.height)
    }

    /// From a PNG: kept as it is when no scaling is asked for (only its size is read),
    /// otherwise decoded, shrunk and encoded again.
    public init(png: [UInt8], scaling: ScreenshotScale) throws {
        if scaling.isIdentity {
            let size = try PNG.size(of: png)
            self.init(png: png, factor: 1, screenWidth: size.width, screenHeight: size.height)
            return
        }
        try self.init(capture: PNG.decode(png), scaling: scaling)
    }

    public init(png: [UInt8], factor: Double, screenWidth: Int, screenHeight: Int) {
        self.png = png
        self.factor = factor
        self.screenWidth = screenWidth
        self.screenHeight = screenHeight
    }
}
