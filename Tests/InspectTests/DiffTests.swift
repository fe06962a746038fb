import Converters
import Foundation
import Inspect
import Runtime
import TestSupport
import XCTest

/// `diff`: one test per kind of difference on safetensors files written here, then the real
/// pairs the issue names (a torch zip and its legacy twin, a catalog source and its native
/// conversion, a native file and its ONNX export, a Keras `.h5` and its `.keras`).
final class DiffTests: XCTestCase {
    var dir: TemporaryDirectory!

    override func setUpWithError() throws { dir = try TemporaryDirectory() }
    override func tearDown() { dir.remove() }

    /// A plain safetensors file of `tensors`.
    func file(_ name: String, _ tensors: [Tensor]) throws -> String {
        try dir.write(try SafetensorsFile(metadata: [:], tensors: tensors).serialized(), to: name)
    }

    func f32(_ name: String, _ shape: [Int], _ values: [Float]) -> Tensor { Tensor(name: name, shape: shape, floats: values) }

    func diff(_ a: [Tensor], _ b: [Tensor], atol: Double = 0) throws -> DiffReport {
        try ModelDiff.diff(try file("a.safetensors", a), try file("b.safetensors", b), options: .init(atol: atol))
    }

    func schemaViolations(_ r: DiffReport) throws -> [String] {
        try JSONSchema.documented("clipsafety-diff/1").violations(of: try JSONSerialization.jsonObject(with: Data(try r.json().utf8)))
    }

    static let inspectFolder = Fixtures.repoRoot + "/Tests/Fixtures/inspect/"

    // MARK: one kind of difference each

    func testIdenticalFilesAreIdentical() throws {
        let t = [f32("w", [2, 2], [1, 2, 3, 4]), Tensor(name: "n", shape: [1], int64s: [7])]
        let r = try diff(t, t)
        XCTAssertTrue(r.identical)
        XCTAssertEqual(r.matching.method, .names)
        XCTAssertEqual(r.summary.matched, 2)
        XCTAssertEqual(r.summary.identical, 2)
        XCTAssertEqual(r.tensors.first?.maxAbsDiff, 0)
        XCTAssertNil(r.tensors.first?.worstIndex)
        XCTAssertEqual(try schemaViolations(r), [])
    }

    func testATensorOnlyInA() throws {
        let r = try diff([f32("w", [2], [1, 2]), f32("extra", [3], [0, 0, 0])], [f32("w", [2], [1, 2])])
        XCTAssertFalse(r.identical)
        XCTAssertEqual(r.onlyInA, [.init(name: "extra", dtype: "F32", shape: [3])])
        XCTAssertEqual(r.onlyInB, [])
        XCTAssertEqual(r.summary.identical, 1)
        XCTAssertTrue(DiffText.render(r).contains("Only in A (1)"))
        XCTAssertEqual(try schemaViolations(r), [])
    }

    func testATensorOnlyInB() throws {
        let r = try diff([f32("w", [2], [1, 2])], [f32("w", [2], [1, 2]), Tensor(name: "step", shape: [], int64s: [3])])
        XCTAssertFalse(r.identical)
        XCTAssertEqual(r.onlyInA, [])
        XCTAssertEqual(r.onlyInB, [.init(name: "step", dtype: "I64", shape: [])])
        XCTAssertTrue(DiffText.render(r).contains("Only in B (1)"))
    }

    func testADtypeChangeIsADifferenceEvenWithEqualValues() throws {
        let f64 = try Tensor(name: "w", dtype: .f64, shape: [2], data: Data([1.5, -2.0].flatMap { withUnsafeBytes(of: $0.bitPattern.littleEndian, Array.init) }))
        let r = try diff([f32("w", [2], [1.5, -2])], [f64])
        let t = try XCTUnwrap(r.tensors.first)
        XCTAssertTrue(t.dtypeChanged)
        XCTAssertFalse(t.shapeChanged)
        XCTAssertTrue(t.compared, "same element count: values compared as float64")
        XCTAssertEqual(t.maxAbsDiff, 0)
        XCTAssertEqual(t.beyondAtol, 0)
        XCTAssertFalse(t.identical)
        XCTAssertFalse(r.identical)
        XCTAssertEqual(r.summary.dtypeChanged, 1)
        XCTAssertTrue(DiffText.render(r).contains("F32 [2]  F64 [2]"), DiffText.render(r))
    }

    func testAShapeChange() throws {
        // Same element count: reported as a shape change, values still compared in row-major order.
        let same = try diff([f32("w", [2, 3], [0, 1, 2, 3, 4, 5])], [f32("w", [3, 2], [0, 1, 2, 3, 4, 5])])
        XCTAssertEqual(same.tensors.first?.shapeChanged, true)
        XCTAssertEqual(same.tensors.first?.compared, true)
        XCTAssertFalse(same.identical)
        // Another element count: not compared, and said why.
        let other = try diff([f32("w", [4], [0, 1, 2, 3])], [f32("w", [5], [0, 1, 2, 3, 4])])
        let t = try XCTUnwrap(other.tensors.first)
        XCTAssertTrue(t.shapeChanged)
        XCTAssertFalse(t.compared)
        XCTAssertNil(t.elements)
        XCTAssertNil(t.maxAbsDiff)
        XCTAssertEqual(t.note, "element counts differ: values not compared")
        XCTAssertEqual(other.summary.shapeChanged, 1)
        XCTAssertEqual(try schemaViolations(other), [])
    }

    func testValuesBeyondAtol() throws {
        let a = f32("w", [2, 3], [0, 1, 2, 3, 4, 5])
        let b = f32("w", [2, 3], [0, 1.125, 2, 3, 4, 5.5])
        let r = try diff([a], [b])
        let t = try XCTUnwrap(r.tensors.first)
        XCTAssertFalse(r.identical)
        XCTAssertEqual(t.maxAbsDiff, 0.5)
        XCTAssertEqual(t.maxRelDiff ?? 0, 0.125 / 1.125, accuracy: 1e-15, "the largest relative Δ is at [0, 1], not at the largest |Δ|")
        XCTAssertEqual(t.worstIndex, [1, 2])
        XCTAssertEqual(t.worstA, 5)
        XCTAssertEqual(t.worstB, 5.5)
        XCTAssertEqual(t.beyondAtol, 2)
        XCTAssertEqual(t.elements, 6)
        XCTAssertEqual(r.summary.valuesDiffer, 1)
        // 0.125 is within 0.2; 0.5 is not.
        let loose = try diff([a], [b], atol: 0.2)
        XCTAssertEqual(loose.tensors.first?.beyondAtol, 1)
        XCTAssertFalse(loose.identical)
        let text = DiffText.render(r)
        XCTAssertTrue(text.contains("Values beyond tolerance (1)"), text)
        XCTAssertTrue(text.contains("[1, 2]"), text)
        XCTAssertTrue(text.contains("2 of 6"), text)
        XCTAssertEqual(try schemaViolations(r), [])
    }

    func testValuesWithinAtolAreIdentical() throws {
        let r = try diff([f32("w", [3], [1, 2, 3])], [f32("w", [3], [1, 2.25, 3])], atol: 0.25)
        XCTAssertTrue(r.identical, "|Δ| = atol is within")
        XCTAssertEqual(r.tensors.first?.maxAbsDiff, 0.25, "the largest difference is still reported")
        XCTAssertEqual(r.tensors.first?.beyondAtol, 0)
        XCTAssertTrue(DiffText.render(r).hasSuffix("identical within --atol 0.25 (exit 0)"))
    }

    func testNaNAgainstNaNIsEqualAndNaNAgainstANumberIsNot() throws {
        let nanOnly = try diff([f32("w", [2], [.nan, 1])], [f32("w", [2], [.nan, 1])])
        XCTAssertTrue(nanOnly.identical)
        let r = try diff([f32("w", [3], [.nan, 1, 2])], [f32("w", [3], [.nan, .nan, 2.5])], atol: 1)
        let t = try XCTUnwrap(r.tensors.first)
        XCTAssertEqual(t.nanMismatches, 1)
        XCTAssertEqual(t.beyondAtol, 1, "a NaN mismatch is beyond any tolerance; 0.5 is within 1")
        XCTAssertEqual(t.worstIndex, [1], "the NaN mismatch is the worst element")
        XCTAssertEqual(t.worstA, 1)
        XCTAssertEqual(t.worstB?.isNaN, true)
        XCTAssertEqual(t.maxAbsDiff, 0.5)
        XCTAssertFalse(r.identical)
        XCTAssertEqual(try schemaViolations(r), [], "NaN is written as null")
        XCTAssertTrue(DiffText.render(r).contains("1 elements NaN on one side only"))
    }

    func testInfinitiesAndSignedZeros() throws {
        let r = try diff([f32("w", [3], [.infinity, 0, -.infinity])], [f32("w", [3], [.infinity, -0.0, .infinity])])
        let t = try XCTUnwrap(r.tensors.first)
        XCTAssertEqual(t.beyondAtol, 1, "equal infinities and ±0 are equal; −inf against +inf is not")
        XCTAssertEqual(t.worstIndex, [2])
        XCTAssertEqual(t.maxAbsDiff, .infinity)
        XCTAssertEqual(try schemaViolations(r), [], "infinite differences are written as null")
    }

    func testIntegerAndHalfPrecisionTensorsAreComparedAsFloat64() throws {
        let bf16 = try Tensor(name: "h", dtype: .bf16, shape: [2], data: Data([0x80, 0x3F, 0x00, 0xC0]))  // 1.0, −2.0
        let r = try diff([Tensor(name: "i", shape: [3], int64s: [1, 2, 3]), f32("h", [2], [1, -2])],
                         [Tensor(name: "i", shape: [3], int64s: [1, 2, 1 << 40]), bf16])
        let i = try XCTUnwrap(r.tensors.first { $0.name == "i" })
        XCTAssertEqual(i.maxAbsDiff, Double(1 << 40) - 3)
        XCTAssertEqual(i.worstIndex, [2])
        let h = try XCTUnwrap(r.tensors.first { $0.name == "h" })
        XCTAssertEqual(h.maxAbsDiff, 0)
        XCTAssertEqual(h.dtypeB, "BF16")
        XCTAssertTrue(h.dtypeChanged)
    }

    func testValuesAreStreamedPastOneBlock() throws {
        // Several blocks of 4096 elements, the difference in the last, partial one.
        let n = 17 * 725  // 12 325: three whole blocks and a part
        var values = (0..<n).map { Float($0) }
        let a = f32("w", [n / 17, 17], values)
        values[n - 2] += 3
        let r = try diff([a], [f32("w", [n / 17, 17], values)])
        XCTAssertEqual(r.tensors.first?.worstIndex, [(n - 2) / 17, (n - 2) % 17])
        XCTAssertEqual(r.tensors.first?.beyondAtol, 1)
    }

    func testMultiIndex() {
        XCTAssertEqual(ValueDiff.multiIndex(5, shape: [2, 3]), [1, 2])
        XCTAssertEqual(ValueDiff.multiIndex(0, shape: []), [])
        XCTAssertEqual(ValueDiff.multiIndex(23, shape: [2, 3, 4]), [1, 2, 3])
    }

    func testLayersAndSignaturesAddedRemovedAndChanged() throws {
        func port(_ name: String, _ dtype: String) -> ServingSignature.Port { .init(name: name, tensor: name, dtype: dtype, shape: [nil, 4]) }
        var a = FileDescription(format: .kerasH5, layers: [
            DescribedLayer(name: "input", className: "InputLayer"), DescribedLayer(name: "d1", className: "Dense", inbound: ["input"]),
            DescribedLayer(name: "d2", className: "Dense", inbound: ["d1"]),
        ])
        a.signatures = [ServingSignature(key: "serving_default", input: port("x", "float32"), output: port("y", "float32")),
                        ServingSignature(key: "old", input: port("x", "float32"), output: port("z", "float32"))]
        var b = FileDescription(format: .kerasV3, layers: [
            DescribedLayer(name: "input", className: "InputLayer"), DescribedLayer(name: "d1", className: "Conv2D", inbound: ["input"]),
            DescribedLayer(name: "d3", className: "Dense", inbound: ["d1"]),
        ])
        b.signatures = [ServingSignature(key: "serving_default", input: port("x", "float64"), output: port("y", "float32"))]
        let r = try ModelDiff.diff(.init(path: "a.h5", description: a), .init(path: "b.keras", description: b))
        let layers = try XCTUnwrap(r.layers)
        XCTAssertEqual(layers.onlyInA.map(\.name), ["d2"])
        XCTAssertEqual(layers.onlyInB.map(\.name), ["d3"])
        XCTAssertEqual(layers.changed.map(\.name), ["d1"])
        XCTAssertEqual(layers.changed.first?.classB, "Conv2D")
        let signatures = try XCTUnwrap(r.signatures)
        XCTAssertEqual(signatures.onlyInA, ["old: x → z"])
        XCTAssertEqual(signatures.onlyInB, [])
        XCTAssertEqual(signatures.changed.first?.a, "float32 [?, 4] → float32 [?, 4]")
        XCTAssertEqual(signatures.changed.first?.b, "float64 [?, 4] → float32 [?, 4]")
        XCTAssertFalse(r.identical, "no tensors differ, but the layers and signatures do")
        let text = DiffText.render(r)
        for line in ["- d2 (Dense)", "+ d3 (Dense)", "~ d1 (Dense → Conv2D)", "- old: x → z"] {
            XCTAssertTrue(text.contains(line), text)
        }
        XCTAssertEqual(try schemaViolations(r), [])
        // A file that stores no layers is not compared for layers.
        let bare = try ModelDiff.diff(.init(path: "a.h5", description: a), .init(path: "b", description: FileDescription(format: .safetensors)))
        XCTAssertNil(bare.layers)
        XCTAssertNil(bare.signatures)
    }

    // MARK: real files

    func testTorchCNNZipAndLegacyAreIdentical() throws {
        let r = try ModelDiff.diff(Self.inspectFolder + "torch_cnn.pth", Self.inspectFolder + "torch_cnn_legacy.pth")
        XCTAssertEqual(r.a.format, "torch-zip")
        XCTAssertEqual(r.b.format, "torch-legacy")
        XCTAssertEqual(r.matching.method, .names)
        XCTAssertEqual(r.summary.matched, 9)
        XCTAssertTrue(r.identical, DiffText.render(r))
        XCTAssertTrue(r.tensors.contains { $0.name == "bn.num_batches_tracked" && $0.dtypeA == "I64" && $0.compared })
    }

    func testTwoKerasModelsOfOtherLayers() throws {
        let r = try ModelDiff.diff(Self.inspectFolder + "keras_conv.h5", Self.inspectFolder + "keras_lstm.keras")
        let layers = try XCTUnwrap(r.layers)
        XCTAssertTrue(layers.onlyInA.contains { $0.name == "conv2d" && $0.className == "Conv2D" })
        XCTAssertTrue(layers.onlyInB.contains { $0.className == "LSTM" })
        XCTAssertEqual(r.summary.onlyInA, 8)
        XCTAssertFalse(r.identical)
        XCTAssertTrue(DiffText.render(r).split(separator: "\n").allSatisfy { $0.count <= DiffText.width })
    }

    func testAKerasH5AndItsKerasFileArePairedByOrder() throws {
        let r = try ModelDiff.diff(try Fixtures.modelFile("clip_autokeras_nsfw_b32_dense.h5"), try Fixtures.modelFile("clip_autokeras_nsfw_b32_dense.keras"))
        XCTAssertEqual(r.matching.method, .order)
        XCTAssertEqual(r.summary.matched, 9)
        XCTAssertEqual(r.summary.identical, 8, "every float weight equal")
        XCTAssertEqual(r.layers?.isEmpty, true)
        // The HDF5 reader gives no integer datasets as numbers: Normalization's count is not compared.
        let count = try XCTUnwrap(r.tensors.first { !$0.compared })
        XCTAssertEqual(count.nameB, "layers/normalization/vars/2")
        XCTAssertTrue(count.note?.contains("cannot be read as numbers") == true)
        XCTAssertFalse(r.identical)
        XCTAssertTrue(DiffText.render(r).hasSuffix("not shown identical: 1 tensor could not be compared (exit 1)"))
        XCTAssertEqual(try schemaViolations(r), [])
    }

    /// libhdf5 knows clipsafety's in-memory images by one name; two HDF5 files open at once
    /// would read as the first. Two files of one layout, one value apart, must differ.
    func testTwoH5FilesOfOneLayoutAreReadEachFromItsOwnBytes() throws {
        let path = try Fixtures.modelFile("clip_autokeras_nsfw_b32_dense.h5")
        var bytes = try Data(contentsOf: URL(fileURLWithPath: path))
        // Read the bias and let the description go: an open description holds its image open.
        let bias = try XCTUnwrap(try FormatRegistry.describe(bytes).tensor("model_weights/dense_2/dense_2/bias")).read()
        let pattern = Data(bias.data)
        let at = try XCTUnwrap(bytes.range(of: pattern))
        XCTAssertNil(bytes.range(of: pattern, in: at.upperBound..<bytes.endIndex), "the bias bytes occur once")
        let changed = (try bias.floatValues()[0]) + 1
        bytes.replaceSubrange(at, with: withUnsafeBytes(of: changed.bitPattern.littleEndian, Array.init))
        let copy = try dir.write(bytes, to: "changed.h5")
        let r = try ModelDiff.diff(path, copy)
        XCTAssertEqual(r.matching.method, .names)
        let t = try XCTUnwrap(r.tensors.first { $0.name == "model_weights/dense_2/dense_2/bias" })
        XCTAssertEqual(t.maxAbsDiff ?? 0, 1, accuracy: 1e-6)
        XCTAssertEqual(t.worstIndex, [0])
        XCTAssertEqual(r.summary.valuesDiffer, 1, "every other weight equal")
        // Two files of other layouts are read, not refused as damaged.
        let other = try ModelDiff.diff(path, try Fixtures.modelFile("clip_autokeras_binary_nsfw_dense.h5"))
        XCTAssertEqual(other.summary.shapeChanged, 8)
        XCTAssertEqual(other.layers?.onlyInB.map(\.name), ["dense_3"])
    }

    func testACatalogSourceAndItsNativeConversionAreIdentical() throws {
        for name in ["clip_ViT-B-32_openai_binary_nsfw_head.pth", "clip_autokeras_nsfw_b32_dense.h5", "clip_autokeras_nsfw_b32.zip"] {
            let source = try Fixtures.modelFile(name)
            let native = dir.file(name + ".safetensors")
            try ModelLoader.load(path: source).write(to: native)
            for (a, b, side) in [(source, native, "a"), (native, source, "b")] {
                let r = try ModelDiff.diff(a, b)
                XCTAssertEqual(r.matching.method, .converter, name)
                XCTAssertEqual(r.matching.transformedSide, side, name)
                XCTAssertTrue(r.identical, name + "\n" + DiffText.render(r))
                XCTAssertGreaterThanOrEqual(r.summary.matched, 6, name)
            }
        }
    }

    func testTheSavedModelAgainstThePortsConversionLacksOnlyTheEncoding() throws {
        let port = dir.file("port.safetensors")
        try ModelLoader.load(path: try Fixtures.modelFile("clip_ViT-B-32_openai_binary_nsfw_head.pth")).write(to: port)
        let r = try ModelDiff.diff(try Fixtures.modelFile("clip_autokeras_nsfw_b32.zip"), port)
        XCTAssertEqual(r.summary.matched, 8)
        XCTAssertEqual(r.summary.identical, 8, "the port holds exactly the SavedModel's weights")
        XCTAssertEqual(Set(r.onlyInA.map(\.name)), Set([92, 133, 312].flatMap { ["encoding.\($0).keys", "encoding.\($0).values"] }))
        XCTAssertEqual(r.onlyInB, [])
    }

    func testANativeFileAndItsONNXExportAreIdenticalByInitializerNames() throws {
        let model = try ModelLoader.load(path: try Fixtures.modelFile("clip_ViT-B-32_openai_binary_nsfw_head.pth"))
        let native = dir.file("b32.safetensors"), onnx = dir.file("b32.onnx")
        try model.write(to: native)
        try ONNXExport.write(model, to: onnx)
        let r = try ModelDiff.diff(native, onnx)
        XCTAssertEqual(r.matching.method, .exporter)
        XCTAssertEqual(r.matching.transformedSide, "a")
        XCTAssertTrue(r.identical, DiffText.render(r))
        XCTAssertTrue(Set(r.tensors.map(\.name)).isSuperset(of: model.tensors.map(\.name)), "every native tensor is an initializer")
        XCTAssertNotNil(r.layers, "both sides are ONNX graphs: their nodes are compared")
        XCTAssertEqual(try schemaViolations(r), [])
        // The source itself against the export: converted, then exported.
        let fromSource = try ModelDiff.diff(onnx, try Fixtures.modelFile("clip_ViT-B-32_openai_binary_nsfw_head.pth"))
        XCTAssertEqual(fromSource.matching.method, .exporter)
        XCTAssertEqual(fromSource.matching.transformedSide, "b")
        XCTAssertTrue(fromSource.identical)
        // An export of other weights differs in that initializer.
        var other = model
        let index = try XCTUnwrap(other.tensors.firstIndex { $0.name == "linear_2.weight" })
        var w = try other.tensors[index].floatValues()
        w[33] += 0.5
        other.tensors[index] = Tensor(name: "linear_2.weight", shape: other.tensors[index].shape, floats: w)
        let tampered = dir.file("other.onnx")
        try ONNXExport.write(other, to: tampered)
        let d = try ModelDiff.diff(native, tampered)
        let t = try XCTUnwrap(d.tensors.first { !$0.identical })
        XCTAssertEqual(t.name, "linear_2.weight")
        XCTAssertEqual(t.worstIndex, [1, 1])
        XCTAssertEqual(t.maxAbsDiff ?? 0, 0.5, accuracy: 1e-6)
        XCTAssertEqual(d.summary.valuesDiffer, 1)
    }

    func testASavedModelZipItsFolderAndItsConversionAreIdentical() throws {
        let zipPath = try Fixtures.modelFile("clip_autokeras_nsfw_b32.zip")
        let zip = try ZipArchive(bytes: try Data(contentsOf: URL(fileURLWithPath: zipPath)))
        var folder: String?
        for entry in zip.entries where !entry.name.hasSuffix("/") {
            let path = dir.file("b32/" + entry.name)
            try FileManager.default.createDirectory(atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
            try zip.read(entry).write(to: URL(fileURLWithPath: path))
            if entry.name.hasSuffix("saved_model.pb") { folder = (path as NSString).deletingLastPathComponent }
        }
        let r = try ModelDiff.diff(zipPath, try XCTUnwrap(folder))
        XCTAssertEqual(r.b.format, "savedmodel-folder")
        XCTAssertEqual(r.matching.method, .names)
        XCTAssertEqual(r.signatures?.isEmpty, true, "both store the same serving signature")
        XCTAssertEqual(r.layers?.isEmpty, true)
        XCTAssertEqual(r.summary.matched, 20)
        // The vocabularies' empty string tables compare (no elements); the checkpoint's object
        // graph is a string clipsafety does not read: not compared, so not vouched for.
        XCTAssertEqual(r.tensors.filter { !$0.compared }.map(\.name), ["_CHECKPOINTABLE_OBJECT_GRAPH"])
        XCTAssertEqual(r.summary.identical, 19)
        XCTAssertFalse(r.identical)
        XCTAssertTrue(DiffText.render(r).hasSuffix("not shown identical: 1 tensor could not be compared (exit 1)"), DiffText.render(r))
        let native = dir.file("b32.safetensors")
        try ModelLoader.load(path: zipPath).write(to: native)
        let converted = try ModelDiff.diff(try XCTUnwrap(folder), native)
        XCTAssertEqual(converted.matching.method, .converter)
        XCTAssertTrue(converted.identical, DiffText.render(converted))
    }

    func testASourceThatDoesNotConvertIsMatchedByNameAndSaysWhy() throws {
        let native = dir.file("hand.safetensors")
        try HandBuilt.binaryModel().write(to: native)
        let r = try ModelDiff.diff(native, Self.inspectFolder + "torch_cnn.pth")
        XCTAssertEqual(r.matching.method, .names)
        XCTAssertNil(r.matching.transformedSide)
        XCTAssertTrue(r.matching.note?.hasPrefix("B does not convert (") == true, r.matching.note ?? "nil")
        XCTAssertTrue(r.matching.note?.hasSuffix("; matched by name") == true)
        XCTAssertFalse(r.identical)
    }

    func testAFileThatFailsToReadIsNamedInTheError() throws {
        let good = try file("good.safetensors", [f32("w", [1], [1])])
        let bad = try dir.write(Data([0x10, 0, 0, 0, 0, 0, 0, 0, 0x7B]), to: "bad.safetensors")
        XCTAssertThrowsError(try ModelDiff.diff(good, bad)) { error in
            let (message, code) = ExitStatus.describe(error)
            XCTAssertTrue(message.hasPrefix(bad + ": "), message)
            XCTAssertEqual(code, .dataError)
        }
    }
}
