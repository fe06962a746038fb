/// The one error type every clipsafety module throws.
///
/// Readers never name the file (they see only bytes); the CLI prefixes the path, so every
/// message reaches the user as `clipsafety: <file>: <message>`. `kind` decides the exit code.
public struct ClipSafetyError: Error, CustomStringConvertible, Equatable, Sendable {
    public enum Kind: String, Sendable {
        /// Bytes present but wrong: bad magic, inconsistent sizes, invalid JSON, bad checksums.
        case malformed
        /// The data ends before a structure it declares.
        case truncated
        /// Well-formed but outside what clipsafety supports (a layer class, a dtype, a version).
        case unsupported
        /// Would execute or import something named by the file (pickle globals, Lambda code).
        case unsafe
        /// A declared size is above a configured limit.
        case limitExceeded
        /// Valid data that does not fit the model (dimension, shape chain, missing tensor).
        case mismatch
        /// Reading or writing a file failed at the operating-system level.
        case io
        /// An input file does not exist or cannot be opened.
        case missingFile
        /// The command line is wrong: a bad option value, contradictory options, an output
        /// path that is one of the inputs.
        case usage
        /// An output file or its temporary cannot be created (missing folder, permissions).
        case cannotCreate
    }

    /// The process exit code this kind of failure ends with (README, "Exit codes").
    public var exitCode: ExitStatus { kind.exitCode }

    public var kind: Kind
    public var message: String

    public init(_ kind: Kind, _ message: String) {
        self.kind = kind
        self.message = message
    }

    public var description: String { message }

    public static func malformed(_ m: String) -> Self { .init(.malformed, m) }
    public static func truncated(_ m: String) -> Self { .init(.truncated, m) }
    public static func unsupported(_ m: String) -> Self { .init(.unsupported, m) }
    public static func unsafe(_ m: String) -> Self { .init(.unsafe, m) }
    public static func limitExceeded(_ m: String) -> Self { .init(.limitExceeded, m) }
    public static func mismatch(_ m: String) -> Self { .init(.mismatch, m) }
    public static func io(_ m: String) -> Self { .init(.io, m) }
    public static func usage(_ m: String) -> Self { .init(.usage, m) }
    public static func cannotCreate(_ m: String) -> Self { .init(.cannotCreate, m) }
}
