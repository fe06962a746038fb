import Foundation
import XCTest
import Converters
import Runtime
import TestSupport

/// `score … --input-dir DIR --output-dir OUT` through the built binary.
final class ScoreFolderTests: XCTestCase {
    var dir: TemporaryDirectory!
    var binaryModel: String!
    var promptModel: String!
    var input: String!

    /// Two 4-wide prompts, so that a folder can be scored by two heads at once.
    static let prompts: [Float] = [1, 0, 0, 0, 0, 0.6, 0.8, 0]

    override func setUpWithError() throws {
        dir = try TemporaryDirectory()
        binaryModel = dir.file("nsfw.safetensors")
        try HandBuilt.binaryModel().write(to: binaryModel)
        promptModel = dir.file("violence.safetensors")
        let card = ModelCard(name: "prompts-4", task: .promptClassifier, backbone: "test/none", embeddingDim: 4,
                             outputKind: .logits, outputColumns: ["other", "violent"], outputRange: [-1, 1],
                             labels: ["other", "violent"], positiveLabel: "violent")
        try NativeModel(card: card, source: Provenance(originalFile: "hand-built", sha256: String(repeating: "0", count: 64), sourceFormat: "hand-built"),
                        graph: [.promptScores(prompts: "prompts"), .argmax],
                        tensors: [Tensor(name: "prompts", shape: [2, 4], floats: Self.prompts)]).write(to: promptModel)
        input = dir.file("in")
        try FileManager.default.createDirectory(atPath: input, withIntermediateDirectories: true)
    }

    override func tearDown() { dir.remove() }

    /// `count` unit rows, different for every `seed`.
    func rows(_ count: Int, seed: Int) -> [[Float]] {
        (0..<count).map { r in
            let v = (0..<4).map { c in Float(sin(Double(seed * 131 + r * 17 + c * 5) * 0.7)) }
            let n = v.map { $0 * $0 }.reduce(0, +).squareRoot()
            return v.map { $0 / n }
        }
    }

    func writeShard(_ name: String, _ rows: [[Float]]) throws {
        try NpyArray(shape: [rows.count, 4], floats: rows.flatMap { $0 }).serialized().write(to: URL(fileURLWithPath: input + "/" + name))
    }

    func score(_ out: String, _ extra: [String] = [], models: [String]? = nil) throws -> CLIRun {
        let m = models ?? [binaryModel, promptModel]
        return try CLI.run(["score", m[0]] + m.dropFirst().flatMap { ["--model", $0] } + ["--input-dir", input, "--output-dir", out] + extra)
    }

    func manifestLines(_ out: String) throws -> [[String: Any]] {
        let text = try String(contentsOfFile: out + "/manifest.jsonl", encoding: .utf8)
        return try text.split(separator: "\n").map { try JSONSerialization.jsonObject(with: Data($0.utf8)) as! [String: Any] }
    }

    func outputs(_ out: String) throws -> [String: Data] {
        var files: [String: Data] = [:]
        for name in try FileManager.default.contentsOfDirectory(atPath: out) where name.hasSuffix(".npy") || name == "columns.json" {
            files[name] = try Data(contentsOf: URL(fileURLWithPath: out + "/" + name))
        }
        return files
    }

    func testScoresEveryShardInNaturalOrderWithBothHeadsSideBySide() throws {
        let shards = ["img_emb_10.npy": rows(3, seed: 10), "img_emb_2.npy": rows(5, seed: 2), "img_emb_1.npy": rows(1, seed: 1)]
        for (name, r) in shards { try writeShard(name, r) }
        let out = dir.file("out")
        let run = try score(out)
        XCTAssertEqual(run.status, 0, run.stderr)
        XCTAssertTrue(run.stderr.contains("3 shards: 3 scored (9 rows), 0 already done, 0 failed"), run.stderr)
        XCTAssertEqual(try manifestLines(out).map { $0["shard"] as? String }, ["img_emb_1.npy", "img_emb_2.npy", "img_emb_10.npy"])
        for (name, r) in shards {
            let result = try NpyArray(contentsOf: out + "/" + name)
            XCTAssertEqual(result.dtype, .f4)
            XCTAssertEqual(result.shape, [r.count, 3])
            let v = result.floatValues()
            for (i, row) in r.enumerated() {
                XCTAssertEqual(Double(v[i * 3]), HandBuilt.expectedBinary(row.map(Double.init)), accuracy: 1e-6)
                for k in 0..<2 {
                    let dot = (0..<4).reduce(0.0) { $0 + Double(Self.prompts[k * 4 + $1]) * Double(row[$1]) }
                    XCTAssertEqual(Double(v[i * 3 + 1 + k]), dot, accuracy: 1e-6)
                }
            }
        }
        let columns = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: out + "/columns.json"))) as! [String: Any]
        XCTAssertEqual(columns["columns"] as? [String], ["nsfw/nsfw", "violence/other", "violence/violent"])
        let models = columns["models"] as! [[String: Any]]
        XCTAssertEqual(models.map { $0["sha256"] as? String },
                       try [binaryModel, promptModel].map { sha256Hex(try Data(contentsOf: URL(fileURLWithPath: $0!))) })
        for line in try manifestLines(out) {
            let name = line["output"] as! String
            XCTAssertEqual(line["sha256"] as? String, sha256Hex(try Data(contentsOf: URL(fileURLWithPath: out + "/" + name))))
            XCTAssertEqual(line["status"] as? String, "done")
        }
    }

    func testFolderOutputHoldsTheSameBytesAsTheSingleFileForm() throws {
        let halves = rows(7, seed: 3).flatMap { $0.map { Float16($0) } }
        try NpyArray(dtype: .f2, shape: [7, 4], data: halves.withUnsafeBytes { Data($0) }).serialized().write(to: URL(fileURLWithPath: input + "/h.npy"))
        let out = dir.file("out")
        XCTAssertEqual(try score(out, ["--batch", "3"], models: [binaryModel]).status, 0)
        XCTAssertEqual(try CLI.run(["score", binaryModel, input + "/h.npy", "-o", dir.file("single.npy"), "--batch", "3"]).status, 0)
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: out + "/h.npy")), try Data(contentsOf: URL(fileURLWithPath: dir.file("single.npy"))))
    }

    func testShardPartitionsTogetherScoreEveryShardOnceAndEqualAFullRun() throws {
        for i in 0..<11 { try writeShard("part-\(i).npy", rows(2 + i % 3, seed: i)) }
        let full = dir.file("full"), parts = dir.file("parts")
        XCTAssertEqual(try score(full).status, 0)
        var counts: [Int] = []
        for i in 0..<4 {
            let run = try score(parts, ["--shard", "\(i)/4"])
            XCTAssertEqual(run.status, 0, run.stderr)
            counts.append(try manifestLines(parts).count)
            XCTAssertTrue(run.stderr.contains("(partition \(i)/4 of 11)"), run.stderr)
        }
        XCTAssertEqual(counts, [3, 6, 9, 11], "partition k mod 4 over 11 shards")
        let shards = try manifestLines(parts).map { $0["shard"] as! String }
        XCTAssertEqual(shards.count, 11)
        XCTAssertEqual(Set(shards).count, 11)
        XCTAssertEqual(Array(shards.prefix(3)), ["part-0.npy", "part-4.npy", "part-8.npy"])
        XCTAssertEqual(try outputs(parts), try outputs(full))
    }

    func testRerunSkipsFinishedShardsAndRedoesChangedOrDamagedOnes() throws {
        for i in 0..<4 { try writeShard("s\(i).npy", rows(3, seed: i)) }
        let out = dir.file("out")
        XCTAssertEqual(try score(out).status, 0)
        let first = try outputs(out)
        let again = try score(out)
        XCTAssertEqual(again.status, 0)
        XCTAssertTrue(again.stderr.contains("0 scored (0 rows), 4 already done"), again.stderr)
        XCTAssertEqual(try manifestLines(out).count, 4)

        try Data("damaged".utf8).write(to: URL(fileURLWithPath: out + "/s1.npy"))   // output no longer matches its SHA-256
        try FileManager.default.removeItem(atPath: out + "/s2.npy")                  // output lost
        try writeShard("s3.npy", rows(4, seed: 3))                                    // input changed size
        let redo = try score(out)
        XCTAssertEqual(redo.status, 0, redo.stderr)
        XCTAssertTrue(redo.stderr.contains("3 scored (10 rows), 1 already done"), redo.stderr)
        let second = try outputs(out)
        XCTAssertEqual(second["s1.npy"], first["s1.npy"])
        XCTAssertEqual(second["s2.npy"], first["s2.npy"])
        XCTAssertNotEqual(second["s3.npy"], first["s3.npy"])
        XCTAssertEqual(try NpyArray(contentsOf: out + "/s3.npy").shape, [4, 3])
    }

    func testCorruptShardsAmongGoodOnesAreRecordedAsFailedAndExit65() throws {
        try writeShard("a1.npy", rows(2, seed: 1))
        let good = try Data(contentsOf: URL(fileURLWithPath: input + "/a1.npy"))
        try good.prefix(good.count - 5).write(to: URL(fileURLWithPath: input + "/a2.npy"))        // truncated
        try NpyArray(shape: [2, 3], floats: [Float](repeating: 0.5, count: 6)).serialized().write(to: URL(fileURLWithPath: input + "/a3.npy"))  // 3 wide
        try Data("not a numpy file".utf8).write(to: URL(fileURLWithPath: input + "/a4.npy"))
        try writeShard("a10.npy", rows(3, seed: 10))
        let out = dir.file("out")
        let run = try score(out)
        XCTAssertEqual(run.status, 65, run.stderr)
        XCTAssertTrue(run.stderr.contains("5 shards: 2 scored (5 rows), 0 already done, 3 failed"), run.stderr)
        XCTAssertTrue(run.stderr.contains("a2.npy: npy: shape [2, 4] needs 32 data bytes"), run.stderr)
        let lines = try manifestLines(out)
        XCTAssertEqual(lines.map { $0["status"] as? String }, ["done", "failed", "failed", "failed", "done"])
        XCTAssertTrue((lines[2]["reason"] as? String ?? "").contains("rows have 3 values; the model expects 4"))
        XCTAssertTrue((lines[3]["reason"] as? String ?? "").contains("magic"))
        XCTAssertEqual(Set(try outputs(out).keys), ["a1.npy", "a10.npy", "columns.json"])

        try good.write(to: URL(fileURLWithPath: input + "/a2.npy"))
        for name in ["a3.npy", "a4.npy"] { try FileManager.default.removeItem(atPath: input + "/" + name) }
        let rerun = try score(out)
        XCTAssertEqual(rerun.status, 0, rerun.stderr)
        XCTAssertTrue(rerun.stderr.contains("3 shards: 1 scored (2 rows), 2 already done, 0 failed"), rerun.stderr)
        XCTAssertEqual(try outputs(out)["a2.npy"], try outputs(out)["a1.npy"], "a2 now holds a1's rows")
    }

    func testStrictFailsOnlyTheShardThatBreaksThePrecondition() throws {
        try writeShard("n1.npy", rows(2, seed: 1))
        try writeShard("n2.npy", [[2, 0, 0, 0], [0, 1, 0, 0]])
        let out = dir.file("out")
        let warned = try score(dir.file("warn"))
        XCTAssertEqual(warned.status, 0)
        XCTAssertTrue(warned.stderr.contains("warning: \(input!)/n2.npy: 1 of 2 rows are not L2-normalised"), warned.stderr)
        XCTAssertTrue((try manifestLines(dir.file("warn"))[1]["warning"] as? String ?? "").contains("not L2-normalised"))
        let strict = try score(out, ["--strict"])
        XCTAssertEqual(strict.status, 65)
        XCTAssertEqual(try manifestLines(out).map { $0["status"] as? String }, ["done", "failed"])
        XCTAssertTrue((try manifestLines(out)[1]["reason"] as? String ?? "").contains("--strict"))
    }

    func testKilledRunFinishesOnRerunWithIdenticalOutputs() throws {
        let total = 240
        for i in 0..<total { try writeShard("img_emb_\(i).npy", rows(60, seed: i)) }
        let reference = dir.file("reference")
        XCTAssertEqual(try score(reference, ["--batch", "1"]).status, 0)

        let out = dir.file("out")
        let process = Process()
        process.executableURL = URL(fileURLWithPath: CLI.binary)
        process.arguments = ["score", binaryModel, "--model", promptModel, "--input-dir", input, "--output-dir", out, "--batch", "1"]
        process.standardError = FileHandle.nullDevice
        process.standardOutput = FileHandle.nullDevice
        try process.run()
        let deadline = Date().addingTimeInterval(60)
        var done = 0
        while Date() < deadline && process.isRunning {
            done = (try? String(contentsOfFile: out + "/manifest.jsonl", encoding: .utf8))?.split(separator: "\n").count ?? 0
            if done >= 10 { break }
            usleep(2000)
        }
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
        XCTAssertEqual(process.terminationReason, .uncaughtSignal, "the run must be killed, not finish")
        let finished = try manifestLines(out).count
        XCTAssertGreaterThanOrEqual(finished, 10)
        XCTAssertLessThan(finished, total, "killed mid-run")

        // A torn line, as a crash mid-append would leave it.
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: out + "/manifest.jsonl"))
        try handle.seekToEnd()
        try handle.write(contentsOf: Data("{\"shard\":\"img_emb_2".utf8))
        try handle.close()

        let rerun = try score(out, ["--batch", "1"])
        XCTAssertEqual(rerun.status, 0, rerun.stderr)
        XCTAssertTrue(rerun.stderr.contains("\(total - finished) scored"), rerun.stderr)
        XCTAssertTrue(rerun.stderr.contains("\(finished) already done"), rerun.stderr)
        XCTAssertFalse(rerun.stderr.contains("warning"), "a torn last line is not damage: \(rerun.stderr)")
        XCTAssertEqual(try outputs(out), try outputs(reference))
        XCTAssertFalse(try FileManager.default.contentsOfDirectory(atPath: out).contains { $0.contains(".tmp-") }, "stale temporaries removed")
        let again = try score(out, ["--batch", "1"])
        XCTAssertTrue(again.stderr.contains("0 scored (0 rows), \(total) already done"), again.stderr)
    }

    func testEmptyShardGivesAnEmptyOutput() throws {
        try NpyArray(shape: [0, 4], floats: []).serialized().write(to: URL(fileURLWithPath: input + "/e.npy"))
        let out = dir.file("out")
        XCTAssertEqual(try score(out).status, 0)
        XCTAssertEqual(try NpyArray(contentsOf: out + "/e.npy").shape, [0, 3])
    }

    func testGlobSelectsShards() throws {
        try writeShard("img_emb_0.npy", rows(1, seed: 0))
        try writeShard("text_emb_0.npy", rows(1, seed: 1))
        let out = dir.file("out")
        XCTAssertEqual(try score(out, ["--glob", "img_emb_*.npy"]).status, 0)
        XCTAssertEqual(Set(try outputs(out).keys), ["img_emb_0.npy", "columns.json"])
    }

    func testAnOutputFolderOfOtherModelsIsRefused() throws {
        try writeShard("s.npy", rows(2, seed: 0))
        let out = dir.file("out")
        XCTAssertEqual(try score(out).status, 0)
        let before = try outputs(out)
        let run = try score(out, models: [binaryModel])
        XCTAssertEqual(run.status, 65)
        XCTAssertTrue(run.stderr.contains("columns.json: this folder holds scores of nsfw.safetensors"), run.stderr)
        XCTAssertEqual(try score(out, ["--normalize"]).status, 65, "--normalize changes the scores")
        XCTAssertEqual(try outputs(out), before)
    }

    func testArgumentErrors() throws {
        try writeShard("s.npy", rows(1, seed: 0))
        let out = dir.file("out")
        let usage: [[String]] = [
            ["score", binaryModel, "--input-dir", input],
            ["score", binaryModel, "--output-dir", out],
            ["score", binaryModel, input + "/s.npy", "-o", dir.file("o.npy"), "--model", promptModel],
            ["score", binaryModel, input + "/s.npy", "-o", dir.file("o.npy"), "--shard", "0/2"],
            ["score", binaryModel, input + "/s.npy", "--input-dir", input, "--output-dir", out],
            ["score", binaryModel, "--input-dir", input, "--output-dir", out, "--shard", "2/2"],
            ["score", binaryModel, "--input-dir", input, "--output-dir", out, "--threshold", "0.3"],
            ["score", binaryModel, "--input-dir", input, "--output-dir", out, "--model", dir.file("x/nsfw.npy")],
            ["score", binaryModel, "--input-dir", input, "--output-dir", input],
            ["score", binaryModel],
        ]
        for args in usage {
            XCTAssertEqual(try CLI.run(args).status, 64, args.joined(separator: " "))
        }
        XCTAssertEqual(try CLI.run(["score", binaryModel, "--input-dir", dir.file("missing"), "--output-dir", out]).status, 66)
        let b32 = dir.file("b.safetensors")
        var model = HandBuilt.promptModel()
        model.card.name = "three-wide"
        try model.write(to: b32)
        let widths = try CLI.run(["score", binaryModel, "--model", b32, "--input-dir", input, "--output-dir", out])
        XCTAssertEqual(widths.status, 65)
        XCTAssertTrue(widths.stderr.contains("takes 4-wide rows but"), widths.stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: out + "/manifest.jsonl"))
    }
}
