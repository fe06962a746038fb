import ArgumentParser
import Foundation
import Runtime

extension ExitStatus {
    /// Runs a command body; a failure is printed once to stderr as `clipsafety: <message>` and
    /// becomes its exit code (`ExitStatus.describe`, the one mapping).
    static func run(_ body: () throws -> Void) throws {
        do {
            try body()
        } catch let e as ExitCode {
            throw e
        } catch let e as ValidationError {
            throw e
        } catch {
            let (message, code) = describe(error)
            printError("clipsafety: " + message)
            throw ExitCode(code.rawValue)
        }
    }
}

/// One line on stderr; text from files is escaped (`PrintableText`), so it stays one line.
func printError(_ line: String) {
    FileHandle.standardError.write(Data((PrintableText.escaped(line) + "\n").utf8))
}
