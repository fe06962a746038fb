/// Every exit code clipsafety ends with, in one place (the README's "Exit codes" table lists
/// the same). Values follow BSD `sysexits.h` where one fits, and 128 + signal for interrupts.
public enum ExitStatus: Int32, Sendable, CaseIterable {
    case ok = 0
    /// `verify`/`compare`/`diff` ran and found a difference beyond tolerance; `scan` found an unsafe file.
    case verificationFailed = 1
    /// Bad command line.
    case usage = 64
    /// Bad, unsupported or unsafe input data.
    case dataError = 65
    /// An input file is missing.
    case noInput = 66
    /// A bug: an error clipsafety did not expect.
    case internalError = 70
    /// An output cannot be created.
    case cannotCreate = 73
    /// Reading or writing failed at the operating-system level.
    case ioError = 74
    /// Stopped by SIGINT (Ctrl-C); temporaries removed.
    case interrupted = 130
    /// Stopped by SIGTERM; temporaries removed.
    case terminated = 143

    /// One line for the README and `--help`.
    public static let summary = "Exit codes: 0 ok, 1 verification failed (scan: a file is unsafe), 64 usage, 65 bad or unsafe input data (scan: a file is unreadable), 66 missing input, 70 internal error, 73 cannot create output, 74 I/O error, 130/143 interrupted."
}

extension ClipSafetyError.Kind {
    /// The exit code of a failure of this kind.
    public var exitCode: ExitStatus {
        switch self {
        case .malformed, .truncated, .unsupported, .unsafe, .limitExceeded, .mismatch: return .dataError
        case .missingFile: return .noInput
        case .io: return .ioError
        case .usage: return .usage
        case .cannotCreate: return .cannotCreate
        }
    }
}
