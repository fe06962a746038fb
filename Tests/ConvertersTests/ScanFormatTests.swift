@testable import Converters
import Foundation
import Runtime
import TestSupport
import XCTest

/// `scan` of Keras configs, HDF5 links and storage, and SavedModel graphs: hand-made hostile
/// files are unsafe and say what and where; the same files without the hostile part are safe.
final class ScanFormatTests: XCTestCase {
    let dense = TestLayer.dense("dense", inputs: 4, units: 2)

    func unsafe(_ s: FileScan) -> [ScanFinding] { s.findings.filter { !$0.allowed } }

    /// A Keras 3 functional config of one Dense layer, with `extra` layer entries appended.
    func config(adding extra: [[String: Any]]) -> [String: Any] {
        var cfg = KerasFixture.config([dense], width: 4)
        var inner = cfg["config"] as! [String: Any]
        inner["layers"] = (inner["layers"] as! [[String: Any]]) + extra
        cfg["config"] = inner
        return cfg
    }

    func keras(_ cfg: [String: Any], edit: (HDF5TestWriter) throws -> Void = { _ in }) throws -> FileScan {
        let bytes = try KerasFixture.kerasArchive(config: cfg, weights: try KerasFixture.weightsH5([dense], edit: edit))
        return ModelScanner.scan(bytes: bytes, path: "model.keras")
    }

    func testPlainKerasFilesAreSafe() throws {
        let v3 = try keras(KerasFixture.config([dense], width: 4))
        XCTAssertEqual(v3.format, "keras-v3")
        XCTAssertEqual(v3.verdict, .safe, "\(v3.findings) \(v3.problem ?? "")")
        let h5 = ModelScanner.scan(bytes: try KerasFixture.legacyH5([dense], width: 4, style: .keras2Functional), path: "m.h5")
        XCTAssertEqual(h5.format, "keras-h5")
        XCTAssertEqual(h5.verdict, .safe, "\(h5.findings) \(h5.problem ?? "")")
    }

    func testKeras3LambdaModuleRegisteredAndTFSMLayer() throws {
        let code = Data(repeating: 0xE3, count: 300).base64EncodedString()
        let lambda: [String: Any] = ["module": "keras.layers", "class_name": "Lambda", "registered_name": NSNull(),
                                     "config": ["name": "evil", "function": ["class_name": "__lambda__", "config": ["code": code]]]]
        let module: [String: Any] = ["module": "os", "class_name": "system", "config": ["name": "sys"]]
        let custom: [String: Any] = ["module": "keras.layers", "class_name": "Dense", "registered_name": "Custom>Evil", "config": ["name": "c"]]
        let tfsm: [String: Any] = ["module": "keras.layers", "class_name": "TFSMLayer", "config": ["name": "t", "filepath": "/tmp/other_model"]]
        let s = try keras(config(adding: [lambda, module, custom, tfsm]))
        XCTAssertEqual(s.verdict, .unsafe)
        let found = unsafe(s)
        let l = try XCTUnwrap(found.first { $0.kind == .lambda && $0.target == "Lambda layer 'evil'" })
        XCTAssertEqual(l.detail, "marshalled Python bytecode, 300 bytes")
        XCTAssertTrue(l.locations.first?.part?.hasPrefix("config.json: config.layers[2]") == true, "\(l.locations)")
        XCTAssertTrue(found.contains { $0.kind == .moduleReference && $0.target == "os.system" })
        XCTAssertTrue(found.contains { $0.kind == .customObject && $0.target == "Custom>Evil" })
        XCTAssertTrue(found.contains { $0.kind == .layer && $0.detail?.contains("/tmp/other_model") == true })
    }

    func testKeras2H5LambdaAndCustomClass() throws {
        var cfg = KerasFixture.config([dense], width: 4, style: .keras2Functional)
        var inner = cfg["config"] as! [String: Any]
        let code = Data(repeating: 0x63, count: 120).base64EncodedString()
        inner["layers"] = (inner["layers"] as! [[String: Any]]) + [
            ["class_name": "Lambda", "name": "lam", "config": ["name": "lam", "function": [code, NSNull(), NSNull()], "function_type": "lambda"]],
            ["class_name": "MyLayer", "name": "mine", "config": ["name": "mine"]],
        ]
        cfg["config"] = inner
        let s = ModelScanner.scan(bytes: try KerasFixture.legacyH5([dense], width: 4, style: .keras2Functional, config: cfg), path: "m.h5")
        XCTAssertEqual(s.verdict, .unsafe)
        XCTAssertTrue(unsafe(s).contains { $0.kind == .lambda && $0.detail == "marshalled Python bytecode, 120 bytes" })
        XCTAssertTrue(unsafe(s).contains { $0.kind == .customObject && $0.target == "MyLayer" })
        XCTAssertTrue(s.findings.allSatisfy { $0.locations.allSatisfy { $0.part?.hasPrefix("attribute model_config") == true } })
    }

    func testHDF5LinksOutOfTheFileAreListedAllTogether() throws {
        let bytes = try KerasFixture.legacyH5([dense], width: 4) { w in
            try w.externalLink(file: "/etc/secrets.h5", object: "/data", at: "/model_weights/elsewhere")
            try w.softLink(to: "/model_weights/dense", at: "/alias")
            try w.virtualFloats("/virtual", shape: [2], file: "other.h5", source: "/x")
            try w.externalFloats("/raw", shape: [4], file: "/dev/zero")
        }
        let s = ModelScanner.scan(bytes: bytes, path: "m.h5")
        XCTAssertEqual(s.verdict, .unsafe, s.problem ?? "")
        let kinds = Set(unsafe(s).map(\.kind))
        XCTAssertEqual(kinds, [.externalLink, .softLink, .virtualDataset, .externalStorage])
        XCTAssertTrue(unsafe(s).contains { $0.kind == .externalStorage && $0.locations.first?.part == "/raw" })
        XCTAssertTrue(unsafe(s).contains { $0.target == "/etc/secrets.h5:/data" }, "\(unsafe(s))")
        XCTAssertTrue(s.notes.contains { $0.contains("model_config not read") })
        // The same walk without survey mode still refuses the first.
        XCTAssertThrowsError(try HDF5Preflight.check(image: bytes, limits: .init()))
    }

    func testKerasWeightsFileWithAnExternalLinkIsUnsafe() throws {
        let s = try keras(KerasFixture.config([dense], width: 4)) { w in
            try w.externalLink(file: "other.h5", object: "/w", at: "/layers/dense/ext")
        }
        XCTAssertEqual(s.verdict, .unsafe)
        XCTAssertEqual(unsafe(s).first?.locations.first?.part, "model.weights.h5: /layers/dense/ext")
    }

    /// A SavedModel whose graph reads a file, whose function calls Python and restores a
    /// checkpoint from a fixed path, and also restores from its argument (allowed).
    func hostileSavedModel() throws -> Data {
        func node(_ name: String, _ op: String, _ inputs: [String] = []) -> Tensorflow_NodeDef {
            var n = Tensorflow_NodeDef()
            n.name = name
            n.op = op
            n.input = inputs
            return n
        }
        var meta = Tensorflow_MetaGraphDef()
        meta.graphDef.node = [node("path", "Const"), node("read", "ReadFile", ["path"]), node("x", "Placeholder"), node("y", "Relu", ["x"])]
        var f = Tensorflow_FunctionDef()
        f.signature.name = "__inference_restore_1"
        var arg = Tensorflow_OpDef.ArgDef()
        arg.name = "file_prefix"
        f.signature.inputArg = [arg]
        f.nodeDef = [node("fixed", "Const"), node("restore_fixed", "RestoreV2", ["fixed:output:0"]),
                     node("join", "StringJoin", ["file_prefix"]), node("restore_own", "RestoreV2", ["join:output:0"]),
                     node("py", "EagerPyFunc", [])]
        meta.graphDef.library.function = [f]
        var model = Tensorflow_SavedModel()
        model.metaGraphs = [meta]
        return try model.serializedData()
    }

    func testSavedModelOpsTouchingTheOutsideWorld() throws {
        let s = ModelScanner.scan(bytes: try hostileSavedModel(), path: "dir/saved_model.pb")
        XCTAssertEqual(s.format, "savedmodel-pb")
        XCTAssertEqual(s.verdict, .unsafe)
        let bad = unsafe(s)
        XCTAssertEqual(Set(bad.map(\.target)), ["ReadFile", "RestoreV2", "EagerPyFunc"])
        XCTAssertTrue(bad.contains { $0.target == "ReadFile" && $0.locations.first?.part == "saved_model.pb: meta graph 0: node read" })
        XCTAssertTrue(bad.contains { $0.target == "RestoreV2" && $0.locations.first?.part?.contains("restore_fixed") == true })
        XCTAssertTrue(s.findings.contains { $0.target == "RestoreV2" && $0.allowed && $0.locations.first?.part?.contains("restore_own") == true })
    }

    func testSavedModelFolderIsOneUnitAndItsAssetsAreScanned() throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let folder = dir.file("model")
        try FileManager.default.createDirectory(atPath: folder + "/variables", withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: folder + "/assets", withIntermediateDirectories: true)
        _ = try dir.write(try hostileSavedModel(), to: "model/saved_model.pb")
        _ = try dir.write(Data([0x80, 0x02, 0x99, 0x99]), to: "model/variables/variables.data-00000-of-00001")
        _ = try dir.write(Data(P.osSystem), to: "model/assets/vocab.pkl")
        try FileManager.default.createSymbolicLink(atPath: folder + "/assets/passwd", withDestinationPath: "/etc/passwd")
        let results = ModelScanner.scan(paths: [dir.path])
        XCTAssertEqual(results.count, 1)
        let s = try XCTUnwrap(results.first)
        XCTAssertEqual(s.format, "savedmodel-folder")
        XCTAssertTrue(unsafe(s).contains { $0.target == "os.system" && $0.locations.first?.part == "assets/vocab.pkl" })
        XCTAssertTrue(unsafe(s).contains { $0.kind == .symlink && $0.target == "/etc/passwd" })
        XCTAssertNil(s.problem)
    }

    func testFoldersReportSymlinksWithoutFollowingThem() throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        _ = try dir.write(Data(P.proto(2) + P.none + P.stop), to: "ok.pkl")
        try FileManager.default.createSymbolicLink(atPath: dir.file("inside.pkl"), withDestinationPath: "ok.pkl")
        try FileManager.default.createSymbolicLink(atPath: dir.file("outside"), withDestinationPath: "/etc")
        let results = ModelScanner.scan(paths: [dir.path])
        XCTAssertEqual(results.map { ($0.path as NSString).lastPathComponent }, ["inside.pkl", "ok.pkl", "outside"])
        XCTAssertEqual(results.map(\.verdict), [.safe, .safe, .unsafe])
        XCTAssertEqual(results[2].findings.first?.kind, .symlink)
        XCTAssertEqual(ScanSummary(files: results).exitStatus, .verificationFailed)
        // A FIFO is not opened (opening it would wait for a writer): unreadable, at once.
        XCTAssertEqual(mkfifo(dir.file("pipe"), 0o600), 0)
        let withPipe = ModelScanner.scan(paths: [dir.path])
        XCTAssertEqual(withPipe.last?.verdict, .unreadable)
        XCTAssertEqual(ScanSummary(files: withPipe).exitStatus, .dataError)
    }

    func testNumPyObjectArraysAreUnsafeAndTheirPickleIsRead() throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        try PythonEnv.run("""
            import sys, numpy as np
            a = np.array([{"label": "x"}, None], dtype=object)
            np.save(sys.argv[1] + "/objects.npy", a, allow_pickle=True)
            np.savez(sys.argv[1] + "/objects.npz", ok=np.ones(2), objects=a)
            """, [dir.path])
        for name in ["objects.npy", "objects.npz"] {
            let s = ModelScanner.scan(file: dir.file(name))
            XCTAssertEqual(s.verdict, .unsafe, name)
            XCTAssertTrue(unsafe(s).contains { $0.kind == .objectArray }, "\(name): \(s.findings)")
            // NumPy pickles the array itself: its reconstruct function is a global outside the allowlist.
            XCTAssertTrue(unsafe(s).contains { $0.kind == .importGlobal && $0.target.hasSuffix("multiarray._reconstruct") }, "\(name): \(s.findings)")
            XCTAssertNil(s.problem, name)
        }
    }

    func testSymlinkMembersOfAZipAreUnsafe() throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        try PythonEnv.run("""
            import sys, zipfile
            with zipfile.ZipFile(sys.argv[1], "w") as z:
                info = zipfile.ZipInfo("model/link")
                info.external_attr = (0o120777 << 16)
                info.create_system = 3
                z.writestr(info, "/etc/passwd")
                z.writestr("C:\\\\evil.pkl", b"\\x80\\x02N.")
            """, [dir.file("links.zip")])
        let s = ModelScanner.scan(file: dir.file("links.zip"))
        XCTAssertEqual(s.verdict, .unsafe)
        XCTAssertTrue(unsafe(s).contains { $0.kind == .symlink && $0.detail == "symbolic link to '/etc/passwd'" }, "\(s.findings)")
        XCTAssertTrue(unsafe(s).contains { $0.kind == .memberName && $0.target.hasPrefix("C:") }, "\(s.findings)")
    }
}
