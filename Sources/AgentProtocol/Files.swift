public struct FileEntry: Codable, Sendable, Equatable {
    public enum Kind: String, Codable, Sendable {
        case file, directory, symlink, other
    }

    public var name: String
    public var path: String
    public var type: Kind
    public var size: Int64
    /// Permission bits, e.g. 0o644.
    public var mode: UInt32
    public var modifiedMillis: Int64
    public var owner: String?

    public init(
        name: String, path: String, type: Kind, size: Int64, mode: UInt32, modifiedMillis: Int64,
        owner: String? = nil
    ) {
        self.name = name
        self.path = path
        self.type = type
        self.size = size
        self.mode = mode
        self.modifiedMillis = modifiedMillis
        self.owner = owner
    }

    public var isDirectory: Bool { type == .directory }
}

public struct MakeDirectoryRequest: Codable, Sendable {
    public var path: String
    public var user: String?
    public init(path: String, user: String? = nil) {
        self.path = path
        self.user = user
    }
}

public struct MoveRequest: Codable, Sendable {
    public var from: String
    public var to: String
    public var user: String?
    public init(from: String, to: String, user: String? = nil) {
        self.from = from
        self.to = to
        self.user = user
    }
}

public struct RemoveRequest: Codable, Sendable {
    public var path: String
    public var recursive: Bool
    public var user: String?
    public init(path: String, recursive: Bool = true, user: String? = nil) {
        self.path = path
        self.recursive = recursive
        self.user = user
    }
}

public struct WatchEvent: Codable, Sendable, Equatable {
    public enum Kind: String, Codable, Sendable {
        case create, write, remove, rename
    }

    public var type: Kind
    public var path: String
    public var name: String
    public var timestampMillis: Int64

    public init(type: Kind, path: String, name: String, timestampMillis: Int64) {
        self.type = type
        self.path = path
        self.name = name
        self.timestampMillis = timestampMillis
    }
}
