import ArgumentParser
import Foundation
import Runtime

/// A failure tied to the file it concerns, so the message can name it.
struct FileError: Error {
    var path: String
    var underlying: ClipSafetyError
}

extension ExitStatus {
    /// The one-line message and exit code for any error a command lets out.
    static func describe(_ error: Error) -> (message: String, code: Int32) {
        switch error {
        case let e as FileError:
            return ("\(e.path): \(e.underlying.message)", e.underlying.exitCode.rawValue)
        case let e as ClipSafetyError:
            return (e.message, e.exitCode.rawValue)
        default:
            return ("internal error: \(error)", ExitStatus.internalError.rawValue)
        }
    }

    /// Runs a command body; a failure is printed once to stderr and becomes its exit code.
    static func run(_ body: () throws -> Void) throws {
        do {
            try body()
        } catch let e as ExitCode {
            throw e
        } catch let e as ValidationError {
            throw e
        } catch {
            let (message, code) = describe(error)
            printError("clipsafety: " + message.replacingOccurrences(of: "\n", with: " "))
            throw ExitCode(code)
        }
    }
}

/// Runs `body`, attaching `path` to any clipsafety error it throws.
func withFile<T>(_ path: String, _ body: () throws -> T) throws -> T {
    do {
        return try body()
    } catch let e as ClipSafetyError {
        throw FileError(path: path, underlying: e)
    }
}

func printError(_ line: String) {
    FileHandle.standardError.write(Data((line + "\n").utf8))
}
