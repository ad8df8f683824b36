import Foundation

/// The desktop's input routes (wire protocol §13): mouse and keyboard actions, answered with 204.
enum Desktop {
    static func mouse(_ connection: Connection, sandbox: String, _ body: [String: Any], done: String) async throws {
        try await connection.client().call(.POST, "/sandboxes/\(sandbox)/desktop/mouse", json: body)
        connection.emit(body.merging(["sandboxID": sandbox, "ok": true]) { $1 }) { done }
    }

    static func keyboard(_ connection: Connection, sandbox: String, _ body: [String: Any], done: String) async throws {
        try await connection.client().call(.POST, "/sandboxes/\(sandbox)/desktop/keyboard", json: body)
        connection.emit(body.merging(["sandboxID": sandbox, "ok": true]) { $1 }) { done }
    }
}
