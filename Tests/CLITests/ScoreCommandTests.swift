import Foundation
import XCTest
import Converters
import Runtime
import TestSupport

final class ScoreCommandTests: XCTestCase {
    var dir: TemporaryDirectory!
    var modelPath: String!
    let rows: [[Float]] = [[0.3, -0.1, 0.7, 0.2], [-1, 2, 0.5, 0.5], [0, 0, 0, 0], [2, 2, -2, 1], [0.5, 0.5, 0.5, 0.5]]

    override func setUpWithError() throws {
        dir = try TemporaryDirectory()
        modelPath = dir.file("hand.safetensors")
        try HandBuilt.binaryModel().write(to: modelPath)
        try NpyArray(shape: [rows.count, 4], floats: rows.flatMap { $0 }).serialized().write(to: URL(fileURLWithPath: dir.file("x.npy")))
    }

    override func tearDown() { dir.remove() }

    var expected: [Double] { rows.map { HandBuilt.expectedBinary($0.map(Double.init)) } }

    func testScoresToNpyInBatchesSmallerThanTheInput() throws {
        let run = try CLI.run(["score", modelPath, dir.file("x.npy"), "-o", dir.file("out.npy"), "--batch", "2"])
        XCTAssertEqual(run.status, 0, run.stderr)
        let out = try NpyArray(contentsOf: dir.file("out.npy"))
        XCTAssertEqual(out.shape, [5, 1])
        XCTAssertEqual(out.dtype, .f4)
        for (a, b) in zip(out.floatValues(), expected) { XCTAssertEqual(Double(a), b, accuracy: 1e-6) }
    }

    func testScoresFloat16AndFloat64Inputs() throws {
        let halves = rows.flatMap { $0.map { Float16($0) } }
        try NpyArray(dtype: .f2, shape: [5, 4], data: halves.withUnsafeBytes { Data($0) }).serialized().write(to: URL(fileURLWithPath: dir.file("h.npy")))
        try NpyArray(shape: [5, 4], doubles: rows.flatMap { $0.map(Double.init) }).serialized().write(to: URL(fileURLWithPath: dir.file("d.npy")))
        for input in ["h.npy", "d.npy"] {
            let run = try CLI.run(["score", modelPath, dir.file(input), "-o", dir.file("o.npy")])
            XCTAssertEqual(run.status, 0, run.stderr)
            let out = try NpyArray(contentsOf: dir.file("o.npy")).floatValues()
            for (a, b) in zip(out, expected) { XCTAssertEqual(Double(a), b, accuracy: 2e-3, input) }
        }
    }

    func testCSVHasCardColumnNamesAndDecision() throws {
        let run = try CLI.run(["score", modelPath, dir.file("x.npy"), "-o", dir.file("out.csv")])
        XCTAssertEqual(run.status, 0, run.stderr)
        let lines = try String(contentsOfFile: dir.file("out.csv"), encoding: .utf8).split(separator: "\n")
        XCTAssertEqual(lines.first, "row,nsfw,is_nsfw")
        XCTAssertEqual(lines.count, 6)
        for (i, line) in lines.dropFirst().enumerated() {
            let fields = line.split(separator: ",")
            XCTAssertEqual(fields[0], Substring(String(i)))
            XCTAssertEqual(Double(fields[1])!, expected[i], accuracy: 1e-6)
            XCTAssertEqual(fields[2], expected[i] > 0.5 ? "true" : "false")
        }
    }

    func testThresholdFlagChangesDecisions() throws {
        let threshold = 0.01
        XCTAssertNotEqual(expected.map { $0 > threshold }, expected.map { $0 > 0.5 }, "the fixture must tell the thresholds apart")
        let run = try CLI.run(["score", modelPath, dir.file("x.npy"), "-o", dir.file("out.jsonl"), "--threshold", String(threshold)])
        XCTAssertEqual(run.status, 0, run.stderr)
        let lines = try String(contentsOfFile: dir.file("out.jsonl"), encoding: .utf8).split(separator: "\n")
        XCTAssertEqual(lines.count, 5)
        for (i, line) in lines.enumerated() {
            let object = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
            XCTAssertEqual(object["row"] as? Int, i)
            XCTAssertEqual(object["is_nsfw"] as? Bool, expected[i] > threshold)
            XCTAssertEqual(try XCTUnwrap(object["nsfw"] as? Double), expected[i], accuracy: 1e-6)
        }
    }

    func testPromptClassifierWritesLabelNames() throws {
        let model = dir.file("p.safetensors")
        try HandBuilt.promptModel().write(to: model)
        try NpyArray(shape: [2, 3], floats: [1, 0, 0, 0, 1, 0]).serialized().write(to: URL(fileURLWithPath: dir.file("p.npy")))
        let run = try CLI.run(["score", model, dir.file("p.npy"), "-o", dir.file("p.csv")])
        XCTAssertEqual(run.status, 0, run.stderr)
        let text = try String(contentsOfFile: dir.file("p.csv"), encoding: .utf8)
        XCTAssertEqual(text, "row,other,violent,label,is_violent\n0,1.0,0.0,other,false\n1,0.0,0.6,violent,true\n")
    }

    func testLabelsWithQuotesStayValidJSONAndCSV() throws {
        try HandBuilt.promptModel().write(to: dir.file("p.safetensors"))
        let relabel = try CLI.run(["convert", dir.file("p.safetensors"), "-o", dir.file("q.safetensors"), "--labels", #"calm,say "hi""#])
        XCTAssertEqual(relabel.status, 0, relabel.stderr)
        try NpyArray(shape: [1, 3], floats: [0, 1, 0]).serialized().write(to: URL(fileURLWithPath: dir.file("p.npy")))
        XCTAssertEqual(try CLI.run(["score", dir.file("q.safetensors"), dir.file("p.npy"), "-o", dir.file("p.jsonl")]).status, 0)
        let line = try String(contentsOfFile: dir.file("p.jsonl"), encoding: .utf8).trimmingCharacters(in: .newlines)
        let object = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any], line)
        XCTAssertEqual(object["label"] as? String, #"say "hi""#)
        XCTAssertEqual(object[#"is_say "hi""#] as? Bool, true)
        XCTAssertEqual(try CLI.run(["score", dir.file("q.safetensors"), dir.file("p.npy"), "-o", dir.file("p.csv")]).status, 0)
        let csv = try String(contentsOfFile: dir.file("p.csv"), encoding: .utf8)
        XCTAssertEqual(csv, #"row,calm,"say ""hi""",label,"is_say ""hi""""# + "\n0,0.0,0.6,\"say \"\"hi\"\"\",true\n")
    }

    func testWrongWidthExits65NamingBothNumbersAndTheFile() throws {
        try NpyArray(shape: [2, 3], floats: [1, 2, 3, 4, 5, 6]).serialized().write(to: URL(fileURLWithPath: dir.file("w.npy")))
        let run = try CLI.run(["score", modelPath, dir.file("w.npy"), "-o", dir.file("o.npy")])
        XCTAssertEqual(run.status, 65)
        XCTAssertTrue(run.stderr.contains("w.npy") && run.stderr.contains("3") && run.stderr.contains("4"), run.stderr)
        XCTAssertEqual(run.stderr.split(separator: "\n").count, 1, "one line")
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir.file("o.npy")), "no output on failure")
    }

    func testMissingInputExits66() throws {
        let run = try CLI.run(["score", modelPath, dir.file("nope.npy"), "-o", dir.file("o.npy")])
        XCTAssertEqual(run.status, 66)
        XCTAssertTrue(run.stderr.hasPrefix("clipsafety: ") && run.stderr.contains("nope.npy"), run.stderr)
    }

    func testBadModelBytesExit65() throws {
        let bad = try dir.write(Data("definitely not a model".utf8), to: "bad.safetensors")
        let run = try CLI.run(["score", bad, dir.file("x.npy"), "-o", dir.file("o.npy")])
        XCTAssertEqual(run.status, 65)
        XCTAssertTrue(run.stderr.contains("bad.safetensors") && run.stderr.contains("unrecognised"), run.stderr)
    }

    func testUsageErrorsExit64() throws {
        XCTAssertEqual(try CLI.run(["score", modelPath, dir.file("x.npy"), "-o", dir.file("o.txt")]).status, 64)
        XCTAssertEqual(try CLI.run(["score", modelPath, dir.file("x.npy"), "-o", dir.file("o.npy"), "--batch", "0"]).status, 64)
        XCTAssertEqual(try CLI.run(["frobnicate"]).status, 64)
        XCTAssertEqual(try CLI.run(["score", modelPath, dir.file("x.npy"), "-o", dir.file("o.npy"), "--threads", "0"]).status, 64)
    }

    func testThreadCountDoesNotChangeScores() throws {
        // A batch big enough to be split across threads, scored with one thread and with four.
        let n = 5000
        let values = (0..<(n * 256)).map { Float(($0 &* 7919) % 2001 - 1000) / 16000 }
        try HandBuilt.wideModel().write(to: dir.file("wide.safetensors"))
        try NpyArray(shape: [n, 256], floats: values).serialized().write(to: URL(fileURLWithPath: dir.file("wide.npy")))
        var outputs: [[Float]] = []
        for threads in ["1", "4"] {
            let run = try CLI.run(["score", dir.file("wide.safetensors"), dir.file("wide.npy"), "-o", dir.file("w\(threads).npy"), "--threads", threads])
            XCTAssertEqual(run.status, 0, run.stderr)
            outputs.append(try NpyArray(contentsOf: dir.file("w\(threads).npy")).floatValues())
        }
        XCTAssertEqual(outputs[0].count, n * 3)
        XCTAssertLessThanOrEqual(zip(outputs[0], outputs[1]).map { abs($0 - $1) }.max() ?? 1, 1e-5)
    }

    func testOutputInAMissingFolderExits73() throws {
        let run = try CLI.run(["score", modelPath, dir.file("x.npy"), "-o", "/nonexistent-dir/o.npy"])
        XCTAssertEqual(run.status, 73, run.stderr)
        XCTAssertTrue(run.stderr.contains("/nonexistent-dir/o.npy"), run.stderr)
    }
}
