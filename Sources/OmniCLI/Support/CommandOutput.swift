import Foundation

/// A command's output stream (`GET /sandboxes/{id}/commands/{pid}/stream`) followed to its
/// end: printed as it comes, or, with `gather`, collected. The exit code is the stream's
/// (1 if it ends without one); values out of range are clamped, never trapped on.
func followCommandOutput(
    _ client: APIClient, sandbox: String, pid: String, gather: Bool
) async throws -> (exitCode: Int32, stdout: String, stderr: String) {
    var exitCode: Int32 = 1
    var stdout = "", stderr = ""
    try await client.events(.GET, "/sandboxes/\(sandbox)/commands/\(pid)/stream") { event in
        guard let event = event as? [String: Any] else { return false }
        switch event["type"] as? String {
        case "stdout":
            if gather { stdout += string(event["data"]) } else { FileHandle.standardOutput.write(Data(string(event["data"]).utf8)) }
        case "stderr":
            if gather { stderr += string(event["data"]) } else { FileHandle.standardError.write(Data(string(event["data"]).utf8)) }
        case "exit":
            exitCode = Int32(clamping: (event["exit_code"] as? Int) ?? 1)
            return true
        default: break
        }
        return false
    }
    return (exitCode, stdout, stderr)
}
