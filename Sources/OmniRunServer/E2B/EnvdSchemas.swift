/// envd's messages by field number (its public `process.proto` and `filesystem.proto`), for
/// Connect's binary codec. Each request and answer of `E2BProcessRPC` and `E2BFilesystemRPC`
/// names its schema here.
enum EnvdSchemas {
    static let empty = ProtoSchema([])

    // MARK: process.Process

    static let size = ProtoSchema([ProtoField(1, "cols", .uint32), ProtoField(2, "rows", .uint32)])
    static let pty = ProtoSchema([ProtoField(1, "size", .message(size))])
    static let processConfig = ProtoSchema([
        ProtoField(1, "cmd", .string), ProtoField(2, "args", .string, repeated: true), ProtoField(3, "envs", .stringMap),
        ProtoField(4, "cwd", .string),
    ])
    static let selector = ProtoSchema([ProtoField(1, "pid", .uint32), ProtoField(2, "tag", .string)])
    static let processInput = ProtoSchema([ProtoField(1, "stdin", .bytes), ProtoField(2, "pty", .bytes)])
    static let signal = ProtoKind.enumeration([0: "SIGNAL_UNSPECIFIED", 9: "SIGNAL_SIGKILL", 15: "SIGNAL_SIGTERM"])

    static let startRequest = ProtoSchema([
        ProtoField(1, "process", .message(processConfig)), ProtoField(2, "pty", .message(pty)), ProtoField(3, "tag", .string),
        ProtoField(4, "stdin", .bool),
    ])
    static let processEvent = ProtoSchema([
        ProtoField(1, "start", .message(ProtoSchema([ProtoField(1, "pid", .uint32)]))),
        ProtoField(
            2, "data",
            .message(ProtoSchema([ProtoField(1, "stdout", .bytes), ProtoField(2, "stderr", .bytes), ProtoField(3, "pty", .bytes)]))),
        ProtoField(
            3, "end",
            .message(
                ProtoSchema([
                    ProtoField(1, "exitCode", .sint32), ProtoField(2, "exited", .bool), ProtoField(3, "status", .string),
                    ProtoField(4, "error", .string),
                ]))),
        ProtoField(4, "keepalive", .message(empty)),
    ])
    /// `StartResponse` and `ConnectResponse`.
    static let eventResponse = ProtoSchema([ProtoField(1, "event", .message(processEvent))])
    /// `ConnectRequest` and `CloseStdinRequest`.
    static let selectorRequest = ProtoSchema([ProtoField(1, "process", .message(selector))])
    static let listResponse = ProtoSchema([
        ProtoField(
            1, "processes",
            .message(
                ProtoSchema([
                    ProtoField(1, "config", .message(processConfig)), ProtoField(2, "pid", .uint32), ProtoField(3, "tag", .string),
                ])), repeated: true)
    ])
    static let updateRequest = ProtoSchema([ProtoField(1, "process", .message(selector)), ProtoField(2, "pty", .message(pty))])
    static let sendInputRequest = ProtoSchema([
        ProtoField(1, "process", .message(selector)), ProtoField(2, "input", .message(processInput)),
    ])
    static let streamInputRequest = ProtoSchema([
        ProtoField(1, "start", .message(selectorRequest)),
        ProtoField(2, "data", .message(ProtoSchema([ProtoField(2, "input", .message(processInput))]))),
        ProtoField(3, "keepalive", .message(empty)),
    ])
    static let sendSignalRequest = ProtoSchema([ProtoField(1, "process", .message(selector)), ProtoField(2, "signal", signal)])

    // MARK: filesystem.Filesystem

    static let fileType = ProtoKind.enumeration([
        0: "FILE_TYPE_UNSPECIFIED", 1: "FILE_TYPE_FILE", 2: "FILE_TYPE_DIRECTORY", 3: "FILE_TYPE_SYMLINK",
    ])
    static let eventType = ProtoKind.enumeration([
        0: "EVENT_TYPE_UNSPECIFIED", 1: "EVENT_TYPE_CREATE", 2: "EVENT_TYPE_WRITE", 3: "EVENT_TYPE_REMOVE", 4: "EVENT_TYPE_RENAME",
        5: "EVENT_TYPE_CHMOD",
    ])
    static let entryInfo = ProtoSchema([
        ProtoField(1, "name", .string), ProtoField(2, "type", fileType), ProtoField(3, "path", .string), ProtoField(4, "size", .int64),
        ProtoField(5, "mode", .uint32), ProtoField(6, "permissions", .string), ProtoField(7, "owner", .string),
        ProtoField(8, "group", .string), ProtoField(9, "modifiedTime", .timestamp), ProtoField(10, "symlinkTarget", .string),
        ProtoField(11, "metadata", .stringMap), ProtoField(12, "isSymlink", .bool),
    ])
    /// `StatRequest`, `MakeDirRequest` and `RemoveRequest`.
    static let pathRequest = ProtoSchema([ProtoField(1, "path", .string)])
    static let moveRequest = ProtoSchema([ProtoField(1, "source", .string), ProtoField(2, "destination", .string)])
    static let listDirRequest = ProtoSchema([ProtoField(1, "path", .string), ProtoField(2, "depth", .uint32)])
    /// `WatchDirRequest` and `CreateWatcherRequest`.
    static let watchRequest = ProtoSchema([
        ProtoField(1, "path", .string), ProtoField(2, "recursive", .bool), ProtoField(3, "includeEntry", .bool),
        ProtoField(4, "allowNetworkMounts", .bool),
    ])
    /// `StatResponse`, `MakeDirResponse` and `MoveResponse`.
    static let entryResponse = ProtoSchema([ProtoField(1, "entry", .message(entryInfo))])
    static let listDirResponse = ProtoSchema([ProtoField(1, "entries", .message(entryInfo), repeated: true)])
    static let filesystemEvent = ProtoSchema([
        ProtoField(1, "name", .string), ProtoField(2, "type", eventType), ProtoField(3, "entry", .message(entryInfo)),
    ])
    static let watchDirResponse = ProtoSchema([
        ProtoField(1, "start", .message(empty)), ProtoField(2, "filesystem", .message(filesystemEvent)),
        ProtoField(3, "keepalive", .message(empty)),
    ])
    /// `CreateWatcherResponse`, `GetWatcherEventsRequest` and `RemoveWatcherRequest`.
    static let watcherID = ProtoSchema([ProtoField(1, "watcherId", .string)])
    static let watcherEventsResponse = ProtoSchema([ProtoField(1, "events", .message(filesystemEvent), repeated: true)])
}
