/// The names of the credentials the preview gateway reads.
package enum PreviewAccess {
    /// Secure mode's header (the public SDK's name for it).
    package static let trafficTokenHeader = "e2b-traffic-access-token"
    /// A private exposure's token: in the query of `accessUrl` (once; it becomes a cookie),
    /// as a cookie, or as this header.
    package static let queryToken = "omnirun_token"
    package static let cookie = "omnirun_preview"
    package static let tokenHeader = "x-omnirun-exposure-token"
}
