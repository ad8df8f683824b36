import OmniRunError

/// How a screenshot is shrunk, as computer-use agents ask for it: by a factor (`scale`),
/// or to fit inside a box (`maxWidth` / `maxHeight`, aspect ratio kept). Never enlarged.
/// The factor reported back (output width ÷ screen width) is what an agent divides its
/// coordinates in the image by to get screen coordinates.
public struct ScreenshotScale: Sendable, Equatable {
    public var scale: Double?
    public var maxWidth: Int?
    public var maxHeight: Int?

    public static let largestSide = 16_384

    public init(scale: Double? = nil, maxWidth: Int? = nil, maxHeight: Int? = nil) throws {
        if let scale, !(scale > 0 && scale <= 1) || !scale.isFinite {
            throw OmniRunError(.invalidArgument, "scale must be a number greater than 0 and at most 1")
        }
        for (name, value) in [("maxWidth", maxWidth), ("maxHeight", maxHeight)] {
            if let value, !(1...Self.largestSide).contains(value) {
                throw OmniRunError(.invalidArgument, "\(name) must be an integer from 1 to \(Self.largestSide)")
            }
        }
        if scale != nil && (maxWidth != nil || maxHeight != nil) {
            throw OmniRunError(.invalidArgument, "give either scale or maxWidth/maxHeight, not both")
        }
        self.scale = scale
        self.maxWidth = maxWidth
        self.maxHeight = maxHeight
    }

    /// No scaling asked for.
    public var isIdentity: Bool { (scale == nil || scale == 1) && maxWidth == nil && maxHeight == nil }

    /// The output size for a screen of `width` × `height`, and the factor applied.
    public func target(width: Int, height: Int) -> (width: Int, height: Int, factor: Double) {
        var factor = scale ?? 1
        if let maxWidth { factor = min(factor, Double(maxWidth) / Double(width)) }
        if let maxHeight { factor = min(factor, Double(maxHeight) / Double(height)) }
        factor = min(factor, 1)
        if factor >= 1 { return (width, height, 1) }
        let newWidth = max(1, min(width, Int((Double(width) * factor).rounded())))
        let newHeight = max(1, min(height, Int((Double(height) * factor).rounded())))
        return (newWidth, newHeight, Double(newWidth) / Double(width))
    }
}
