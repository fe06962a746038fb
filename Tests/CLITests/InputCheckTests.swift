import Foundation
import XCTest
import Converters
import Runtime
import TestSupport

final class InputCheckTests: XCTestCase {
    var dir: TemporaryDirectory!
    var modelPath: String!
    // Rows 0–2 are unit vectors; row 3 has norm 2, row 4 norm 0.5.
    let rows: [[Float]] = [[1, 0, 0, 0], [0, 0.6, 0.8, 0], [0.5, 0.5, 0.5, 0.5], [2, 0, 0, 0], [0, 0, 0.3, 0.4]]

    override func setUpWithError() throws {
        dir = try TemporaryDirectory()
        modelPath = dir.file("hand.safetensors")
        try HandBuilt.binaryModel().write(to: modelPath)
        try NpyArray(shape: [5, 4], floats: rows.flatMap { $0 }).serialized().write(to: URL(fileURLWithPath: dir.file("x.npy")))
    }

    override func tearDown() { dir.remove() }

    func testUnnormalisedRowsGiveOneWarningWithCountAndNormRange() throws {
        let run = try CLI.run(["score", modelPath, dir.file("x.npy"), "-o", dir.file("o.npy"), "--batch", "2"])
        XCTAssertEqual(run.status, 0, run.stderr)
        let lines = run.stderr.split(separator: "\n")
        XCTAssertEqual(lines.count, 1, run.stderr)
        XCTAssertTrue(run.stderr.contains("warning") && run.stderr.contains("x.npy"), run.stderr)
        XCTAssertTrue(run.stderr.contains("2 of 5 rows are not L2-normalised"), run.stderr)
        XCTAssertTrue(run.stderr.contains("min 0.5") && run.stderr.contains("max 2"), run.stderr)
    }

    func testNormalizeFlagScoresTheNormalisedRowsWithoutWarning() throws {
        let run = try CLI.run(["score", modelPath, dir.file("x.npy"), "-o", dir.file("o.npy"), "--normalize"])
        XCTAssertEqual(run.status, 0, run.stderr)
        XCTAssertEqual(run.stderr, "")
        let out = try NpyArray(contentsOf: dir.file("o.npy")).floatValues()
        for (i, row) in rows.enumerated() {
            let norm = row.map { Double($0 * $0) }.reduce(0, +).squareRoot()
            XCTAssertEqual(Double(out[i]), HandBuilt.expectedBinary(row.map { Double($0) / norm }), accuracy: 1e-6)
        }
    }

    func testStrictRefusesUnnormalisedInputWith65AndWritesNothing() throws {
        let run = try CLI.run(["score", modelPath, dir.file("x.npy"), "-o", dir.file("o.npy"), "--strict"])
        XCTAssertEqual(run.status, 65)
        XCTAssertTrue(run.stderr.contains("--strict") && run.stderr.contains("not L2-normalised"), run.stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir.file("o.npy")))
        XCTAssertEqual(try CLI.run(["score", modelPath, dir.file("x.npy"), "-o", dir.file("o.npy"), "--strict", "--normalize"]).status, 0)
    }

    func testNonFiniteRowsAreReportedByIndexAndExit65UnlessAllowed() throws {
        try NpyArray(shape: [2, 4], floats: [1, 0, 0, 0, .nan, 0, 0, 1]).serialized().write(to: URL(fileURLWithPath: dir.file("n.npy")))
        let run = try CLI.run(["score", modelPath, dir.file("n.npy"), "-o", dir.file("o.npy")])
        XCTAssertEqual(run.status, 65)
        XCTAssertTrue(run.stderr.contains("1 of 2 rows hold NaN or infinity"), run.stderr)
        XCTAssertTrue(run.stderr.contains("row 1 holds NaN or infinity") && run.stderr.contains("--allow-invalid-rows"), run.stderr)
        XCTAssertTrue(try NpyArray(contentsOf: dir.file("o.npy")).floatValues()[1].isNaN, "the row has no score")
        XCTAssertEqual(try CLI.run(["score", modelPath, dir.file("n.npy"), "-o", dir.file("o.npy"), "--allow-invalid-rows"]).status, 0)
        XCTAssertEqual(try CLI.run(["score", modelPath, dir.file("n.npy"), "-o", dir.file("o.npy"), "--strict"]).status, 65)
    }

    func testVerifyWarnsToo() throws {
        let x = rows.flatMap { $0.map(Double.init) }
        let outputs = rows.map { Float(HandBuilt.expectedBinary($0.map(Double.init))) }
        try NpzArchive.write(["inputs": NpyArray(shape: [5, 4], doubles: x), "outputs": NpyArray(shape: [5, 1], floats: outputs)], to: dir.file("r.npz"))
        let run = try CLI.run(["verify", modelPath, "--reference", dir.file("r.npz")])
        XCTAssertEqual(run.status, 0, run.stdout)
        XCTAssertTrue(run.stderr.contains("2 of 5 rows are not L2-normalised"), run.stderr)
    }
}
