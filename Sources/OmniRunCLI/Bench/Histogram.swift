/// A high-dynamic-range histogram of durations in the manner of HdrHistogram:
/// values (µs) land in buckets whose width grows with the value, so every
/// percentile is exact to three significant digits whatever the range, in
/// constant memory, however many samples.
struct Histogram: Sendable {
    /// Values below this are exact; above, each power of two is split into this many buckets.
    private static let subBuckets: Int64 = 2048
    private var counts: [Int64: Int] = [:]
    private(set) var count = 0
    private(set) var maxValue: Int64 = 0

    /// Records a duration in milliseconds.
    mutating func record(milliseconds: Double) {
        record(microseconds: Int64((milliseconds * 1000).rounded()))
    }

    mutating func record(microseconds value: Int64) {
        let v = max(value, 0)
        counts[Self.bucket(of: v), default: 0] += 1
        count += 1
        maxValue = max(maxValue, v)
    }

    /// Bucket key: the value with its bits below the top 11 significant ones cleared.
    private static func bucket(of value: Int64) -> Int64 {
        guard value >= subBuckets else { return value }
        let shift = Int64(63 - value.leadingZeroBitCount) - 10
        return (value >> shift) << shift
    }

    /// The value at percentile `p` (0...100) in milliseconds: the highest value
    /// of the bucket holding that rank (as HdrHistogram reports it).
    func percentile(_ p: Double) -> Double {
        guard count > 0 else { return 0 }
        if p >= 100 { return Double(maxValue) / 1000 }
        let rank = max(1, Int((p / 100 * Double(count)).rounded(.up)))
        var seen = 0
        for key in counts.keys.sorted() {
            seen += counts[key]!
            if seen >= rank {
                let width: Int64 = key < Self.subBuckets ? 1 : Int64(1) << (Int64(63 - key.leadingZeroBitCount) - 10)
                return Double(min(key + width - 1, maxValue)) / 1000
            }
        }
        return Double(maxValue) / 1000
    }
}
