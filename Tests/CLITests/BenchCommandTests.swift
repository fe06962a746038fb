import Foundation
import XCTest
import Runtime
import TestSupport

/// `bench` as a command: its table, and `--input` rows read from a file as `score` reads them.
/// (No figure is asserted: speed belongs in the benchmark's output, not in a test's verdict.)
final class BenchCommandTests: HandBuiltModelTestCase {
    func writeRows(_ rows: Int, width: Int, to name: String) throws {
        let values = (0..<(rows * width)).map { Float(($0 % 7) + 1) / 10 }
        try NpyArray(shape: [rows, width], floats: values).serialized().write(to: URL(fileURLWithPath: dir.file(name)))
    }

    /// One table row per batch size: the model's name, the batch and five figures.
    func tableRows(_ stdout: String, model: String) -> [[Substring]] {
        stdout.split(separator: "\n").map { $0.split(separator: " ") }.filter { $0.first.map(String.init) == model }
    }

    func testRandomRowsGiveARowPerBatchSize() throws {
        let run = try CLI.run(["bench", modelPath, "--batch-sizes", "1,8", "--seconds", "0.05"])
        XCTAssertEqual(run.status, 0, run.stderr)
        let rows = tableRows(run.stdout, model: "hand-built")
        XCTAssertEqual(rows.map { $0[1] }, ["1", "8"], run.stdout)
        for row in rows {
            XCTAssertEqual(row.count, 7, run.stdout)
            XCTAssertGreaterThan(Double(row[2]) ?? 0, 0, "emb/s: \(run.stdout)")
            XCTAssertNotNil(Double(row[6].dropLast()), "check column: \(run.stdout)")
        }
    }

    func testInputFileRowsAreScoredBatchAfterBatch() throws {
        // 10 rows in batches of 4: the third batch starts again from the top.
        try writeRows(10, width: 4, to: "x.npy")
        let run = try CLI.run(["bench", modelPath, "--input", dir.file("x.npy"), "--batch-sizes", "4", "--seconds", "0.05"])
        XCTAssertEqual(run.status, 0, run.stderr)
        XCTAssertEqual(tableRows(run.stdout, model: "hand-built").map { $0[1] }, ["4"], run.stdout)
        let halves = (0..<40).map { Float16(Float($0 % 5) / 10) }
        try NpyArray(dtype: .f2, shape: [10, 4], data: halves.withUnsafeBytes { Data($0) }).serialized()
            .write(to: URL(fileURLWithPath: dir.file("h.npy")))
        let half = try CLI.run(["bench", modelPath, "--input", dir.file("h.npy"), "--batch-sizes", "10", "--seconds", "0.05"])
        XCTAssertEqual(half.status, 0, half.stderr)
    }

    func testInputFileOfTheWrongWidthExits65NamingBothWidths() throws {
        try writeRows(8, width: 3, to: "narrow.npy")
        let run = try CLI.run(["bench", modelPath, "--input", dir.file("narrow.npy"), "--batch-sizes", "4", "--seconds", "0.05"])
        XCTAssertEqual(run.status, 65, run.stderr)
        XCTAssertTrue(run.stderr.contains("narrow.npy") && run.stderr.contains("3") && run.stderr.contains("4"), run.stderr)
        XCTAssertEqual(run.stderr.split(separator: "\n").count, 1, run.stderr)
    }

    func testInputFileWithFewerRowsThanTheBatchExits65() throws {
        try writeRows(3, width: 4, to: "short.npy")
        let run = try CLI.run(["bench", modelPath, "--input", dir.file("short.npy"), "--batch-sizes", "4", "--seconds", "0.05"])
        XCTAssertEqual(run.status, 65, run.stderr)
        XCTAssertTrue(run.stderr.contains("short.npy") && run.stderr.contains("3 rows, fewer than the batch size 4"), run.stderr)
    }

    func testInputFileGoesWithoutInputTypeOrWorkingSet() throws {
        try writeRows(8, width: 4, to: "x.npy")
        for extra in [["--input-type", "float16"], ["--working-set-mib", "16"]] {
            let run = try CLI.run(["bench", modelPath, "--input", dir.file("x.npy"), "--seconds", "0.05"] + extra)
            XCTAssertEqual(run.status, 64, "\(extra): \(run.stderr)")
        }
        let missing = try CLI.run(["bench", modelPath, "--input", dir.file("absent.npy"), "--seconds", "0.05"])
        XCTAssertEqual(missing.status, 66, missing.stderr)
    }
}
