import Foundation
import XCTest

/// The test virtual environment's Python (scripts/python-env.sh, requirements in
/// scripts/requirements-test.txt), for tests that prove interop with the real readers
/// (onnxruntime, pyarrow, DuckDB, polars, picklescan, torch).
public enum PythonEnv {
    /// `CLIPSAFETY_PYTHON` when scripts/test.sh exported it, else `.venv-test/bin/python` at the
    /// repository root. Skips the test, saying why, when neither exists: the README's test
    /// command creates the venv and fails loudly itself when PyPI cannot be reached.
    public static func python() throws -> String {
        if let p = ProcessInfo.processInfo.environment["CLIPSAFETY_PYTHON"], FileManager.default.isExecutableFile(atPath: p) {
            return p
        }
        let local = Fixtures.repoRoot + "/.venv-test/bin/python"
        guard FileManager.default.isExecutableFile(atPath: local) else {
            throw XCTSkip("no test venv: run `bash scripts/python-env.sh` (needs PyPI) or the README's test command")
        }
        return local
    }

    /// Runs `script` with the venv's Python and `arguments`; returns stdout, or fails the test
    /// with stderr when the exit status is not 0. Skips when a module the script imports is
    /// missing from the venv (run scripts/python-env.sh after editing the requirements).
    @discardableResult
    public static func run(_ script: String, _ arguments: [String] = [], file: StaticString = #filePath, line: UInt = #line) throws -> String {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: try python())
        process.arguments = ["-c", script] + arguments
        let out = Pipe(), err = Pipe()
        process.standardOutput = out
        process.standardError = err
        try process.run()
        let stdout = out.fileHandleForReading.readDataToEndOfFile()
        let stderr = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        if process.terminationStatus != 0 {
            if stderr.contains("ModuleNotFoundError") {
                throw XCTSkip("test venv lacks a module; run `bash scripts/python-env.sh`: \(stderr.suffix(200))")
            }
            XCTFail("python exited \(process.terminationStatus): \(stderr.suffix(2000))", file: file, line: line)
        }
        return String(decoding: stdout, as: UTF8.self)
    }
}
