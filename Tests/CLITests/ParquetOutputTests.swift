import Foundation
import Parquet
import Runtime
import TestSupport
import XCTest

/// `score … -o X.parquet`, `--format parquet` with `--metadata-dir`, and `select`, through the
/// CLI, with every file read by pyarrow, DuckDB and polars and compared with the `.npy` path.
final class ParquetOutputTests: XCTestCase {
    var dir: TemporaryDirectory!
    var binaryModel: String!
    var promptModel: String!
    var input: String!

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
                        tensors: [Tensor(name: "prompts", shape: [2, 4], floats: [1, 0, 0, 0, 0, 0.6, 0.8, 0])]).write(to: promptModel)
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

    func score(_ out: String, _ extra: [String] = []) throws -> CLIRun {
        try CLI.run(["score", binaryModel, "--model", promptModel, "--input-dir", input, "--output-dir", out] + extra)
    }

    func manifestLines(_ out: String) throws -> [[String: Any]] {
        let text = try String(contentsOfFile: out + "/manifest.jsonl", encoding: .utf8)
        return try text.split(separator: "\n").map { try JSONSerialization.jsonObject(with: Data($0.utf8)) as! [String: Any] }
    }

    /// Checks one Parquet score file against the `.npy` output of the same run: argv is
    /// parquet, npy, the JSON list of columns expected, the JSON list of invalid rows, and
    /// the metadata Parquet ("" for none) whose key/url/caption must be carried over.
    static let checkScores = """
        import json, sys
        import numpy as np, pyarrow.parquet as pq, duckdb, polars as pl
        path, npy, columns, invalid, meta = sys.argv[1], sys.argv[2], json.loads(sys.argv[3]), set(json.loads(sys.argv[4])), sys.argv[5]
        ref = np.load(npy)
        t = pq.read_table(path)
        assert t.column_names == columns, (t.column_names, columns)
        assert str(t.schema.field("row").type) == "int64"
        n = len(ref)
        assert t.num_rows == n, (t.num_rows, n)
        d = duckdb.sql("SELECT * FROM read_parquet('%s') ORDER BY \\"row\\"" % path).fetchall()
        p = pl.read_parquet(path)
        assert p.columns == columns and p.height == n
        floats = [c for c in columns if str(t.schema.field(c).type) == "float"]
        assert len(floats) == ref.shape[1], (floats, ref.shape)
        for j, c in enumerate(floats):
            ours = t.column(c).to_pylist()
            pol = p[c].to_list()
            duck = [r[columns.index(c)] for r in d]
            for r in range(n):
                if r in invalid:
                    assert ours[r] is None and pol[r] is None and duck[r] is None, (c, r)
                    assert np.isnan(ref[r, j])
                else:
                    assert ours[r] == float(ref[r, j]) == pol[r] == duck[r], (c, r, ours[r], ref[r, j], pol[r], duck[r])
        for c in columns:
            if "/is_" in c:
                v = t.column(c).to_pylist()
                assert str(t.schema.field(c).type) == "bool"
                assert all((v[r] is None) == (r in invalid) for r in range(n)), c
                assert [x for x in p[c].to_list()] == v and [r[columns.index(c)] for r in d] == v
        cards = json.loads(pq.ParquetFile(path).metadata.metadata[b"clipsafety.models"])
        assert all(len(m["sha256"]) == 64 and m["name"] for m in cards), cards
        if meta:
            m = pq.read_table(meta)
            for k in ("key", "url", "caption"):
                if k in columns:
                    assert t.column(k).to_pylist() == m.column(k).to_pylist() == p[k].to_list(), k
        print(json.dumps({"cards": cards, "is_nsfw": t.column(columns[2]).to_pylist() if len(columns) > 2 else []}))
        """

    func testSingleFileParquetEqualsTheNpyPathWithNullsForInvalidRows() throws {
        var r = rows(9, seed: 4)
        r[5] = [.nan, 0, 0, 0]
        try NpyArray(shape: [9, 4], floats: r.flatMap { $0 }).serialized().write(to: URL(fileURLWithPath: dir.file("x.npy")))
        for out in ["s.parquet", "s.npy"] {
            let run = try CLI.run(["score", binaryModel, dir.file("x.npy"), "-o", dir.file(out), "--allow-invalid-rows"])
            XCTAssertEqual(run.status, 0, run.stderr)
        }
        let out = try PythonEnv.run(Self.checkScores, [dir.file("s.parquet"), dir.file("s.npy"), #"["row","nsfw/nsfw","nsfw/is_nsfw"]"#, "[5]", ""])
        let summary = try JSONSerialization.jsonObject(with: Data(out.utf8)) as! [String: Any]
        let card = (summary["cards"] as! [[String: Any]])[0]
        XCTAssertEqual(card["threshold"] as? Double, 0.5)
        XCTAssertEqual(card["positive_label"] as? String, "nsfw")
        let decisions = summary["is_nsfw"] as! [Any]
        for (i, row) in r.enumerated() where i != 5 {
            XCTAssertEqual(decisions[i] as? Bool, HandBuilt.expectedBinary(row.map(Double.init)) > 0.5, "row \(i)")
        }
        XCTAssertTrue(decisions[5] is NSNull)
    }

    /// clip-retrieval's layout: img_emb/img_emb_{N}.npy beside metadata/metadata_{N}.parquet.
    func writeMetadata(_ n: Int, rows: Int) throws {
        try PythonEnv.run("""
            import sys, pyarrow as pa, pyarrow.parquet as pq
            n, rows = int(sys.argv[2]), int(sys.argv[3])
            t = pa.table({"caption": ["caption %d of %d" % (i, n) if i % 4 else None for i in range(rows)],
                          "url": ["https://example.org/%d/%d.jpg" % (n, i) for i in range(rows)],
                          "key": ["%04d%05d" % (n, i) for i in range(rows)],
                          "width": pa.array([i * 2 for i in range(rows)], pa.int64())})
            pq.write_table(t, "%s/metadata_%d.parquet" % (sys.argv[1], n), compression="snappy")
            """, [dir.file("meta"), String(n), String(rows)])
    }

    func testFolderWithMetadataBecomesOneParquetPerShardThatEveryReaderReads() throws {
        try FileManager.default.createDirectory(atPath: dir.file("meta"), withIntermediateDirectories: true)
        var bad = rows(7, seed: 3)
        bad[2] = [.infinity, 0, 0, 0]
        try writeShard("img_emb_0.npy", rows(5, seed: 1))
        try writeShard("img_emb_1.npy", bad)
        try writeShard("img_emb_2.npy", rows(4, seed: 2))
        try writeMetadata(0, rows: 5)
        try writeMetadata(1, rows: 7)
        try writeMetadata(2, rows: 3)  // disagrees with its shard
        let npy = try score(dir.file("npy"), ["--allow-invalid-rows"])
        XCTAssertEqual(npy.status, 0, npy.stderr)
        let pq = try score(dir.file("pq"), ["--format", "parquet", "--metadata-dir", dir.file("meta"), "--allow-invalid-rows"])
        XCTAssertEqual(pq.status, 65, "the shard whose metadata disagrees fails: \(pq.stderr)")
        XCTAssertTrue(pq.stderr.contains("metadata_2.parquet: has 3 rows, the shard 4"), pq.stderr)
        let manifest = try manifestLines(dir.file("pq"))
        XCTAssertEqual(manifest.map { $0["status"] as? String }, ["done", "done", "failed"])
        XCTAssertEqual(manifest.map { $0["output"] as? String }, ["img_emb_0.parquet", "img_emb_1.parquet", nil])
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir.file("pq/img_emb_2.parquet")))
        let columns = #"["row","nsfw/nsfw","nsfw/is_nsfw","violence/other","violence/violent","violence/label","violence/is_violent","key","url","caption"]"#
        for (n, invalid) in [(0, "[]"), (1, "[2]")] {
            try PythonEnv.run(Self.checkScores, [dir.file("pq/img_emb_\(n).parquet"), dir.file("npy/img_emb_\(n).npy"), columns, invalid,
                                                 dir.file("meta/metadata_\(n).parquet")])
        }
        // The README's two DuckDB joins give the same rows as filtering the scores directly.
        let joins = try PythonEnv.run("""
            import sys, duckdb, pyarrow.parquet as pq, glob
            scores, meta = sys.argv[1], sys.argv[2]
            by_key = duckdb.sql(f""\"SELECT m.url, m.caption, s."nsfw/nsfw"
                FROM read_parquet('{scores}/*.parquet') s JOIN read_parquet('{meta}/*.parquet') m USING (key)
                WHERE s."nsfw/nsfw" < 0.5""\").fetchall()
            by_row = duckdb.sql(f""\"SELECT m.url, m.caption, s."nsfw/nsfw"
                FROM read_parquet('{scores}/img_emb_*.parquet', filename = true) s
                JOIN read_parquet('{meta}/metadata_*.parquet', filename = true, file_row_number = true) m
                  ON regexp_extract(s.filename, '(\\d+)\\.parquet$', 1) = regexp_extract(m.filename, '(\\d+)\\.parquet$', 1)
                 AND s."row" = m.file_row_number
                WHERE s."nsfw/nsfw" < 0.5""\").fetchall()
            direct = sum(1 for f in glob.glob(scores + "/*.parquet") for v in pq.read_table(f).column("nsfw/nsfw").to_pylist() if v is not None and v < 0.5)
            assert sorted(by_key, key=str) == sorted(by_row, key=str) and len(by_key) == direct > 0, (len(by_key), len(by_row), direct)
            print(len(by_key))
            """, [dir.file("pq"), dir.file("meta")])
        XCTAssertFalse(joins.isEmpty)
        // A rerun skips the finished shards; --keep narrows the copied columns.
        let again = try score(dir.file("pq"), ["--format", "parquet", "--metadata-dir", dir.file("meta"), "--allow-invalid-rows"])
        XCTAssertTrue(again.stderr.contains("2 already done, 1 failed"), again.stderr)
        let kept = try score(dir.file("pq2"), ["--format", "parquet", "--metadata-dir", dir.file("meta"), "--keep", "key", "--glob", "img_emb_0.npy"])
        XCTAssertEqual(kept.status, 0, kept.stderr)
        XCTAssertEqual(try ParquetFile(path: dir.file("pq2/img_emb_0.parquet")).leaves.last?.name, "key")
        let missing = try score(dir.file("pq3"), ["--format", "parquet", "--metadata-dir", dir.file("meta"), "--keep", "uid", "--glob", "img_emb_0.npy"])
        XCTAssertEqual(missing.status, 65)
        XCTAssertTrue(missing.stderr.contains("has no column 'uid'"), missing.stderr)
    }

    func testFormatsDoNotMixInOneFolderAndMetadataNeedsParquet() throws {
        try writeShard("a.npy", rows(3, seed: 1))
        XCTAssertEqual(try score(dir.file("o")).status, 0)
        let mixed = try score(dir.file("o"), ["--format", "parquet"])
        XCTAssertEqual(mixed.status, 65, mixed.stderr)
        XCTAssertTrue(mixed.stderr.contains("as parquet"), mixed.stderr)
        XCTAssertEqual(try score(dir.file("p"), ["--metadata-dir", dir.file("meta")]).status, 64)
        XCTAssertEqual(try score(dir.file("p"), ["--format", "csv"]).status, 64)
    }

    func testSelectKeepsRowsBelowTheThresholdAndNeverNullOnes() throws {
        try FileManager.default.createDirectory(atPath: dir.file("meta"), withIntermediateDirectories: true)
        var r = rows(40, seed: 9)
        r[7] = [.nan, 0, 0, 0]
        try writeShard("img_emb_0.npy", r)
        try writeMetadata(0, rows: 40)
        XCTAssertEqual(try score(dir.file("pq"), ["--format", "parquet", "--metadata-dir", dir.file("meta"), "--allow-invalid-rows"]).status, 0)
        let scores = r.map { HandBuilt.expectedBinary($0.map(Double.init)) }
        let run = try CLI.run(["select", dir.file("pq"), "--where", "nsfw/nsfw < 0.5 and violence/is_violent = false",
                               "-o", dir.file("kept.parquet"), "--dropped", dir.file("dropped.parquet")])
        XCTAssertEqual(run.status, 0, run.stderr)
        let file = try ParquetFile(path: dir.file("pq/img_emb_0.parquet"))
        guard case .boolean(let violent) = try file.readColumn("violence/is_violent").values else { return XCTFail() }
        let expected = (0..<40).filter { $0 != 7 && scores[$0] < 0.5 && !violent[$0] }
        let kept = try ParquetFile(path: dir.file("kept.parquet"))
        XCTAssertEqual(kept.leaves.map(\.name), ["shard", "row", "key", "url"])
        XCTAssertEqual(try kept.readColumn("row").values, .int64(expected.map(Int64.init)))
        XCTAssertEqual((0..<kept.rowCount).map { try? kept.readColumn("key").string(at: $0) }, expected.map { String(format: "%04d%05d", 0, $0) })
        let dropped = try PythonEnv.run("""
            import sys, duckdb
            print(duckdb.sql("SELECT reason, count(*) FROM read_parquet('%s') GROUP BY reason ORDER BY reason" % sys.argv[1]).fetchall())
            """, [dir.file("dropped.parquet")])
        XCTAssertTrue(dropped.contains("('null', 1)"), dropped)
        XCTAssertTrue(dropped.contains("('where', \(39 - expected.count))"), dropped)

        // --keep-fraction: the lowest half by nsfw among all 40 rows (the null row counts but is never kept).
        let half = try CLI.run(["select", dir.file("pq/img_emb_0.parquet"), "--keep-fraction", "0.5", "--by", "nsfw/nsfw", "-o", dir.file("half.parquet")])
        XCTAssertEqual(half.status, 0, half.stderr)
        let lowest = (0..<40).filter { $0 != 7 }.sorted { scores[$0] < scores[$1] }.prefix(20).sorted()
        XCTAssertEqual(try ParquetFile(path: dir.file("half.parquet")).readColumn("row").values, .int64(lowest.map(Int64.init)))
        XCTAssertEqual(try CLI.run(["select", dir.file("pq"), "--where", "nsfw/nsfw <", "-o", dir.file("x.parquet")]).status, 64)
        XCTAssertEqual(try CLI.run(["select", dir.file("pq"), "--where", "nope < 1", "-o", dir.file("x.parquet")]).status, 65)
    }
}
