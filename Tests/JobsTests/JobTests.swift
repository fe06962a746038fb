import Foundation
import XCTest
import Converters
import Jobs
import Runtime
import TestSupport

/// Collects what a folder run reports, for assertions.
final class RecordingObserver: FolderObserver {
    var messages: [String] = []
    var rows = 0
    var shardsStarted = 0
    var shardsFinished = 0
    func started(shards: Int, bytes: Int) { shardsStarted = shards }
    func scored(rows count: Int, bytes: Int) { rows += count }
    func finishedShard(bytes: Int) { shardsFinished += 1 }
    func message(_ line: String) { messages.append(line) }
    func finished() {}
}

/// verify, compare and scoring as library calls, in process: what the commands print is built
/// from these results.
final class JobTests: HandBuiltModelTestCase {
    let inputs: [Double] = [0.3, -0.1, 0.7, 0.2, -1, 2, 0.5, 0.5, 0, 0, 0, 0]


    func reference(delta: Float) throws -> String {
        let rows = stride(from: 0, to: inputs.count, by: 4).map { Array(inputs[$0..<$0 + 4]) }
        let outputs = rows.map { Float(HandBuilt.expectedBinary($0)) + delta }
        let path = dir.file("ref-\(delta).npz")
        try NpzArchive.write(["inputs": NpyArray(shape: [3, 4], doubles: inputs), "outputs": NpyArray(shape: [3, 1], floats: outputs)], to: path)
        return path
    }

    func testVerificationPassesWithinToleranceAndFailsOutsideIt() throws {
        let good = try Verification(model: modelPath, reference: try reference(delta: 0), atol: 1e-6, rtol: 0).run()
        XCTAssertTrue(good.report.passed)
        XCTAssertEqual(good.report.decisionsCompared, 3)
        let bad = try Verification(model: modelPath, reference: try reference(delta: 1e-3), atol: 1e-4, rtol: 0).run()
        XCTAssertFalse(bad.report.passed)
        XCTAssertEqual(bad.report.rowsOutsideTolerance, 3)
    }

    func testVerificationOfAMissingReferenceNamesItAndExits66() throws {
        let missing = dir.file("nope.npz")
        XCTAssertThrowsError(try Verification(model: modelPath, reference: missing, atol: 1e-6, rtol: 0).run()) { error in
            let (message, code) = ExitStatus.describe(error)
            XCTAssertEqual(code, .noInput)
            XCTAssertTrue(message.hasPrefix(missing + ": "), message)
        }
    }

    func testComparingAModelWithItselfFindsNoDifference() throws {
        let job = ModelComparison(a: modelPath, b: modelPath, inputs: .random(rows: 50, seed: 3), maxAbsDiff: 0)
        let (report, _) = try job.run()
        XCTAssertEqual(report.comparison.rows, 50)
        XCTAssertEqual(report.comparison.maxAbsDiff, 0)
        XCTAssertEqual(report.withinLimit, true)
    }

    func testComparingModelsOfDifferentWidthsIsRefused() throws {
        let wide = dir.file("wide.safetensors")
        try HandBuilt.wideModel(width: 8).write(to: wide)
        XCTAssertThrowsError(try ModelComparison(a: modelPath, b: wide, inputs: .random(rows: 5, seed: 0)).run()) {
            XCTAssertEqual(ExitStatus.describe($0).code, .dataError)
        }
    }

    func testFileScoringWritesEveryRowAndLeavesNoTemporary() throws {
        let input = try dir.write(NpyArray(shape: [3, 4], doubles: inputs).serialized(), to: "x.npy")
        var calls: [(Int, Int)] = []
        _ = try FileScoring(model: modelPath, input: input, output: dir.file("s.npy"), batch: 2).run { calls.append(($0, $1)) }
        let scores = try NpyArray(contentsOf: dir.file("s.npy")).floatValues()
        XCTAssertEqual(scores.count, 3)
        for (r, s) in scores.enumerated() {
            XCTAssertEqual(Double(s), HandBuilt.expectedBinary(Array(inputs[r * 4..<r * 4 + 4])), accuracy: 1e-6)
        }
        XCTAssertEqual(calls.map(\.0), [2, 3])
        XCTAssertEqual(Set(try FileManager.default.contentsOfDirectory(atPath: dir.path)), ["hand.safetensors", "x.npy", "s.npy"])
    }

    func testFileScoringThatFailsLeavesAnExistingOutputAsItWas() throws {
        let input = try dir.write(NpyArray(shape: [2, 3], doubles: [1, 2, 3, 4, 5, 6]).serialized(), to: "narrow.npy")
        let output = try dir.write(Data("keep".utf8), to: "s.csv")
        XCTAssertThrowsError(try FileScoring(model: modelPath, input: input, output: output).run()) {
            XCTAssertEqual(ExitStatus.describe($0).code, .dataError)
        }
        XCTAssertEqual(try String(contentsOfFile: output, encoding: .utf8), "keep")
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir.path).filter { $0.hasPrefix(".") }, [])
    }

    func testFolderScoringRecordsDoneAndFailedShardsAndSkipsThemOnRerun() throws {
        let shards = dir.file("in")
        try FileManager.default.createDirectory(atPath: shards, withIntermediateDirectories: true)
        _ = try dir.write(NpyArray(shape: [3, 4], doubles: inputs).serialized(), to: "in/a.npy")
        _ = try dir.write(NpyArray(shape: [1, 3], doubles: [1, 2, 3]).serialized(), to: "in/b.npy")
        let job = FolderScoring(modelPaths: [modelPath], inputDir: shards, outputDir: dir.file("out"), batch: 2)
        let observer = RecordingObserver()
        let first = try job.run(observer: observer)
        XCTAssertEqual(first, FolderSummary(matched: 2, selected: 2, scored: 1, skipped: 0, failed: 1, rows: 3))
        XCTAssertEqual(observer.rows, 3)
        XCTAssertTrue(observer.messages.contains { $0.contains("b.npy") && $0.contains("recorded as failed") }, "\(observer.messages)")
        let again = try job.run(observer: RecordingObserver())
        XCTAssertEqual(again.skipped, 1, "the finished shard is skipped")
        XCTAssertEqual(again.failed, 1, "the failed shard is tried again")
    }

    func testFolderScoringRefusesTheInputFolderAsOutput() throws {
        let shards = dir.file("in")
        try FileManager.default.createDirectory(atPath: shards, withIntermediateDirectories: true)
        XCTAssertThrowsError(try FolderScoring(modelPaths: [modelPath], inputDir: shards, outputDir: shards).run(observer: RecordingObserver())) {
            XCTAssertEqual(ExitStatus.describe($0).code, .usage)
        }
    }
}
