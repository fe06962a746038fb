import Foundation
import XCTest
import Converters
import Runtime
import TestSupport

final class VerifyCommandTests: HandBuiltModelTestCase {
    let inputs: [Double] = [0.3, -0.1, 0.7, 0.2, -1, 2, 0.5, 0.5, 0, 0, 0, 0]


    /// A reference whose outputs are the independent Double computation, shifted by `delta`.
    func reference(delta: Float = 0, factor: Float = 1) throws -> String {
        let rows = stride(from: 0, to: inputs.count, by: 4).map { Array(inputs[$0..<$0 + 4]) }
        let outputs = rows.map { Float(HandBuilt.expectedBinary($0)) * factor + delta }
        let path = dir.file("ref.npz")
        try NpzArchive.write(["inputs": NpyArray(shape: [3, 4], doubles: inputs), "outputs": NpyArray(shape: [3, 1], floats: outputs)], to: path)
        return path
    }

    func testHandBuiltModelVerifiesAgainstIndependentComputation() throws {
        let run = try CLI.run(["verify", modelPath, "--reference", try reference(), "--atol", "1e-6"])
        XCTAssertEqual(run.status, 0, run.stdout + run.stderr)
        XCTAssertTrue(run.stdout.contains("PASS"))
        XCTAssertTrue(run.stdout.contains("decisions  3 of 3 identical at threshold 0.5"), run.stdout)
    }

    func testOutputsOutsideToleranceExit1() throws {
        let run = try CLI.run(["verify", modelPath, "--reference", try reference(delta: 1e-3), "--atol", "1e-4"])
        XCTAssertEqual(run.status, 1)
        XCTAssertTrue(run.stdout.contains("outside    3 of 3 rows") && run.stdout.contains("FAIL"), run.stdout)
    }

    func testRelativeToleranceWidensTheCheck() throws {
        let run = try CLI.run(["verify", modelPath, "--reference", try reference(factor: 1.001), "--atol", "0", "--rtol", "0.002"])
        XCTAssertEqual(run.status, 0, run.stdout)
        XCTAssertEqual(try CLI.run(["verify", modelPath, "--reference", try reference(factor: 1.001), "--atol", "0", "--rtol", "0.0005"]).status, 1)
    }

    func testJSONReport() throws {
        let run = try CLI.run(["verify", modelPath, "--reference", try reference(delta: 1e-3), "--json"])
        XCTAssertEqual(run.status, 1)
        let report = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(run.stdout.utf8)) as? [String: Any])
        XCTAssertEqual(report["passed"] as? Bool, false)
        XCTAssertEqual(report["rows"] as? Int, 3)
        XCTAssertEqual(report["rows_outside_tolerance"] as? Int, 3)
        XCTAssertEqual(try XCTUnwrap(report["max_abs_error"] as? Double), 1e-3, accuracy: 1e-6)
        XCTAssertNotNil(report["worst"] as? [String: Any])
        XCTAssertEqual((report["decisions"] as? [String: Any])?["flips"] as? Int, 0)
    }

    func testLabelMismatchFails() throws {
        let model = dir.file("p.safetensors")
        try HandBuilt.promptModel().write(to: model)
        let x: [Float] = [1, 0, 0, 0, 1, 0]
        let scores: [Float] = [1, 0, 0, 0.6]
        try NpzArchive.write(["inputs": NpyArray(shape: [2, 3], floats: x), "outputs": NpyArray(shape: [2, 2], floats: scores), "labels": NpyArray(shape: [2], int64s: [0, 1])], to: dir.file("ok.npz"))
        XCTAssertEqual(try CLI.run(["verify", model, "--reference", dir.file("ok.npz")]).status, 0)
        try NpzArchive.write(["inputs": NpyArray(shape: [2, 3], floats: x), "outputs": NpyArray(shape: [2, 2], floats: scores), "labels": NpyArray(shape: [2], int64s: [1, 1])], to: dir.file("bad.npz"))
        let run = try CLI.run(["verify", model, "--reference", dir.file("bad.npz")])
        XCTAssertEqual(run.status, 1)
        XCTAssertTrue(run.stdout.contains("labels     1 of 2 identical"), run.stdout)
    }

    func testReferenceWithoutOutputsExits65() throws {
        try NpzArchive.write(["inputs": NpyArray(shape: [3, 4], doubles: inputs)], to: dir.file("r.npz"))
        let run = try CLI.run(["verify", modelPath, "--reference", dir.file("r.npz")])
        XCTAssertEqual(run.status, 65)
        XCTAssertTrue(run.stderr.contains("r.npz") && run.stderr.contains("outputs"), run.stderr)
    }
}

final class ConvertCommandTests: XCTestCase {
    func testRewritesNativeModelWithOverriddenThreshold() throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        try HandBuilt.binaryModel().write(to: dir.file("a.safetensors"))
        let run = try CLI.run(["convert", dir.file("a.safetensors"), "-o", dir.file("b.safetensors"), "--threshold", "0.8"])
        XCTAssertEqual(run.status, 0, run.stderr)
        let card = try NativeModel(contentsOf: dir.file("b.safetensors")).card
        XCTAssertEqual(card.threshold, 0.8)
        XCTAssertEqual(card.thresholdSource, "user")
    }

    func testRefusesToOverwriteItsInput() throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        try HandBuilt.binaryModel().write(to: dir.file("a.safetensors"))
        XCTAssertEqual(try CLI.run(["convert", dir.file("a.safetensors"), "-o", dir.file("a.safetensors")]).status, 64)
    }

    func testUnknownFormatExits65WithFirstBytes() throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let path = try dir.write(Data([0xde, 0xad, 0xbe, 0xef]), to: "x.bin")
        let run = try CLI.run(["convert", path, "-o", dir.file("o.safetensors")])
        XCTAssertEqual(run.status, 65)
        XCTAssertTrue(run.stderr.contains("x.bin") && run.stderr.contains("de ad be ef"), run.stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir.file("o.safetensors")))
    }
}
