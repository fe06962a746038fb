import Core
import Foundation
@testable import Parquet
import TestSupport
import XCTest

/// The Parquet writer and reader against each other, against hostile bytes, and against the
/// real readers and writers (pyarrow, DuckDB, polars) of the test venv.
final class ParquetTests: XCTestCase {
    var dir: TemporaryDirectory!

    override func setUpWithError() throws { dir = try TemporaryDirectory() }
    override func tearDown() { dir.remove() }

    static let fields = [
        ParquetField(name: "row", type: .int64),
        ParquetField(name: "m/nsfw", type: .float, isOptional: true),
        ParquetField(name: "m/is_nsfw", type: .boolean, isOptional: true),
        ParquetField(name: "caption", type: .byteArray, isString: true, isOptional: true),
        ParquetField(name: "d", type: .double),
        ParquetField(name: "i", type: .int32),
    ]

    /// `n` rows starting at `first`: every 7th row null in the optional columns.
    static func batch(_ first: Int, _ n: Int) -> [ParquetColumn] {
        let rows = Array(first..<(first + n))
        let valid = rows.map { $0 % 7 != 3 }
        return [
            ParquetColumn(.int64(rows.map(Int64.init))),
            // Null rows hold the placeholders the reader gives them (0, false, empty).
            ParquetColumn(.float(rows.map { $0 % 7 == 3 ? 0 : Float(sin(Double($0))) }), valid: valid),
            ParquetColumn(.boolean(rows.map { $0 % 7 != 3 && sin(Double($0)) > 0.5 }), valid: valid),
            ParquetColumn(.byteArray(rows.map { $0 % 7 == 3 ? Data() : Data("caption \($0) é, \"q\"".utf8) }), valid: valid),
            ParquetColumn(.double(rows.map { Double($0) / 3 })),
            ParquetColumn(.int32(rows.map { Int32($0) - 100 })),
        ]
    }

    /// A file of `rows` rows written in batches of `batch`, row groups of `group`.
    func writeFile(rows: Int, batch: Int, group: Int) throws -> Data {
        let sink = DataSink()
        let w = try ParquetWriter(fields: Self.fields, keyValues: [("clipsafety.models", "[{\"name\":\"m\"}]")], sink: sink, rowGroupRows: group)
        var first = 0
        while first < rows {
            let n = min(batch, rows - first)
            try w.append(Self.batch(first, n))
            first += n
        }
        try w.finish()
        return sink.data
    }

    func testWrittenFileReadsBackValueForValueAcrossRowGroupsAndPages() throws {
        let data = try writeFile(rows: 300_000, batch: 40_000, group: 65_536)
        let file = try ParquetFile(data: data)
        XCTAssertEqual(file.rowCount, 300_000)
        XCTAssertGreaterThan(file.rowGroups.count, 3)
        XCTAssertEqual(file.leaves.map(\.field), Self.fields)
        XCTAssertEqual(file.keyValues.first?.key, "clipsafety.models")
        let expected = Self.batch(0, 300_000)
        for (f, e) in zip(Self.fields, expected) {
            XCTAssertEqual(try file.readColumn(f.name), e, f.name)
        }
        // Streaming in odd-sized pieces gives the same rows.
        let reader = try file.columnReader("caption")
        var parts = ParquetColumn(.byteArray([]))
        var done = 0
        while done < 300_000 {
            let n = min(12_345, 300_000 - done)
            parts.append(try reader.read(n))
            done += n
        }
        XCTAssertEqual(parts, expected[3])
        XCTAssertThrowsError(try reader.read(1))
    }

    func testSameRowsGiveTheSameBytes() throws {
        XCTAssertEqual(try writeFile(rows: 1000, batch: 100, group: 300), try writeFile(rows: 1000, batch: 100, group: 300))
    }

    func testEmptyFileHasSchemaAndNoRows() throws {
        let file = try ParquetFile(data: try writeFile(rows: 0, batch: 1, group: 10))
        XCTAssertEqual(file.rowCount, 0)
        XCTAssertEqual(try file.readColumn("m/nsfw").count, 0)
    }

    func testRLEHybridRoundTripsMixedRunsAndWidths() throws {
        for width in [1, 3, 8, 13, 32] {
            let mask: UInt64 = width == 32 ? 0xffff_ffff : (1 << UInt64(width)) - 1
            var values: [UInt32] = Array(repeating: 1, count: 37) + (0..<29).map { UInt32(UInt64($0 * 2_654_435_761) & mask) }
            values += Array(repeating: UInt32(mask), count: 16) + [0, 1, 0]
            var cursor = ByteCursor(RLEHybrid.encode(values, width: width))
            XCTAssertEqual(try RLEHybrid.decode(&cursor, width: width, count: values.count), values, "width \(width)")
        }
    }

    func testRLEDecoderMatchesTheSpecExample() throws {
        // Encodings.md: 0…7 with bit width 3, bit-packed, is 0x88 0xC6 0xFA.
        var cursor = ByteCursor(Data([0x03, 0x88, 0xC6, 0xFA]))
        XCTAssertEqual(try RLEHybrid.decode(&cursor, width: 3, count: 8), Array(0...7))
    }

    // MARK: hostile files

    func testHostileFootersAreRefusedWithoutCrashing() throws {
        let good = try writeFile(rows: 50, batch: 50, group: 50)
        func footerLength(_ d: Data) -> Int { Int(d[d.count - 8]) | Int(d[d.count - 7]) << 8 | Int(d[d.count - 6]) << 16 | Int(d[d.count - 5]) << 24 }
        var cases: [String: Data] = [:]
        cases["short"] = Data("PAR1PAR1".utf8)
        cases["no tail magic"] = good.prefix(good.count - 1)
        var huge = good
        huge.replaceSubrange((huge.count - 8)..<(huge.count - 4), with: [0xff, 0xff, 0xff, 0x7f])
        cases["footer longer than file"] = huge
        // Every truncation and every single-byte change of the footer.
        let length = footerLength(good)
        let footerStart = good.count - 8 - length
        for cut in stride(from: footerStart, to: good.count - 8, by: 7) {
            var d = good.prefix(cut)
            d.append(good.suffix(8))
            cases["cut at \(cut)"] = Data(d)
        }
        for i in stride(from: footerStart, to: good.count - 8, by: 3) {
            for v: UInt8 in [0x00, 0xff, 0x19, 0xf9] {
                var d = good
                d[i] = v
                cases["byte \(i) = \(v)"] = d
            }
        }
        for (name, data) in cases {
            do {
                let f = try ParquetFile(data: data)
                for leaf in f.leaves where leaf.isFlat { _ = try? f.readColumn(leaf.name) }
            } catch is ClipSafetyError {
            } catch {
                XCTFail("\(name): not a ClipSafetyError: \(error)")
            }
        }
    }

    /// A footer built by hand: `schema` elements under a root of `rootChildren` children.
    func fileWithSchema(_ schema: [SchemaElement], rows: Int64 = 0) -> Data {
        let meta = FileMetaData(version: 1, schema: schema, numRows: rows, rowGroups: [], keyValues: [])
        var d = Data("PAR1".utf8)
        let footer = meta.encode()
        d.append(footer)
        withUnsafeBytes(of: UInt32(footer.count).littleEndian) { d.append(contentsOf: $0) }
        d.append(Data("PAR1".utf8))
        return d
    }

    func testSchemaWhoseChildCountsDoNotAddUpIsRefused() {
        let leaf = SchemaElement(type: .int64, repetition: .required, name: "a")
        for (name, schema) in [
            "root claims more": [SchemaElement(name: "schema", numChildren: 3), leaf],
            "root claims fewer": [SchemaElement(name: "schema", numChildren: 1), leaf, leaf],
            "group claims more": [SchemaElement(name: "schema", numChildren: 1), SchemaElement(repetition: .optional, name: "g", numChildren: 5), leaf],
            "negative": [SchemaElement(name: "schema", numChildren: -1), leaf],
        ] {
            XCTAssertThrowsError(try ParquetFile(data: fileWithSchema(schema)), name) { e in
                XCTAssertEqual((e as? ClipSafetyError)?.kind, .malformed, "\(name): \(e)")
            }
        }
    }

    func testDeepSchemaStopsAtTheDepthLimit() {
        var schema = [SchemaElement(name: "schema", numChildren: 1)]
        for i in 0..<500 { schema.append(SchemaElement(repetition: .optional, name: "g\(i)", numChildren: 1)) }
        schema.append(SchemaElement(type: .int64, repetition: .optional, name: "leaf"))
        XCTAssertThrowsError(try ParquetFile(data: fileWithSchema(schema))) { e in
            XCTAssertEqual((e as? ClipSafetyError)?.kind, .limitExceeded, "\(e)")
        }
    }

    func testNestedColumnsAreListedButNotRead() throws {
        let schema = [SchemaElement(name: "schema", numChildren: 2), SchemaElement(type: .int64, repetition: .required, name: "a"),
                      SchemaElement(repetition: .repeated, name: "tags", numChildren: 1), SchemaElement(type: .byteArray, repetition: .required, name: "t")]
        let file = try ParquetFile(data: fileWithSchema(schema))
        XCTAssertEqual(file.leaves.map(\.name), ["a", "tags.t"])
        XCTAssertThrowsError(try file.columnReader("tags.t")) { e in XCTAssertEqual((e as? ClipSafetyError)?.kind, .unsupported) }
    }

    func testDeeplyNestedThriftIsStoppedAtTheDepthLimit() {
        // Field 10 (unknown to FileMetaData) holding structs within structs.
        var footer = Data([0xac])  // field 10, a struct
        for _ in 0..<1000 { footer.append(0x1c) }  // field 1 of each, a struct
        footer.append(contentsOf: Array(repeating: 0, count: 1002))
        var d = Data("PAR1".utf8)
        d.append(footer)
        withUnsafeBytes(of: UInt32(footer.count).littleEndian) { d.append(contentsOf: $0) }
        d.append(Data("PAR1".utf8))
        XCTAssertThrowsError(try ParquetFile(data: d)) { e in XCTAssertEqual((e as? ClipSafetyError)?.kind, .limitExceeded, "\(e)") }
    }

    func testHugeDeclaredPageIsCheckedBeforeAllocating() throws {
        var limits = ReaderLimits()
        limits.maxUncompressedBytes = 1000
        let data = try writeFile(rows: 2000, batch: 2000, group: 2000)
        let file = try ParquetFile(data: data, limits: limits)
        XCTAssertThrowsError(try file.readColumn("caption")) { e in XCTAssertEqual((e as? ClipSafetyError)?.kind, .limitExceeded, "\(e)") }
    }

    // MARK: interop with the real readers and writers

    func testPyarrowDuckDBAndPolarsReadWhatWeWrite() throws {
        let path = dir.file("ours.parquet")
        try writeFile(rows: 70_000, batch: 9_000, group: 20_000).write(to: URL(fileURLWithPath: path))
        let out = try PythonEnv.run(Self.readAllThree, [path])
        let expected = Self.batch(0, 70_000)
        let summary = try JSONSerialization.jsonObject(with: Data(out.utf8)) as! [String: Any]
        XCTAssertEqual(summary["schema"] as? String, "row:int64,m/nsfw:float,m/is_nsfw:bool,caption:string,d:double,i:int32", out)
        XCTAssertEqual(summary["rows"] as? Int, 70_000)
        XCTAssertEqual(summary["metadata"] as? String, "[{\"name\":\"m\"}]")
        XCTAssertEqual(summary["row_groups"] as? Int, 3, "groups close at the first batch that reaches 20 000 rows")
        XCTAssertEqual(summary["agree"] as? Bool, true, out)
        let nsfw = summary["nsfw"] as! [Any]
        guard case .float(let floats) = expected[1].values else { return XCTFail() }
        for r in 0..<70_000 {
            if r % 7 == 3 { XCTAssertTrue(nsfw[r] is NSNull, "row \(r)") } else { XCTAssertEqual((nsfw[r] as? Double).map(Float.init), floats[r], "row \(r)") }
        }
        XCTAssertEqual(summary["null_counts"] as? [Int], [0, 10_000, 10_000, 10_000, 0, 0])
        XCTAssertEqual(summary["caption_5"] as? String, "caption 5 é, \"q\"")
        XCTAssertEqual(summary["stats_row"] as? [Int], [0, 69_999])
    }

    /// pyarrow, DuckDB and polars each read the file; prints what they agree on as JSON.
    static let readAllThree = """
        import json, sys
        import pyarrow.parquet as pq, duckdb, polars as pl
        path = sys.argv[1]
        pf = pq.ParquetFile(path)
        t = pf.read()
        schema = ",".join("%s:%s" % (f.name, f.type) for f in t.schema)
        md = pf.metadata
        stats = md.row_group(0).column(0).statistics
        nulls = [sum(md.row_group(g).column(c).statistics.null_count for g in range(md.num_row_groups)) for c in range(md.num_columns)]
        rg_stats = [md.row_group(g).column(0).statistics for g in range(md.num_row_groups)]
        py = t.to_pylist()
        duck = duckdb.sql("SELECT * FROM read_parquet('%s') ORDER BY \\"row\\"" % path.replace("'", "''")).fetchall()
        pol = pl.read_parquet(path).rows()
        def same(a, b):
            return all(x == y or (x != x and y != y) for x, y in zip(a, b))
        agree = len(py) == len(duck) == len(pol) and all(same(tuple(p.values()), d) and same(tuple(p.values()), q) for p, d, q in zip(py, duck, pol))
        print(json.dumps({"schema": schema, "rows": t.num_rows, "metadata": md.metadata[b"clipsafety.models"].decode(),
                          "row_groups": md.num_row_groups, "agree": agree, "nsfw": t.column("m/nsfw").to_pylist(),
                          "null_counts": nulls, "caption_5": py[5]["caption"],
                          "stats_row": [min(s.min for s in rg_stats), max(s.max for s in rg_stats)]}))
        """

    func testWeReadWhatPyarrowWritesValueForValue() throws {
        let folder = dir.file("py")
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        let listing = try PythonEnv.run(Self.pyarrowWrites, [folder])
        let cases = try JSONSerialization.jsonObject(with: Data(listing.utf8)) as! [[String: Any]]
        XCTAssertEqual(cases.count, 8)
        let empty = try ParquetFile(path: folder + "/empty.parquet")
        XCTAssertEqual(empty.rowCount, 0, "pyarrow's chunks of no rows have only a dictionary page and data_page_offset 0")
        XCTAssertEqual(try empty.readColumn("caption").count, 0)
        for c in cases {
            let path = c["path"] as! String
            let expected = c["columns"] as! [String: [Any]]
            let file = try ParquetFile(path: path)
            XCTAssertEqual(file.rowCount, c["rows"] as? Int, path)
            for (name, values) in expected {
                let column = try file.readColumn(name)
                XCTAssertEqual(column.count, values.count, "\(path) \(name)")
                for (r, v) in values.enumerated() {
                    let label = "\((path as NSString).lastPathComponent) \(name) row \(r)"
                    if v is NSNull { XCTAssertTrue(column.isNull(r), label); continue }
                    XCTAssertFalse(column.isNull(r), label)
                    switch column.values {
                    case .byteArray: XCTAssertEqual(column.string(at: r), v as? String, label)
                    case .boolean(let b): XCTAssertEqual(b[r], v as? Bool, label)
                    case .float(let f): XCTAssertEqual(f[r], (v as? String).flatMap(Double.init).map(Float.init), label)
                    case .double(let d): XCTAssertEqual(d[r], (v as? String).flatMap(Double.init), label)
                    default: XCTAssertEqual(column.values.number(at: r), (v as? NSNumber)?.doubleValue, label)
                    }
                    if r > 3000 { break }
                }
            }
        }
    }

    /// pyarrow writes the kinds of files a metadata folder holds; prints their paths and values.
    static let pyarrowWrites = """
        import json, os, sys
        import pyarrow as pa, pyarrow.parquet as pq
        out = sys.argv[1]
        n = 5000
        words = ["cat", "dog", None, "a longer caption, with commas", "ünïcode"]
        cols = {
            "key": ["%09d" % i for i in range(n)],
            "url": ["https://example.org/%d.jpg" % (i % 977) for i in range(n)],
            "caption": [words[i % 5] for i in range(n)],
            "width": pa.array([None if i % 11 == 0 else i * 3 for i in range(n)], pa.int64()),
            "small": pa.array([i % 100 - 50 for i in range(n)], pa.int32()),
            "similarity": pa.array([i / 7.0 for i in range(n)], pa.float64()),
            "punsafe": pa.array([None if i % 13 == 0 else (i % 101) / 100.0 for i in range(n)], pa.float32()),
            "ok": pa.array([None if i % 17 == 0 else i % 3 == 0 for i in range(n)], pa.bool_()),
        }
        t = pa.table(cols)
        pq.write_table(t.slice(0, 0), os.path.join(out, "empty.parquet"))
        cases = [
            ("default.parquet", {}),
            ("snappy_v1.parquet", dict(compression="snappy", data_page_version="1.0")),
            ("zstd_v2.parquet", dict(compression="zstd", data_page_version="2.0")),
            ("plain.parquet", dict(use_dictionary=False, compression="none")),
            ("dictionary_v2_snappy.parquet", dict(use_dictionary=True, compression="snappy", data_page_version="2.0")),
            ("small_pages.parquet", dict(data_page_size=512, row_group_size=1234, compression="zstd")),
            ("no_stats_gzip_free.parquet", dict(write_statistics=False, compression="none", data_page_version="2.0")),
            ("plain_v2_zstd.parquet", dict(use_dictionary=False, compression="zstd", data_page_version="2.0")),
        ]
        listing = []
        for name, opts in cases:
            path = os.path.join(out, name)
            pq.write_table(t, path, **opts)
            # Floats as hex text: exact, whatever the JSON parser does with decimals.
            exact = lambda v: v.hex() if isinstance(v, float) else v
            listing.append({"path": path, "rows": n, "columns": {k: [exact(v) for v in t.column(k).to_pylist()] for k in cols}})
        print(json.dumps(listing))
        """

    func testOtherEncodingsAndCodecsAreRefusedByName() throws {
        let folder = dir.file("py")
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        try PythonEnv.run("""
            import sys, pyarrow as pa, pyarrow.parquet as pq
            t = pa.table({"x": pa.array(range(1000), pa.int64())})
            pq.write_table(t, sys.argv[1] + "/delta.parquet", use_dictionary=False, column_encoding={"x": "DELTA_BINARY_PACKED"})
            pq.write_table(t, sys.argv[1] + "/gzip.parquet", compression="gzip")
            """, [folder])
        XCTAssertThrowsError(try ParquetFile(path: folder + "/delta.parquet").readColumn("x")) { e in
            XCTAssertEqual((e as? ClipSafetyError)?.kind, .unsupported)
            XCTAssertTrue("\(e)".contains("DELTA_BINARY_PACKED"), "\(e)")
        }
        XCTAssertThrowsError(try ParquetFile(path: folder + "/gzip.parquet").readColumn("x")) { e in
            XCTAssertEqual((e as? ClipSafetyError)?.kind, .unsupported)
            XCTAssertTrue("\(e)".contains("gzip"), "\(e)")
        }
    }
}
