/// A failure tied to the file it concerns, so the one-line message can name it.
public struct FileError: Error, CustomStringConvertible, Sendable {
    public var path: String
    public var underlying: ClipSafetyError

    public init(path: String, underlying: ClipSafetyError) {
        self.path = path
        self.underlying = underlying
    }

    public var description: String { "\(path): \(underlying.message)" }
}

/// Runs `body`, attaching `path` to any clipsafety error it throws (an error that already
/// names a file keeps its own).
public func withFile<T>(_ path: String, _ body: () throws -> T) throws -> T {
    do {
        return try body()
    } catch let e as ClipSafetyError {
        throw FileError(path: path, underlying: e)
    }
}

extension ExitStatus {
    /// The one-line message and exit code of any error: the single mapping every command uses.
    public static func describe(_ error: Error) -> (message: String, code: ExitStatus) {
        switch error {
        case let e as FileError:
            return (e.description, e.underlying.exitCode)
        case let e as ClipSafetyError:
            return (e.message, e.exitCode)
        default:
            return ("internal error: \(error)", .internalError)
        }
    }
}
