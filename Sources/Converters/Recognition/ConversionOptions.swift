import Foundation
import Runtime

/// What a conversion needs besides the bytes: the file name (provenance and the default model
/// name), what the user stated about the model's meaning, an architecture spec, and the reader
/// limits every reader obeys.
public struct ConversionOptions: Sendable {
    /// File name of the input, without directories.
    public var fileName: String
    public var stated: StatedMeaning
    /// An explicit architecture spec for heads not recognised from their content (`--arch`).
    public var arch: String?
    public var limits: ReaderLimits

    public init(fileName: String, stated: StatedMeaning = .init(), arch: String? = nil, limits: ReaderLimits = .init()) {
        self.fileName = (fileName as NSString).lastPathComponent
        self.stated = stated
        self.arch = arch
        self.limits = limits
    }
}
