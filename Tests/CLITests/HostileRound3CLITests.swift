import Foundation
import XCTest
import TestSupport
import Runtime
import Converters

/// Issue 20, point 7, end to end: every round-3 fixture through the real binary, timed and
/// measured by `/usr/bin/time` (peak resident set). Invalid files: exit 65 and one stderr line
/// `clipsafety: <path>: <reason>`, nothing written. Valid ones: exit 0. Every run: under 30 s and
/// 512 MiB. Set CLIPSAFETY_HOSTILE_TABLE=1 to print the measurements as a Markdown table, and
/// CLIPSAFETY_HOSTILE_DUMP=<folder> to keep the fixtures.
final class HostileRound3CLITests: XCTestCase {
    var dir: TemporaryDirectory!
    var inputs: String!
    var outputs: String!
    static let maxSeconds = 30.0
    static let maxKiB = 512 * 1024

    override func setUpWithError() throws {
        dir = try TemporaryDirectory()
        inputs = dir.file("in")
        outputs = dir.file("out")
        try FileManager.default.createDirectory(atPath: inputs, withIntermediateDirectories: false)
        try FileManager.default.createDirectory(atPath: outputs, withIntermediateDirectories: false)
    }

    override func tearDown() { dir.remove() }

    struct Measured {
        var run: CLIRun
        var seconds: Double
        var kib: Int
    }

    /// Runs the binary under `/usr/bin/time -f '%e %M'` (its line is the last of stderr).
    private func measure(_ arguments: [String]) throws -> Measured {
        let timeTool = "/usr/bin/time"
        guard FileManager.default.isExecutableFile(atPath: timeTool) else { throw XCTSkip("no /usr/bin/time to measure peak memory") }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: timeTool)
        process.arguments = ["-f", "@@time %e %M", CLI.binary] + arguments
        var env = ProcessInfo.processInfo.environment
        env["NO_COLOR"] = "1"
        process.environment = env
        let out = Pipe(), err = Pipe()
        process.standardOutput = out
        process.standardError = err
        process.standardInput = FileHandle.nullDevice
        try process.run()
        let outData = out.fileHandleForReading.readDataToEndOfFile()
        let errData = err.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        var lines = String(decoding: errData, as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        while lines.last == "" { lines.removeLast() }
        guard let last = lines.last, last.hasPrefix("@@time ") else {
            XCTFail("no time line: \(lines)")
            return Measured(run: CLIRun(status: process.terminationStatus, stdout: "", stderr: lines.joined(separator: "\n")), seconds: 0, kib: 0)
        }
        lines.removeLast()
        if lines.last?.hasPrefix("Command exited with non-zero status") == true { lines.removeLast() }
        let fields = last.split(separator: " ")
        let stderr = lines.isEmpty ? "" : lines.joined(separator: "\n") + "\n"
        return Measured(run: CLIRun(status: process.terminationStatus, stdout: String(decoding: outData, as: UTF8.self), stderr: stderr),
                        seconds: Double(fields[1]) ?? 0, kib: Int(fields[2]) ?? 0)
    }

    private var table: [String] = []

    /// Runs `arguments`, checks the contract and the bounds, and records a table row.
    private func check(_ label: String, _ arguments: [String], path: String, expect status: Int32, reason: String = "",
                       writesNothing: Bool = true, file: StaticString = #filePath, line: UInt = #line) throws {
        let m = try measure(arguments)
        XCTAssertEqual(m.run.status, status, "\(label): \(m.run.stderr)", file: file, line: line)
        XCTAssertLessThan(m.seconds, Self.maxSeconds, label, file: file, line: line)
        XCTAssertLessThan(m.kib, Self.maxKiB, "\(label): peak RSS", file: file, line: line)
        if status == 65 {
            // A refused file: one line. Invalid rows (scores written): the input-check warning
            // line, then the one error line.
            let errLines = m.run.stderr.split(separator: "\n").map(String.init)
            XCTAssertEqual(errLines.count, writesNothing ? 1 : 2, "\(label): \(m.run.stderr)", file: file, line: line)
            let last = errLines.last ?? ""
            XCTAssertTrue(last.hasPrefix("clipsafety: \(path): "), "\(label): \(m.run.stderr)", file: file, line: line)
            if !reason.isEmpty { XCTAssertTrue(last.contains(reason), "\(label): \(m.run.stderr)", file: file, line: line) }
            if writesNothing {
                XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: outputs), [], "\(label) wrote output", file: file, line: line)
            }
        }
        let said = m.run.stderr.split(separator: "\n").last.map { String($0.dropFirst("clipsafety: ".count + path.count + 2).prefix(90)) } ?? ""
        table.append("| \(label) | \(m.run.status) | \(String(format: "%.2f", m.seconds)) | \(m.kib / 1024) | \(said.replacingOccurrences(of: "|", with: "\\|")) |")
    }

    private func write(_ name: String, _ bytes: Data) throws -> String {
        let path = inputs + "/" + name
        try bytes.write(to: URL(fileURLWithPath: path))
        // CLIPSAFETY_HOSTILE_DUMP=<folder> keeps a copy, to run other builds on the same files.
        if let folder = ProcessInfo.processInfo.environment["CLIPSAFETY_HOSTILE_DUMP"] {
            try bytes.write(to: URL(fileURLWithPath: folder + "/" + name))
        }
        return path
    }

    private func printTable() {
        guard ProcessInfo.processInfo.environment["CLIPSAFETY_HOSTILE_TABLE"] != nil else { return }
        print((["| fixture | exit | s | MiB | message |", "|---|---|---|---|---|"] + table).joined(separator: "\n"))
    }

    func testPickleZipAndNpyFixturesKeepTheContract() throws {
        for f in HostileRound3.pickleFixtures() + HostileRound3.zipFixtures() + HostileRound3.npyFixtures() {
            let path = try write(f.name, f.bytes)
            switch f.outcome {
            case .refused:
                try check(f.name, ["convert", path, "-o", outputs + "/m.safetensors"], path: path, expect: 65, reason: f.reason)
            case .readable:
                try check(f.name, ["inspect", path], path: path, expect: 0)
            }
        }
        printTable()
    }

    func testIllegalNativeGraphsAreRefusedByScore() throws {
        let x = try write("x.npy", NpyArray(shape: [2, 4], floats: [0.5, 0.5, 0.5, 0.5, 0.1, 0.2, 0.3, 0.4]).serialized())
        for f in try HostileRound3.nativeFixtures(base: HandBuilt.binaryModel()) {
            let path = try write(f.name, f.bytes)
            try check(f.name, ["score", path, x, "-o", outputs + "/s.csv"], path: path, expect: 65, reason: f.reason)
        }
        let vocab = try write("native-10M-keys.safetensors", try HostileRound3.hugeVocabulary(base: HandBuilt.binaryModel(), keys: 10_000_000))
        try check("native-10M-keys.safetensors", ["score", vocab, x, "-o", outputs + "/s.csv"], path: vocab, expect: 65, reason: "keys")
        printTable()
    }

    func testFloat16NaNPayloadsScoreWithTheRowBlanked() throws {
        let model = dir.file("m.safetensors")
        try HandBuilt.binaryModel().write(to: model)
        let x = try write("nan16.npy", HostileRound3.float16NaNEmbeddings(width: 4))
        try check("float16 NaN payloads", ["score", model, x, "-o", outputs + "/s.csv"], path: x, expect: 65, reason: "NaN", writesNothing: false)
        try? FileManager.default.removeItem(atPath: outputs + "/s.csv")
        try check("float16 NaN payloads, --allow-invalid-rows", ["score", model, x, "-o", outputs + "/s.csv", "--allow-invalid-rows"], path: x, expect: 0)
        let csv = try String(contentsOfFile: outputs + "/s.csv", encoding: .utf8).split(separator: "\n", omittingEmptySubsequences: false)
        XCTAssertEqual(csv.count, 5, "\(csv)")  // header, 3 rows, final newline
        let rows = csv.dropFirst().prefix(3).map { $0.split(separator: ",", omittingEmptySubsequences: false).map(String.init) }
        XCTAssertTrue(rows[1].dropFirst().allSatisfy { $0.isEmpty }, "NaN row not blanked: \(rows[1])")
        for r in [0, 2] {
            let expected = HandBuilt.expectedBinary([0.5, -0.5, 0.5, -0.5])
            XCTAssertEqual(Double(rows[r].last(where: { Double($0) != nil }) ?? "") ?? -1, expected, accuracy: 1e-5, "\(rows[r])")
        }
        printTable()
    }

    func testAReferenceInflatingTo250MBIsVerifiedWithinTheBounds() throws {
        let model = dir.file("m.safetensors")
        let wide = HandBuilt.wideModel(width: 256)
        try wide.write(to: model)
        let rows = 250_000_000 / (256 * 4)
        let ref = try write("ref-250mb.npz", HostileRound3.zeroReference(rows: rows, width: 256, outputs: wide.card.outputColumns.count))
        XCTAssertLessThan(try Data(contentsOf: URL(fileURLWithPath: ref)).count, 2_500_000)
        // Zero rows are off-norm (a warning); the model's outputs are not 0: verification fails (1).
        try check("reference .npz inflating to 250 MB", ["verify", model, "--reference", ref], path: ref, expect: 1)
        try check("the same under --max-uncompressed-bytes 100000000", ["verify", model, "--reference", ref, "--max-uncompressed-bytes", "100000000"],
                  path: ref, expect: 65, reason: "uncompressed limit")
        printTable()
    }
}
