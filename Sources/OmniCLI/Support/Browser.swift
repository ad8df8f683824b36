import Foundation

/// Hands a URL to the local browser: `$BROWSER` when set (the usual convention), else
/// `xdg-open` (or macOS's `open`) from the PATH; says so when there is none.
func openInBrowser(_ url: String) {
    let env = ProcessInfo.processInfo.environment
    var candidates: [String] = []
    if let browser = env["BROWSER"], !browser.isEmpty { candidates.append(browser) }
    candidates += ["xdg-open", "open"]
    let folders = (env["PATH"] ?? "/usr/local/bin:/usr/bin:/bin").split(separator: ":").map(String.init)
    for name in candidates {
        let path = name.contains("/") ? name : folders.map { "\($0)/\(name)" }.first { FileManager.default.isExecutableFile(atPath: $0) }
        guard let path, FileManager.default.isExecutableFile(atPath: path) else { continue }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: path)
        process.arguments = [url]
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        do {
            try process.run()
            note("Opened \(url) with \((path as NSString).lastPathComponent).")
            return
        } catch {
            continue
        }
    }
    note("No browser here (set BROWSER, or install xdg-open); open \(url) yourself.")
}
