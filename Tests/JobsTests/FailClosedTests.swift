import Foundation
import XCTest
import Converters
import Jobs
import Runtime
import TestSupport

/// A row that cannot be scored is never reported as safe; outputs never clobber inputs;
/// swapped or contradictory arguments are diagnosed before any work.
final class FailClosedTests: HandBuiltModelTestCase {
    /// Three 4-wide rows, the middle one holding NaN.
    func inputWithANaNRow() throws -> String {
        try dir.write(NpyArray(shape: [3, 4], floats: [0.5, 0.5, 0.5, 0.5, .nan, 0, 0, 1, 1, 0, 0, 0]).serialized(), to: "x.npy")
    }

    func testANaNRowGetsNoScoreAndNoDecisionInEveryOutputFormat() throws {
        let input = try inputWithANaNRow()
        let outcome = try FileScoring(model: modelPath, input: input, output: dir.file("s.csv")).run()
        XCTAssertEqual(outcome.invalidRows.count, 1)
        XCTAssertEqual(outcome.invalidRows.first, [1])
        XCTAssertTrue(outcome.invalidRows.summary?.contains("row 1 holds NaN or infinity") == true, outcome.invalidRows.summary ?? "")
        let csv = try String(contentsOfFile: dir.file("s.csv"), encoding: .utf8).split(separator: "\n")
        XCTAssertEqual(csv[2], "1,,", "no score and no decision, never false")
        XCTAssertTrue(csv[1].hasSuffix(",true") || csv[1].hasSuffix(",false"))
        _ = try FileScoring(model: modelPath, input: input, output: dir.file("s.jsonl")).run()
        let jsonl = try String(contentsOfFile: dir.file("s.jsonl"), encoding: .utf8).split(separator: "\n")
        XCTAssertEqual(jsonl[1], "{\"row\":1,\"nsfw\":null,\"is_nsfw\":null}")
        _ = try FileScoring(model: modelPath, input: input, output: dir.file("s.npy")).run()
        let scores = try NpyArray(contentsOf: dir.file("s.npy")).floatValues()
        XCTAssertTrue(scores[1].isNaN && scores[0].isFinite && scores[2].isFinite)
    }

    func testAFolderRunRecordsInvalidRowsPerShard() throws {
        try FileManager.default.createDirectory(atPath: dir.file("in"), withIntermediateDirectories: true)
        _ = try dir.write(try Data(contentsOf: URL(fileURLWithPath: try inputWithANaNRow())), to: "in/a.npy")
        let summary = try FolderScoring(modelPaths: [modelPath], inputDir: dir.file("in"), outputDir: dir.file("out"))
            .run(observer: RecordingObserver())
        XCTAssertEqual(summary.invalidRows, 1)
        let manifest = try ShardManifest(contentsOf: dir.file("out/manifest.jsonl"))
        XCTAssertEqual(manifest.latest["a.npy"]?.invalidRows, 1)
        XCTAssertNotNil(manifest.latest["a.npy"]?.fingerprint)
        XCTAssertTrue(try NpyArray(contentsOf: dir.file("out/a.npy")).floatValues()[1].isNaN)
    }

    func testAGlobMatchingNothingIsAMissingInput() throws {
        try FileManager.default.createDirectory(atPath: dir.file("in"), withIntermediateDirectories: true)
        XCTAssertThrowsError(try FolderScoring(modelPaths: [modelPath], inputDir: dir.file("in"), outputDir: dir.file("out"))
            .run(observer: RecordingObserver())) { XCTAssertEqual(ExitStatus.describe($0).code, .noInput) }
    }

    func testAnOutputThatIsTheInputOrTheModelIsRefusedBeforeAnyWork() throws {
        let input = try inputWithANaNRow()
        let original = try Data(contentsOf: URL(fileURLWithPath: input))
        XCTAssertThrowsError(try FileScoring(model: modelPath, input: input, output: input).run()) {
            XCTAssertEqual(ExitStatus.describe($0).code, .usage)
        }
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: input)), original)
        let hardLink = dir.file("same.npy")
        XCTAssertEqual(link(modelPath, hardLink), 0)
        XCTAssertThrowsError(try FileScoring(model: modelPath, input: input, output: hardLink).run()) {
            XCTAssertTrue(ExitStatus.describe($0).message.contains("through a link"))
        }
        let symlink = dir.file("alias.csv")
        try FileManager.default.createSymbolicLink(atPath: symlink, withDestinationPath: input)
        XCTAssertThrowsError(try FileScoring(model: modelPath, input: input, output: symlink).run()) {
            XCTAssertEqual(ExitStatus.describe($0).code, .usage)
        }
    }

    func testAnEmbeddingMatrixGivenAsTheModelIsDiagnosedAsSwappedArguments() throws {
        let embeddings = try dir.write(NpyArray(shape: [200, 4], floats: [Float](repeating: 0.5, count: 800)).serialized(), to: "emb.npy")
        XCTAssertThrowsError(try ModelLoader.load(path: embeddings)) {
            let (message, code) = ExitStatus.describe($0)
            XCTAssertEqual(code, .usage)
            XCTAssertTrue(message.contains("200×4") && message.contains("swap"), message)
        }
        let stated = ConversionOptions(fileName: embeddings, stated: StatedMeaning(task: .promptClassifier))
        XCTAssertEqual(try ModelLoader.load(path: embeddings, options: stated).card.task, .promptClassifier)
    }

    func testContradictoryStatementsAreUsageErrors() throws {
        var card = HandBuilt.binaryModel().card
        XCTAssertThrowsError(try CardPolicy.apply(StatedMeaning(backbone: "ViT-H-14/laion2b"), to: &card)) {
            XCTAssertEqual(($0 as? ClipSafetyError)?.kind, .usage)
        }
        XCTAssertThrowsError(try CardPolicy.apply(StatedMeaning(threshold: 1.5), to: &card)) {
            XCTAssertEqual(($0 as? ClipSafetyError)?.kind, .usage)
        }
        XCTAssertNoThrow(try CardPolicy.apply(StatedMeaning(threshold: 0.7, backbone: "test/none"), to: &card))
        XCTAssertEqual(card.threshold, 0.7)
    }
}
