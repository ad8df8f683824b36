extension RGBImage {
    /// The image shrunk to `width` × `height` by area averaging: every output pixel is the
    /// mean of the source area it covers, partly covered source pixels weighted by their
    /// share. Text stays legible and a flat colour stays exactly that colour. Sizes larger
    /// than the image are not allowed (screenshots are only ever made smaller).
    public func downscaled(width newWidth: Int, height newHeight: Int) -> RGBImage {
        precondition(newWidth >= 1 && newHeight >= 1 && newWidth <= width && newHeight <= height, "downscaling only")
        if newWidth == width && newHeight == height { return self }
        let columns = Self.coverage(source: width, target: newWidth)
        let rows = Self.coverage(source: height, target: newHeight)

        // Horizontal pass: every source row to `newWidth` pixels (floating point, unrounded).
        var horizontal = [Float](repeating: 0, count: height * newWidth * 3)
        pixels.withUnsafeBufferPointer { source in
            for y in 0..<height {
                let sourceRow = y * width * 3
                let targetRow = y * newWidth * 3
                for (x, taps) in columns.enumerated() {
                    var r: Float = 0, g: Float = 0, b: Float = 0
                    for tap in taps {
                        let index = sourceRow + tap.index * 3
                        r += Float(source[index]) * tap.weight
                        g += Float(source[index + 1]) * tap.weight
                        b += Float(source[index + 2]) * tap.weight
                    }
                    horizontal[targetRow + x * 3] = r
                    horizontal[targetRow + x * 3 + 1] = g
                    horizontal[targetRow + x * 3 + 2] = b
                }
            }
        }
        // Vertical pass, rounded to bytes.
        var output = [UInt8](repeating: 0, count: newWidth * newHeight * 3)
        let rowBytes = newWidth * 3
        for (y, taps) in rows.enumerated() {
            for offset in 0..<rowBytes {
                var sum: Float = 0
                for tap in taps { sum += horizontal[tap.index * rowBytes + offset] * tap.weight }
                output[y * rowBytes + offset] = UInt8(max(0, min(255, sum.rounded())))
            }
        }
        return RGBImage(width: newWidth, height: newHeight, pixels: output)
    }

    struct Tap {
        var index: Int
        var weight: Float
    }

    /// For each of `target` output positions, the source positions it covers and their
    /// weights (summing to 1).
    static func coverage(source: Int, target: Int) -> [[Tap]] {
        let step = Double(source) / Double(target)
        return (0..<target).map { position in
            let start = Double(position) * step
            let end = min(Double(source), start + step)
            var taps: [Tap] = []
            var index = Int(start)
            while Double(index) < end && index < source {
                let covered = min(end, Double(index + 1)) - max(start, Double(index))
                if covered > 1e-9 { taps.append(Tap(index: index, weight: Float(covered / step))) }
                index += 1
            }
            return taps
        }
    }
}
