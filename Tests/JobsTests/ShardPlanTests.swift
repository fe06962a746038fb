import Foundation
import XCTest
@testable import Jobs
import Converters
import Runtime
import TestSupport

final class ShardPlanTests: XCTestCase {
    var dir: TemporaryDirectory!

    override func setUpWithError() throws { dir = try TemporaryDirectory() }
    override func tearDown() { dir.remove() }

    // MARK: natural order

    func testNaturalOrderPutsTwoBeforeTen() {
        let names = ["img_emb_10.npy", "img_emb_2.npy", "img_emb_1.npy", "img_emb_0.npy", "img_emb_100.npy", "img_emb_11.npy"]
        XCTAssertEqual(NaturalOrder.sorted(names),
                       ["img_emb_0.npy", "img_emb_1.npy", "img_emb_2.npy", "img_emb_10.npy", "img_emb_11.npy", "img_emb_100.npy"])
    }

    func testNaturalOrderComparesEveryDigitRunAndTheTextBetween() {
        let names = ["b1_10", "a2_1", "b1_9", "a10_0", "a2_01x", "a2_1x", "b1", "a"]
        XCTAssertEqual(NaturalOrder.sorted(names), ["a", "a2_1", "a2_01x", "a2_1x", "a10_0", "b1", "b1_9", "b1_10"])
    }

    func testNaturalOrderIsTheSameWhateverTheInputOrderForNumericallyEqualNames() {
        let names = ["x01", "x1", "x001", "x2"]
        let expected = NaturalOrder.sorted(names)
        XCTAssertEqual(expected.last, "x2")
        for p in [names.reversed(), ["x1", "x2", "x001", "x01"], ["x2", "x01", "x1", "x001"]] {
            XCTAssertEqual(NaturalOrder.sorted(Array(p)), expected)
        }
    }

    func testNaturalOrderHandlesDigitRunsLongerThanAnyInteger() {
        let huge = "s" + String(repeating: "9", count: 40)
        let larger = "s1" + String(repeating: "0", count: 40)
        XCTAssertEqual(NaturalOrder.sorted([larger, huge, "s5"]), ["s5", huge, larger])
    }

    // MARK: partitions

    func testPartitionsCoverEveryShardExactlyOnce() throws {
        for total in [0, 1, 2, 5, 16, 17] {
            let names = (0..<total).map { "img_emb_\($0).npy" }
            let all = try ShardPlan(names: names).all
            for n in 1...7 {
                var seen: [String: Int] = [:]
                for i in 0..<n {
                    let part = try ShardPlan(names: names.shuffled(), partition: ShardPartition(index: i, count: n)).selected
                    XCTAssertEqual(part, NaturalOrder.sorted(part), "a partition keeps the natural order")
                    for s in part { seen[s, default: 0] += 1 }
                    XCTAssertEqual(part, all.enumerated().filter { $0.offset % n == i }.map(\.element))
                }
                XCTAssertEqual(Set(seen.keys), Set(names), "\(total) shards, \(n) partitions")
                XCTAssertTrue(seen.values.allSatisfy { $0 == 1 }, "\(total) shards, \(n) partitions")
            }
        }
    }

    func testPartitionParsesIOverN() throws {
        XCTAssertEqual(try ShardPartition(parsing: "3/8"), try ShardPartition(index: 3, count: 8))
        XCTAssertEqual(try ShardPartition(parsing: "0/1").description, "0/1")
    }

    func testPartitionRejectsMalformedOrOutOfRangeText() {
        for text in ["", "3", "2/2", "5/2", "1/0", "-1/2", "+1/2", "a/b", "1/2/3", " 1/2", "1/ 2", "1//2", "0/99999999999"] {
            XCTAssertThrowsError(try ShardPartition(parsing: text), text)
        }
    }

    // MARK: plan and listing

    func testPlanRefusesTwoShardsWithOneOutputName() {
        XCTAssertThrowsError(try ShardPlan(names: ["a.npy", "a.NPY"])) { error in
            XCTAssertEqual((error as? ClipSafetyError)?.kind, .mismatch)
        }
        XCTAssertEqual(ShardPlan.outputName(for: "img_emb_3.npy"), "img_emb_3.npy")
        XCTAssertEqual(ShardPlan.outputName(for: "part.f16"), "part.npy")
    }

    func testListMatchesTheGlobAndSkipsFoldersAndHiddenFiles() throws {
        for name in ["img_emb_1.npy", "img_emb_2.npy", "text_emb_1.npy", ".img_emb_3.npy", "notes.txt"] {
            _ = try dir.write(Data([1]), to: name)
        }
        try FileManager.default.createDirectory(atPath: dir.file("img_emb_9.npy"), withIntermediateDirectories: false)
        XCTAssertEqual(Set(try ShardPlan.list(directory: dir.path, glob: "*.npy")), ["img_emb_1.npy", "img_emb_2.npy", "text_emb_1.npy"])
        XCTAssertEqual(Set(try ShardPlan.list(directory: dir.path, glob: "img_emb_*.npy")), ["img_emb_1.npy", "img_emb_2.npy"])
        XCTAssertEqual(try ShardPlan.list(directory: dir.path, glob: "img_emb_\\*.npy"), [])
        XCTAssertThrowsError(try ShardPlan.list(directory: dir.file("missing"), glob: "*"))
    }

    // MARK: manifest

    func entry(_ shard: String, _ status: ManifestEntry.Status, sha: String? = nil, bytes: Int = 10) -> ManifestEntry {
        ManifestEntry(shard: shard, status: status, bytes: bytes, rows: status == .done ? 2 : nil,
                      output: status == .done ? ShardPlan.outputName(for: shard) : nil, sha256: sha, seconds: 0.5,
                      reason: status == .failed ? "broken" : nil)
    }

    func testLaterLineForAShardWins() {
        var text = Data()
        text.append(entry("a.npy", .failed).line())
        text.append(entry("b.npy", .done, sha: "1").line())
        text.append(entry("a.npy", .done, sha: "2").line())
        text.append(entry("b.npy", .failed).line())
        let m = ShardManifest(text: text)
        XCTAssertEqual(m.latest["a.npy"]?.status, .done)
        XCTAssertEqual(m.latest["a.npy"]?.sha256, "2")
        XCTAssertEqual(m.latest["b.npy"]?.status, .failed)
        XCTAssertEqual(m.skippedLines, [])
    }

    func testTornLastLineIsSkippedWithoutCountingAsDamage() {
        var text = entry("a.npy", .done, sha: "1").line()
        let torn = entry("b.npy", .done, sha: "2").line()
        text.append(torn.prefix(torn.count / 2))
        let m = ShardManifest(text: text)
        XCTAssertEqual(Array(m.latest.keys), ["a.npy"])
        XCTAssertEqual(m.skippedLines, [2])
        XCTAssertFalse(m.endsWithNewline)
        XCTAssertEqual(m.damagedLines, [])
    }

    func testGarbageLineInTheMiddleIsReportedAsDamage() {
        var text = entry("a.npy", .done, sha: "1").line()
        text.append(Data("{\"shard\": \n[1,2]\n".utf8))
        text.append(entry("b.npy", .done, sha: "2").line())
        let m = ShardManifest(text: text)
        XCTAssertEqual(Set(m.latest.keys), ["a.npy", "b.npy"])
        XCTAssertEqual(m.damagedLines, [2, 3])
    }

    func testATornLastLineIsCutOffWhenTheManifestIsOpenedForAppending() throws {
        let path = dir.file("manifest.jsonl")
        let torn = entry("b.npy", .done, sha: "2").line()
        try (entry("a.npy", .done, sha: "1").line() + torn.prefix(20)).write(to: URL(fileURLWithPath: path))
        let before = try ShardManifest(contentsOf: path)
        let appender = try ManifestAppender(path: path, endsWithNewline: before.endsWithNewline)
        try appender.append(entry("c.npy", .failed))
        try appender.append(entry("d.npy", .failed))
        let after = try ShardManifest(contentsOf: path)
        XCTAssertEqual(Set(after.latest.keys), ["a.npy", "c.npy", "d.npy"])
        XCTAssertEqual(after.skippedLines, [], "the torn line is gone")
        XCTAssertTrue(after.endsWithNewline)
    }

    func testATornTailLongerThanTheSearchWindowIsCutAtTheLastNewline() throws {
        let path = dir.file("manifest.jsonl")
        let good = entry("a.npy", .done, sha: "1").line()
        try (good + Data(repeating: 0x41, count: 200_000)).write(to: URL(fileURLWithPath: path))
        _ = try ManifestAppender(path: path, endsWithNewline: false)
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: path)), good)
        try Data(repeating: 0x41, count: 70_000).write(to: URL(fileURLWithPath: path))
        _ = try ManifestAppender(path: path, endsWithNewline: false)
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: path)), Data(), "no newline at all: nothing is kept")
    }

    func testAChangedShardOfTheSameSizeGetsAnotherFingerprint() throws {
        let path = dir.file("s.npy")
        try Data(repeating: 1, count: 3 << 20).write(to: URL(fileURLWithPath: path))
        let before = try XCTUnwrap(ShardFingerprint.of(path))
        XCTAssertEqual(ShardFingerprint.of(path), before, "the same content gives the same fingerprint")
        var changed = Data(repeating: 1, count: 3 << 20)
        changed[(3 << 20) - 5] = 2  // the last MiB
        try changed.write(to: URL(fileURLWithPath: path))
        XCTAssertNotEqual(ShardFingerprint.of(path), before)
        let sha = sha256Hex(Data("x".utf8))
        _ = try dir.write(Data("x".utf8), to: "a.npy")
        var done = entry("a.npy", .done, sha: sha)
        done.fingerprint = before
        let recorded = ShardManifest(text: done.line())
        XCTAssertNil(recorded.completed("a.npy", inputBytes: 10, fingerprint: "other", outputDirectory: dir.path))
        XCTAssertNotNil(recorded.completed("a.npy", inputBytes: 10, fingerprint: before, outputDirectory: dir.path))
    }

    func testMissingManifestIsEmpty() throws {
        let m = try ShardManifest(contentsOf: dir.file("none.jsonl"))
        XCTAssertTrue(m.latest.isEmpty)
    }

    func testCompletedNeedsADoneLineTheSameInputSizeAndTheOutputWithItsSHA() throws {
        let bytes = Data("scores".utf8)
        _ = try dir.write(bytes, to: "a.npy")
        let sha = sha256Hex(bytes)
        func manifest(_ entries: ManifestEntry...) -> ShardManifest { ShardManifest(text: entries.reduce(Data()) { $0 + $1.line() }) }

        XCTAssertNotNil(manifest(entry("a.npy", .done, sha: sha)).completed("a.npy", inputBytes: 10, fingerprint: nil, outputDirectory: dir.path))
        XCTAssertNil(manifest(entry("a.npy", .done, sha: sha)).completed("a.npy", inputBytes: 11, fingerprint: nil, outputDirectory: dir.path), "input changed size")
        XCTAssertNil(manifest(entry("a.npy", .done, sha: sha), entry("a.npy", .failed)).completed("a.npy", inputBytes: 10, fingerprint: nil, outputDirectory: dir.path))
        XCTAssertNil(manifest(entry("a.npy", .done, sha: String(repeating: "0", count: 64))).completed("a.npy", inputBytes: 10, fingerprint: nil, outputDirectory: dir.path))
        XCTAssertNil(manifest(entry("b.npy", .done, sha: sha)).completed("b.npy", inputBytes: 10, fingerprint: nil, outputDirectory: dir.path), "no output file")
        XCTAssertNil(manifest().completed("a.npy", inputBytes: 10, fingerprint: nil, outputDirectory: dir.path))
        try Data("scoreS".utf8).write(to: URL(fileURLWithPath: dir.file("a.npy")))
        XCTAssertNil(manifest(entry("a.npy", .done, sha: sha)).completed("a.npy", inputBytes: 10, fingerprint: nil, outputDirectory: dir.path), "output changed")
    }

    // MARK: columns.json

    func testColumnsAreWrittenOnceAndAnotherLayoutIsRefused() throws {
        let path = dir.file("columns.json")
        let a = FolderColumns.Model(file: "nsfw.safetensors", sha256: "aa", name: "nsfw", columns: ["nsfw"])
        let b = FolderColumns.Model(file: "violence.npy", sha256: "bb", name: "violence", columns: ["other", "violent"])
        let columns = FolderColumns(models: [a, b], normalize: false)
        XCTAssertEqual(columns.columns, ["nsfw/nsfw", "violence/other", "violence/violent"])
        try columns.writeOrCheck(at: path)
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: path)), columns.encoded())
        try columns.writeOrCheck(at: path)
        for other in [FolderColumns(models: [b, a], normalize: false), FolderColumns(models: [a, b], normalize: true),
                      FolderColumns(models: [a], normalize: false)] {
            XCTAssertThrowsError(try other.writeOrCheck(at: path)) { XCTAssertEqual(($0 as? ClipSafetyError)?.kind, .mismatch) }
        }
        try Data("[]".utf8).write(to: URL(fileURLWithPath: path))
        XCTAssertThrowsError(try columns.writeOrCheck(at: path)) { XCTAssertEqual(($0 as? ClipSafetyError)?.kind, .malformed) }
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir.path), ["columns.json"], "no temporary left")
    }

    // MARK: output files

    func testOutputFileIsANpyWhoseSHAIsReturnedAndAppearsOnlyWhenFinished() throws {
        let path = dir.file("o.npy")
        let out = try ShardOutputFile(path: path, rows: 3, columns: 2)
        let values: [Float] = [1, 2, 3, 4, 5, 6]
        try values.withUnsafeBufferPointer { try out.append(UnsafeBufferPointer(rebasing: $0[0..<4])) }
        XCTAssertFalse(FileManager.default.fileExists(atPath: path))
        try values.withUnsafeBufferPointer { try out.append(UnsafeBufferPointer(rebasing: $0[4..<6])) }
        let sha = try out.finish()
        let bytes = try Data(contentsOf: URL(fileURLWithPath: path))
        XCTAssertEqual(sha, sha256Hex(bytes))
        let array = try NpyArray(bytes: bytes)
        XCTAssertEqual(array.shape, [3, 2])
        XCTAssertEqual(array.floatValues(), values)
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir.path), ["o.npy"])
    }

    func testOutputFileRefusesTooManyOrTooFewScores() throws {
        let values: [Float] = [1, 2, 3]
        let short = try ShardOutputFile(path: dir.file("s.npy"), rows: 2, columns: 2)
        try values.withUnsafeBufferPointer { try short.append($0) }
        XCTAssertThrowsError(try short.finish())
        let long = try ShardOutputFile(path: dir.file("l.npy"), rows: 1, columns: 2)
        XCTAssertThrowsError(try values.withUnsafeBufferPointer { try long.append($0) })
        long.abandon()
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir.path), [], "nothing left behind")
    }

    func testStaleTemporariesOfDeadProcessesAreRemovedAndLiveOnesKept() throws {
        let open = try AtomicFile(path: dir.file("a.npy"))
        let mine = (open.temporaryPath as NSString).lastPathComponent
        let prefix = String(mine[..<mine.range(of: "-\(getpid())-")!.lowerBound])
        var dead: Int32 = 4_000_000
        while dead > 1, kill(dead, 0) == 0 || errno != ESRCH { dead -= 1 }
        let deadName = prefix.replacingOccurrences(of: ".a.npy", with: ".b.npy") + "-\(dead)-7"
        let liveName = prefix.replacingOccurrences(of: ".a.npy", with: ".c.npy") + "-1-7"
        for name in [deadName, liveName, ".other.tmp-elsewhere-\(dead)-7"] {
            _ = try dir.write(Data([0]), to: name)
        }
        XCTAssertEqual(AtomicFile.removeStale(in: dir.path), 1)
        XCTAssertEqual(Set(try FileManager.default.contentsOfDirectory(atPath: dir.path)),
                       [liveName, mine, ".other.tmp-elsewhere-\(dead)-7"])
        open.discard()
    }
}
