import Converters
import Foundation
import Inspect
import Runtime
import TestSupport
import XCTest

/// `inspect` on files clipsafety does not convert, written by the real libraries
/// (tools/make_inspect_fixtures.py: torch, Keras 3, TensorFlow, h5py, safetensors), checked
/// against what those libraries said about them (Tests/Fixtures/inspect/expected.json).
final class AnyFileInspectTests: XCTestCase {
    static let folder = Fixtures.repoRoot + "/Tests/Fixtures/inspect/"

    func fixture(_ name: String) -> String { Self.folder + name }

    func inspect(_ name: String, stats: Bool = false) throws -> InspectReport {
        try FileSummary.inspect(path: fixture(name), options: .init(tensors: stats))
    }

    func expected() throws -> [String: Any] {
        let data = try Data(contentsOf: URL(fileURLWithPath: fixture("expected.json")))
        return try XCTUnwrap(try JSONSerialization.jsonObject(with: data) as? [String: Any])
    }

    func testTorchCNNZipAndLegacyDescribeTheSameTensors() throws {
        let zip = try inspect("torch_cnn.pth"), legacy = try inspect("torch_cnn_legacy.pth")
        XCTAssertEqual(zip.format.id, "torch-zip")
        XCTAssertEqual(legacy.format.id, "torch-legacy")
        XCTAssertNil(zip.model)
        XCTAssertEqual(zip.tensors, legacy.tensors)
        let torchSays = try XCTUnwrap((try expected()["torch_cnn"] as? [String: Any])?["tensors"] as? [String: [String: Any]])
        XCTAssertEqual(Set(zip.tensors?.map(\.name) ?? []), Set(torchSays.keys))
        for t in zip.tensors ?? [] {
            XCTAssertEqual(t.shape, torchSays[t.name]?["shape"] as? [Int], t.name)
        }
        XCTAssertEqual(zip.tensors?.first { $0.name == "bn.num_batches_tracked" }?.dtype, "I64")
        XCTAssertEqual(zip.structure?.tensorGroups.map(\.prefix), ["conv", "bn", "fc"])
        XCTAssertEqual(zip.structure?.tensorGroups.map(\.elements), [112, 17, 10])
        XCTAssertEqual(zip.structure?.totals.elements, (try expected()["torch_cnn"] as? [String: Any])?["elements"] as? Int)
        XCTAssertNil(zip.structure?.suggestedArch, "conv weights are no chain of linears")
        XCTAssertTrue(zip.modelProblem?.contains("not a chain of linear layers") ?? false, zip.modelProblem ?? "nil")
        XCTAssertFalse(zip.modelProblem?.contains("--arch '") ?? true, "no spec that cannot work is suggested")
    }

    func testTrainingCheckpointShowsValuesAndNestedStateDict() throws {
        let r = try inspect("torch_checkpoint.pth")
        let values = Dictionary(uniqueKeysWithValues: (r.structure?.metadata ?? []).map { ($0.key, $0.value) })
        XCTAssertEqual(values["epoch"], "7")
        XCTAssertEqual(values["best_loss"], "0.25")
        XCTAssertEqual(values["optimizer.param_groups.0.lr"], "0.001")
        XCTAssertEqual(values["optimizer.param_groups.0.betas"], "(0.9, 0.999)")
        XCTAssertEqual(r.structure?.suggestedArch, "linear:state_dict.0,linear:state_dict.2")
        XCTAssertTrue(r.tensors?.contains { $0.name == "optimizer.state.0.exp_avg" } ?? false)
    }

    /// `--arch` reaches a head nested in a checkpoint, and torch's own outputs are reproduced.
    func testNestedHeadConvertsWithArchAndMatchesTorch() throws {
        let model = try convert("torch_checkpoint.pth", arch: "linear:state_dict.0,relu,linear:state_dict.2")
        XCTAssertEqual(model.card.task, .unknown, "meaning is never guessed")
        try assertReproduces(model, input: "checkpoint_input.npy", output: "checkpoint_output.npy")
    }

    func testRootLevelLinearHeadConverts() throws {
        let r = try inspect("linear_head.pth")
        XCTAssertEqual(r.structure?.suggestedArch, "linear")
        let model = try convert("linear_head.pth", arch: try XCTUnwrap(r.structure?.suggestedArch))
        try assertReproduces(model, input: "linear_input.npy", output: "linear_output.npy")
    }

    /// The improved-aesthetic-predictor layout (Linear and Dropout only): the suggestion alone
    /// converts it exactly.
    func testMLPWithDropoutsConvertsFromSuggestion() throws {
        let r = try inspect("mlp_head.pth")
        let spec = try XCTUnwrap(r.structure?.suggestedArch)
        XCTAssertEqual(spec, "linear:0,linear:2,linear:4,linear:6,linear:7")
        try assertReproduces(try convert("mlp_head.pth", arch: spec), input: "linear_input.npy", output: "mlp_output.npy")
    }

    func testKerasModelsOfAnyLayerCountParamsAsKeras() throws {
        for (file, key) in [("keras_conv.keras", "keras_conv"), ("keras_conv.h5", "keras_conv"), ("keras_lstm.keras", "keras_lstm"),
                            ("keras_nested.keras", "keras_nested"), ("keras_nested.h5", "keras_nested")] {
            let r = try inspect(file)
            let keras = try XCTUnwrap(try expected()[key] as? [String: Any])
            XCTAssertNil(r.model, file)
            XCTAssertNotNil(r.modelProblem, file)
            XCTAssertEqual(r.structure?.totalParameters, keras["count_params"] as? Int, file)
            for layer in keras["layers"] as? [[Any]] ?? [] {
                let name = layer[0] as? String
                let row = r.structure?.layers.first { $0.name == name }
                XCTAssertEqual(row?.className, layer[1] as? String, "\(file) \(name ?? "")")
                XCTAssertEqual(row?.parameters, layer[2] as? Int, "\(file) \(name ?? "")")
            }
        }
        let lstm = try inspect("keras_lstm.keras")
        XCTAssertEqual(lstm.structure?.layers.first { $0.name == "lstm" }?.inbound, ["embedding"])
        // A nested model's weights sit under its own `layers` group in model.weights.h5.
        let nested = try inspect("keras_nested.keras")
        XCTAssertEqual((nested.tensors ?? []).map(\.name).filter { $0.hasPrefix("layers/sequential/") },
                       ["layers/sequential/layers/dense/vars/0", "layers/sequential/layers/dense/vars/1",
                        "layers/sequential/layers/dense_1/vars/0", "layers/sequential/layers/dense_1/vars/1"])
        XCTAssertTrue(nested.modelProblem?.contains("nested model") ?? false, nested.modelProblem ?? "")
    }

    func testPlainHDF5ShowsItsTree() throws {
        let r = try inspect("plain_data.h5")
        XCTAssertEqual(r.format.id, "hdf5")
        let objects = Dictionary(uniqueKeysWithValues: (r.structure?.objects ?? []).map { ($0.path, $0) })
        XCTAssertEqual(Set(objects.keys), ["/", "/data", "/data/emb", "/data/ids", "/empty"])
        let emb = try XCTUnwrap(objects["/data/emb"])
        XCTAssertEqual(emb.kind, "dataset")
        XCTAssertEqual(emb.dtype, "F32")
        XCTAssertEqual(emb.shape, [6, 4])
        XCTAssertEqual(emb.chunks, [3, 4])
        XCTAssertEqual(emb.filters, ["deflate"])
        XCTAssertEqual(emb.attributes.first?.value, "0.5")
        XCTAssertEqual(objects["/"]?.attributes.first?.value, "embeddings")
        XCTAssertEqual(objects["/data/ids"]?.dtype, "I64")
    }

    func testSafetensorsOfAnyDTypeAreNamed() throws {
        let r = try inspect("hf_bf16.safetensors")
        XCTAssertEqual(Set(r.tensors?.map(\.dtype) ?? []), ["BF16", "F16", "I64"])
        XCTAssertEqual(r.structure?.totals.bytes, 8 + 6 + 24)
    }

    /// The text page is a table a person reads at 100 columns, whatever the file.
    func testEveryFixturesTextFitsOneHundredColumns() throws {
        let files = try FileManager.default.contentsOfDirectory(atPath: Self.folder).filter { !$0.hasSuffix(".json") }
        for file in files {
            let text = InspectText.render(try inspect(file, stats: true))
            let wide = text.split(separator: "\n").filter { $0.count > 100 }
            XCTAssertEqual(wide, [], file)
        }
    }

    func testEveryFixtureValidatesAgainstTheSchema() throws {
        let schema = try JSONSchema.documented("clipsafety-inspect/2")
        let files = try FileManager.default.contentsOfDirectory(atPath: Self.folder).filter { !$0.hasSuffix(".json") && !$0.hasSuffix(".zip") }
        XCTAssertGreaterThan(files.count, 10)
        for file in files {
            let json = try JSONSerialization.jsonObject(with: Data(try inspect(file, stats: true).json().utf8))
            XCTAssertEqual(schema.violations(of: json), [], file)
        }
    }

    /// A large `.npy` is described from its header: its values are not read, so the element
    /// limit (which guards reads) does not refuse it.
    func testLargeNpyIsDescribedFromItsHeader() throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let rows = 200_000, cols = 768
        var header = "{'descr': '<f2', 'fortran_order': False, 'shape': (\(rows), \(cols)), }"
        while (10 + header.utf8.count + 1) % 64 != 0 { header += " " }
        header += "\n"
        var bytes = Data([0x93, 0x4E, 0x55, 0x4D, 0x50, 0x59, 1, 0])
        bytes.append(contentsOf: [UInt8(header.utf8.count & 0xFF), UInt8(header.utf8.count >> 8)])
        bytes.append(Data(header.utf8))
        let path = dir.file("shard.npy")
        FileManager.default.createFile(atPath: path, contents: bytes)
        let handle = try XCTUnwrap(FileHandle(forWritingAtPath: path))
        try handle.truncate(atOffset: UInt64(bytes.count + rows * cols * 2))  // sparse: zeros
        try handle.close()
        var limits = ReaderLimits()
        limits.maxTensorElements = 1 << 20
        let r = try FileSummary.inspect(path: path, options: .init(limits: limits))
        XCTAssertEqual(r.tensors?.first?.shape, [rows, cols])
        XCTAssertEqual(r.tensors?.first?.bytes, rows * cols * 2)
        XCTAssertNil(r.tensors?.first?.stats)
    }

    // MARK: Helpers

    func convert(_ name: String, arch: String) throws -> NativeModel {
        let bytes = try Data(contentsOf: URL(fileURLWithPath: fixture(name)))
        return try ModelLoader.convert(bytes: bytes, options: ConversionOptions(fileName: name, arch: arch)).model
    }

    func assertReproduces(_ model: NativeModel, input: String, output: String, file: StaticString = #filePath, line: UInt = #line) throws {
        let x = try NpyArray(bytes: try Data(contentsOf: URL(fileURLWithPath: fixture(input))))
        let y = try NpyArray(bytes: try Data(contentsOf: URL(fileURLWithPath: fixture(output))))
        let result = try Scorer(model: model).score(x.floatValues(), rows: x.shape[0])
        let want = y.floatValues()
        XCTAssertEqual(result.scores.count, want.count, file: file, line: line)
        for (a, b) in zip(result.scores, want) { XCTAssertEqual(a, b, accuracy: 1e-6, file: file, line: line) }
    }
}
