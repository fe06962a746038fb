import Converters
import Foundation
import Inspect
import Runtime
import TestSupport
import XCTest

/// SavedModels described whatever wrote them: Keras 3's `model.export` (no keras_metadata.pb;
/// Tests/Fixtures/inspect/keras3_export.zip, checked against what TensorFlow says about it in
/// expected.json), LAION's autokeras zips (op histograms counted by TensorFlow's own protos),
/// and SavedModel folders (the same members as a zip, links refused).
final class SavedModelInspectTests: XCTestCase {
    static let keras3 = AnyFileInspectTests.folder + "keras3_export.zip"

    var dir: TemporaryDirectory!
    override func setUpWithError() throws { dir = try TemporaryDirectory() }
    override func tearDown() { dir.remove() }

    func tensorFlowSays() throws -> [String: Any] {
        let data = try Data(contentsOf: URL(fileURLWithPath: AnyFileInspectTests.folder + "expected.json"))
        let all = try XCTUnwrap(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        return try XCTUnwrap(all["keras3_export"] as? [String: Any])
    }

    /// Extracts a zip's members under `name/` in the temporary folder; returns the folder that
    /// holds `saved_model.pb`.
    func unzip(_ zipPath: String, as name: String) throws -> String {
        let zip = try ZipArchive(bytes: try Data(contentsOf: URL(fileURLWithPath: zipPath)))
        var root: String?
        for entry in zip.entries where !entry.name.hasSuffix("/") {
            let path = dir.file(name + "/" + entry.name)
            try FileManager.default.createDirectory(atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
            try zip.read(entry).write(to: URL(fileURLWithPath: path))
            if entry.name.hasSuffix("saved_model.pb") { root = (path as NSString).deletingLastPathComponent }
        }
        return try XCTUnwrap(root)
    }

    func assertRefused(_ kinds: [ClipSafetyError.Kind], _ fragment: String, file: StaticString = #filePath, line: UInt = #line,
                       _ body: () throws -> Void) {
        XCTAssertThrowsError(try body(), file: file, line: line) { error in
            guard let e = error as? ClipSafetyError else { return XCTFail("not a ClipSafetyError: \(error)", file: file, line: line) }
            XCTAssertTrue(kinds.contains(e.kind), "\(e.kind): \(e.message)", file: file, line: line)
            XCTAssertEqual(e.exitCode.rawValue, 65, file: file, line: line)
            XCTAssertTrue(e.message.contains(fragment), e.message, file: file, line: line)
        }
    }

    // MARK: - Keras 3 export (no keras_metadata.pb)

    func testKeras3ExportHasEverySignatureTensorFlowLists() throws {
        let report = try FileSummary.inspect(path: Self.keras3)
        XCTAssertEqual(report.format.id, "savedmodel-zip")
        let signatures = try XCTUnwrap(report.structure?.signatures)
        let tf = try XCTUnwrap(try tensorFlowSays()["signatures"] as? [String: [String: Any]])
        XCTAssertEqual(signatures.map(\.key), ["serving_default", "serve"])
        XCTAssertEqual(Set(signatures.map(\.key)), Set(tf.keys))
        func ports(_ list: Any?) throws -> [ServingSignature.Port] {
            try XCTUnwrap(list as? [[String: Any]]).map { p in
                let dims = p["shape"] as? [Int]
                return ServingSignature.Port(name: try XCTUnwrap(p["name"] as? String), tensor: try XCTUnwrap(p["tensor"] as? String),
                                             dtype: try XCTUnwrap(p["dtype"] as? String), shape: dims.map { $0.map { $0 < 0 ? nil : $0 } })
            }
        }
        for s in signatures {
            let said = try XCTUnwrap(tf[s.key])
            XCTAssertEqual(s.inputs, try ports(said["inputs"]), s.key)
            XCTAssertEqual(s.outputs, try ports(said["outputs"]), s.key)
            XCTAssertEqual(s.method, said["method"] as? String, s.key)
            XCTAssertEqual(s.input, s.inputs.first)
        }
        XCTAssertEqual(signatures.first?.input.shape, [nil, 6])
    }

    func testKeras3ExportListsTheCheckpointVariablesTensorFlowLists() throws {
        let report = try FileSummary.inspect(path: Self.keras3)
        let tensors = try XCTUnwrap(report.tensors)
        let tf = try XCTUnwrap(try tensorFlowSays()["variables"] as? [String: [String: Any]])
        XCTAssertEqual(tensors.map(\.name).sorted(), tf.keys.sorted())
        let dtypeNames = ["float32": "F32", "string": "string"]
        for t in tensors {
            XCTAssertEqual(t.shape, tf[t.name]?["shape"] as? [Int], t.name)
            XCTAssertEqual(t.dtype, (tf[t.name]?["dtype"] as? String).flatMap { dtypeNames[$0] }, t.name)
            XCTAssertNil(t.stats, "no data read without --stats")
        }
        // Dense(6→3) + Dense(3→1): the 25 parameters Keras counts, stored twice in the checkpoint.
        let variables = tensors.filter { $0.name.hasPrefix("variables/") }
        XCTAssertEqual(variables.reduce(0) { $0 + $1.shape.reduce(1, *) }, try tensorFlowSays()["count_params"] as? Int)
        XCTAssertEqual(report.structure?.tensorGroups.map(\.prefix), ["", "_all_variables", "variables"])
        XCTAssertEqual(report.structure?.layers.count, 0)
        XCTAssertNil(report.structure?.suggestedArch)
    }

    func testKeras3ExportOpHistogramIsTensorFlowsCount() throws {
        let ops = try XCTUnwrap(try FileSummary.inspect(path: Self.keras3).structure?.ops)
        let tf = try XCTUnwrap(try tensorFlowSays()["ops"] as? [String: Int])
        XCTAssertEqual(Dictionary(uniqueKeysWithValues: ops.map { ($0.op, $0.count) }), tf)
        XCTAssertEqual(ops.reduce(0) { $0 + $1.count }, try tensorFlowSays()["graph_nodes"] as? Int)
        XCTAssertEqual(ops.first?.op, "Identity")
        // Most frequent first, ties by name.
        for (a, b) in zip(ops, ops.dropFirst()) { XCTAssertTrue(a.count > b.count || (a.count == b.count && a.op < b.op), "\(a) before \(b)") }
    }

    func testKeras3ExportIsRefusedByConvertSayingWhyAndNamingItsSignatures() throws {
        let report = try FileSummary.inspect(path: Self.keras3)
        XCTAssertNil(report.model)
        let problem = try XCTUnwrap(report.modelProblem)
        XCTAssertTrue(problem.contains("without keras_metadata.pb"), problem)
        XCTAssertTrue(problem.contains("serving_default (keras_tensor_10: float32 (N, 6) → output_0: float32 (N, 1))"), problem)
        assertRefused([.unsupported], "serve (keras_tensor_10") {
            _ = try ModelLoader.convert(path: Self.keras3, options: ConversionOptions(fileName: "keras3_export.zip"))
        }
    }

    func testVariablesAreReadAndVerifiedOnlyForStatistics() throws {
        let folder = try unzip(Self.keras3, as: "k3")
        let withStats = try FileSummary.inspect(path: folder, options: .init(tensors: true))
        let kernel = try XCTUnwrap(withStats.tensors?.first { $0.name == "variables/0/.ATTRIBUTES/VARIABLE_VALUE" })
        XCTAssertEqual(kernel.stats?.count, 18)
        // Corrupt every byte of the data shard: the header-level description still stands;
        // statistics verify each tensor's checksum before using its bytes.
        let shard = folder + "/variables/variables.data-00000-of-00001"
        let bytes = try Data(contentsOf: URL(fileURLWithPath: shard))
        try Data(bytes.map { $0 ^ 0x5A }).write(to: URL(fileURLWithPath: shard))
        let headers = try FileSummary.inspect(path: folder)
        XCTAssertEqual(headers.tensors?.count, 9)
        assertRefused([.malformed], "is corrupt") { _ = try FileSummary.inspect(path: folder, options: .init(tensors: true)) }
    }

    func testKeras3ExportFolderIsDescribedLikeItsZip() throws {
        let folder = try unzip(Self.keras3, as: "k3")
        let fromFolder = try FileSummary.inspect(path: folder), fromZip = try FileSummary.inspect(path: Self.keras3)
        XCTAssertEqual(fromFolder.format.id, "savedmodel-folder")
        XCTAssertEqual(fromFolder.tensors, fromZip.tensors)
        XCTAssertEqual(fromFolder.structure?.signatures, fromZip.structure?.signatures)
        XCTAssertEqual(fromFolder.structure?.ops, fromZip.structure?.ops)
        XCTAssertEqual(fromFolder.modelProblem, fromZip.modelProblem)
        // The members read (fingerprint.pb is not one of them), and their digest.
        let members = ["saved_model.pb", "variables/variables.data-00000-of-00001", "variables/variables.index"]
        var lines = ""
        var total = 0
        for m in members {
            let data = try Data(contentsOf: URL(fileURLWithPath: folder + "/" + m))
            lines += "\(sha256Hex(data))  \(m)\n"
            total += data.count
        }
        XCTAssertEqual(fromFolder.file.bytes, total)
        XCTAssertEqual(fromFolder.file.sha256, sha256Hex(Data(lines.utf8)))
    }

    // MARK: - Op histograms of the catalog's autokeras zips

    /// Counts TensorFlow 2.21's protos give for the served MetaGraph (main graph + every
    /// function body of the library), measured with tools/make_inspect_fixtures.py's method.
    static let autokeras: [(file: String, nodes: Int, counts: [String: Int])] = [
        ("clip_autokeras_nsfw_b32.zip", 62 + 11_410,
         ["IsNan": 3563, "MatMul": 15, "BiasAdd": 15, "Relu": 10, "Sigmoid": 5, "LookupTableFindV2": 24, "AsString": 21, "Placeholder": 2]),
        ("clip_autokeras_binary_nsfw.zip", 84 + 16_985,
         ["IsNan": 5341, "MatMul": 20, "BiasAdd": 20, "Relu": 15, "Sigmoid": 5, "LookupTableFindV2": 40, "AsString": 35, "Placeholder": 2]),
    ]

    func testAutokerasOpHistogramsCountGraphAndFunctions() throws {
        for known in Self.autokeras {
            let report = try FileSummary.inspect(path: try Fixtures.modelFile(known.file))
            let ops = try XCTUnwrap(report.structure?.ops)
            let counts = Dictionary(uniqueKeysWithValues: ops.map { ($0.op, $0.count) })
            for (op, n) in known.counts { XCTAssertEqual(counts[op], n, "\(known.file) \(op)") }
            XCTAssertEqual(ops.reduce(0) { $0 + $1.count }, known.nodes, known.file)
            XCTAssertEqual(report.structure?.signatures.map(\.key), ["serving_default"], known.file)
            XCTAssertEqual(report.structure?.signatures.first, report.model?.signature, known.file)
            XCTAssertFalse(report.structure?.layers.isEmpty ?? true, "Keras layers still come from keras_metadata.pb")
        }
    }

    // MARK: - SavedModel folders

    func testUnzippedCatalogFolderConvertsToTheSameGraphAndTensorsAsTheZip() throws {
        let zipPath = try Fixtures.modelFile("clip_autokeras_nsfw_b32.zip")
        let folder = try unzip(zipPath, as: "b32")
        let fromZip = try ModelLoader.convert(path: zipPath, options: ConversionOptions(fileName: zipPath))
        let fromFolder = try ModelLoader.convert(path: folder, options: ConversionOptions(fileName: folder))
        XCTAssertEqual(fromFolder.kind, .savedModelFolder)
        XCTAssertEqual(fromFolder.model.graph, fromZip.model.graph)
        XCTAssertEqual(fromFolder.model.tensors, fromZip.model.tensors)
        XCTAssertEqual(fromFolder.details?.layers, fromZip.details?.layers)
        XCTAssertEqual(fromFolder.model.source.sourceFormat, "savedmodel-folder")
        // The tensor bytes of the written native files are the same; only card and provenance
        // (the folder is no catalog file by its checksum) differ.
        let a = dir.file("zip.safetensors"), b = dir.file("folder.safetensors")
        try fromZip.model.write(to: a)
        try fromFolder.model.write(to: b)
        let zipTensors = try NativeModel(bytes: try Data(contentsOf: URL(fileURLWithPath: a))).tensors
        XCTAssertEqual(try NativeModel(bytes: try Data(contentsOf: URL(fileURLWithPath: b))).tensors, zipTensors)
        XCTAssertEqual(fromFolder.model.card.task, .unknown, "a folder is not identified by the zip's checksum")

        let report = try FileSummary.inspect(path: folder)
        XCTAssertEqual(report.format.id, "savedmodel-folder")
        XCTAssertTrue(report.format.convertedInMemory)
        XCTAssertEqual(report.model?.layers.count, try FileSummary.inspect(path: zipPath).model?.layers.count)
    }

    func testASymbolicLinkMemberIsRefusedWhereverItPoints() throws {
        let outside = try dir.write(Data("outside".utf8), to: "secret.bin")
        for member in ["variables/variables.data-00000-of-00001", "saved_model.pb", "variables/variables.index"] {
            let folder = try unzip(Self.keras3, as: "link-\(member.count)")
            let path = folder + "/" + member
            try FileManager.default.removeItem(atPath: path)
            try FileManager.default.createSymbolicLink(atPath: path, withDestinationPath: outside)
            assertRefused([.unsafe], "'\(member)' is a symbolic link") { _ = try FileSummary.inspect(path: folder) }
            assertRefused([.unsafe], "links in a SavedModel folder are not followed") {
                _ = try ModelLoader.convert(path: folder, options: ConversionOptions(fileName: folder))
            }
        }
        // The variables folder itself a link to a copy elsewhere.
        let folder = try unzip(Self.keras3, as: "linked-variables")
        try FileManager.default.moveItem(atPath: folder + "/variables", toPath: dir.file("elsewhere"))
        try FileManager.default.createSymbolicLink(atPath: folder + "/variables", withDestinationPath: dir.file("elsewhere"))
        assertRefused([.unsafe], "'variables' is a symbolic link") { _ = try FileSummary.inspect(path: folder) }
    }

    func testFolderMembersStayWithinTheLimits() throws {
        let folder = try unzip(Self.keras3, as: "k3")
        var small = ReaderLimits()
        small.maxFileBytes = 20_000  // saved_model.pb is 33 KB
        assertRefused([.limitExceeded], "saved_model.pb") { _ = try FileSummary.inspect(path: folder, options: .init(limits: small)) }
        var total = ReaderLimits()
        total.maxUncompressedBytes = 34_000  // every member fits, not all of them
        assertRefused([.limitExceeded], "--max-uncompressed-bytes") { _ = try SavedModelFolder(path: folder, limits: total) }
    }

    func testAFolderWithoutSavedModelIsRefused() throws {
        let empty = dir.file("empty")
        try FileManager.default.createDirectory(atPath: empty, withIntermediateDirectories: true)
        assertRefused([.unsupported], "no saved_model.pb") { _ = try FileSummary.inspect(path: empty) }
        let folder = try unzip(Self.keras3, as: "k3")
        try FileManager.default.removeItem(atPath: folder + "/variables/variables.index")
        assertRefused([.malformed], "missing variables/variables.index") { _ = try FileSummary.inspect(path: folder) }
    }

    // MARK: - Schema and text

    func testReportsMatchTheDocumentedSchema() throws {
        let schema = try JSONSchema.documented("clipsafety-inspect/2")
        let paths = [Self.keras3, try unzip(Self.keras3, as: "k3"), try unzip(try Fixtures.modelFile("clip_autokeras_nsfw_b32.zip"), as: "b32")]
        for path in paths {
            let json = try FileSummary.inspect(path: path, options: .init(tensors: true)).json()
            let value = try JSONSerialization.jsonObject(with: Data(json.utf8))
            XCTAssertEqual(schema.violations(of: value), [], path)
            let ops = ((value as? [String: Any])?["structure"] as? [String: Any])?["ops"] as? [[String: Any]]
            XCTAssertEqual(ops?.isEmpty, false, path)
        }
    }

    func testTextShowsSignaturesAndTopOpsWithin80Columns() throws {
        let text = InspectText.render(try FileSummary.inspect(path: Self.keras3))
        XCTAssertTrue(text.contains("Signatures (2)\n  serving_default (tensorflow/serving/predict)\n    in keras_tensor_10: float32 (N, 6)"), text)
        XCTAssertTrue(text.contains("Graph ops (133 nodes, 22 op types)\n  Identity×31, ReadVariableOp×28, AssignVariableOp×12"), text)
        XCTAssertTrue(text.contains("… 6 more op types"), text)
        XCTAssertTrue(text.split(separator: "\n").allSatisfy { $0.count <= 80 }, text)
    }
}
