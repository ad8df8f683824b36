/// The options every command takes (`Connection`) may also come before the command, as
/// the public CLI allows: `omni --request-timeout 5000 --json sandbox list`. They are moved
/// to just after the command's words (before a `--`, after which words are the user's).
public enum GlobalOptions {
    /// Options that take a value, and flags.
    static let valued: Set<String> = ["--api-url", "--api-key", "--request-timeout"]
    static let flags: Set<String> = ["--json"]

    public static func hoisted(_ arguments: [String]) -> [String] {
        var leading: [String] = []
        var index = 0
        while index < arguments.count {
            let word = arguments[index]
            let name = word.split(separator: "=", maxSplits: 1).first.map(String.init) ?? word
            if flags.contains(word) {
                leading.append(word)
                index += 1
            } else if valued.contains(name), word.contains("=") {
                leading.append(word)
                index += 1
            } else if valued.contains(word), index + 1 < arguments.count {
                leading += [word, arguments[index + 1]]
                index += 2
            } else {
                break
            }
        }
        guard !leading.isEmpty else { return arguments }
        var rest = Array(arguments[index...])
        let insertAt = rest.firstIndex(of: "--") ?? rest.count
        rest.insert(contentsOf: leading, at: insertAt)
        return rest
    }
}
