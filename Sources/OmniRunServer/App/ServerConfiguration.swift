import OmniRunControl

/// The server's settings (the control plane's type; Hummingbird has one of the same name).
public typealias ServerConfiguration = OmniRunControl.ServerConfiguration
