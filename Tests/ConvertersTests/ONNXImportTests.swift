import Foundation
import XCTest
@testable import Converters
import Runtime
import TestSupport

/// ONNX files read back: our own exports of chain models convert to the identical native
/// file, other graphs are refused naming their first unsupported node, foreign chains need a
/// stated card, and hostile files are refused before anything is allocated from them.
final class ONNXImportTests: XCTestCase {
    static let chainModels = [
        "clip_ViT-B-32_openai_binary_nsfw_head.pth", "clip_ViT-L-14_openai_binary_nsfw_head.pth",
        "violence_detection_vit_b_32.npy", "violence_detection_vit_l_14.npy", "h14_nsfw.pth", "h14_nsfw_legacy.pth",
        "clip_autokeras_nsfw_b32_dense.h5", "clip_autokeras_nsfw_b32_dense.keras",
        "clip_autokeras_binary_nsfw_dense.h5", "clip_autokeras_binary_nsfw_dense.keras",
    ]

    func testNativeToONNXToNativeIsIdentical() throws {
        var checked = 0
        for file in Self.chainModels {
            let path = Fixtures.repoRoot + "/models/files/" + file
            guard FileManager.default.fileExists(atPath: path) else { continue }
            let native = try ModelLoader.load(path: path)
            let onnx = try ONNXExport.serialized(native)
            let back = try ModelLoader.convert(bytes: onnx, options: ConversionOptions(fileName: "exported.onnx"))
            XCTAssertEqual(back.kind, .onnx)
            XCTAssertEqual(back.model.graph, native.graph, file)
            XCTAssertEqual(back.model.card, native.card, file)
            XCTAssertEqual(try back.model.serialized(), try native.serialized(), "\(file): the round trip changed the native bytes")
            checked += 1
        }
        XCTAssertGreaterThanOrEqual(checked, 4)
    }

    func testNativeToONNXKeepsEveryDTypeThroughCasts() throws {
        var model = HandBuilt.binaryModel()
        model.tensors = try model.tensors.map { t in
            guard t.dtype == .f32 else { return t }
            let halves = try t.floatValues().map { Float16($0).bitPattern }
            return try Tensor(name: t.name, dtype: .f16, shape: t.shape, data: halves.withUnsafeBytes { Data($0) })
        }
        let back = try ModelLoader.convert(bytes: try ONNXExport.serialized(model), options: ConversionOptions(fileName: "h.onnx"))
        XCTAssertEqual(try back.model.serialized(), try model.serialized())
    }

    func testNodesOutOfOrderAreReadInTopologicalOrder() throws {
        let model = HandBuilt.binaryModel()
        var proto = try Onnx_ModelProto(serializedBytes: try ONNXExport.serialized(model))
        proto.graph.node.reverse()
        let back = try ModelLoader.convert(bytes: try proto.serializedBytes(), options: ConversionOptions(fileName: "r.onnx"))
        XCTAssertEqual(try back.model.serialized(), try model.serialized())
    }

    func testTheAutokerasEncodingIsExportedButNotImported() throws {
        let native = try ModelLoader.load(path: try Fixtures.modelFile("clip_autokeras_nsfw_b32.zip"))
        let onnx = try ONNXExport.serialized(native)
        XCTAssertThrowsError(try ModelLoader.convert(bytes: onnx, options: ConversionOptions(fileName: "b32.onnx"))) { error in
            XCTAssertEqual((error as? ClipSafetyError)?.kind, .unsupported)
            XCTAssertTrue("\(error)".contains("node '0.impute_nan.is_nan' (IsNaN)"), "\(error)")
        }
        let description = try FormatRegistry.describe(onnx)
        XCTAssertEqual(description.format, .onnx)
        XCTAssertEqual(Set(description.tensors.map(\.name)).isSuperset(of: ["norm.mean", "norm.variance", "linear_1.weight", "linear_3.bias"]), true)
        XCTAssertTrue(description.notes.contains { $0.hasPrefix("input embedding: float [N, 512]") }, "\(description.notes)")
        XCTAssertTrue(description.notes.contains { $0.contains("GreaterOrEqual ×6") }, "\(description.notes)")
        XCTAssertTrue(description.metadata.contains { $0.key == "opset_import" && $0.value == "ai.onnx 17" })
        XCTAssertTrue(description.metadata.contains { $0.key == "clipsafety.model" })
        XCTAssertEqual(description.signatures.map(\.output.name), ["nsfw"])
        XCTAssertEqual(description.inputWidth, 512)
        let gemm = try XCTUnwrap(description.layers.first { $0.className == "Gemm" })
        XCTAssertEqual(gemm.weights, ["linear_1.weight", "linear_1.bias"])
        XCTAssertEqual(gemm.config["transB"]?.int, 1)
        let weight = try XCTUnwrap(description.tensor("linear_1.weight"))
        XCTAssertEqual(weight.shape, [32, 512])
        XCTAssertEqual(try weight.read(), native.tensor(named: "linear_1.weight"))
    }

    func testAForeignChainNeedsAStatedCardAndRunsAsOnnxruntimeDoes() throws {
        let scratch = try TemporaryDirectory()
        defer { scratch.remove() }
        let path = scratch.file("foreign.onnx")
        // A chain as another exporter writes it: MatMul + Add, a Sub/Div standardisation, no metadata.
        try PythonEnv.run(#"""
import sys, numpy as np, onnx
from onnx import helper, numpy_helper, TensorProto
rng = np.random.default_rng(7)
w1 = rng.standard_normal((8, 6)).astype(np.float32); b1 = rng.standard_normal(6).astype(np.float32)
w2 = rng.standard_normal((6, 2)).astype(np.float32)
mean = rng.standard_normal(8).astype(np.float32); std = (rng.random(8) + 0.5).astype(np.float32)
inits = [numpy_helper.from_array(a, n) for a, n in [(w1, "w1"), (b1, "b1"), (w2, "w2"), (mean, "mean"), (std, "std")]]
nodes = [helper.make_node("Sub", ["x", "mean"], ["c"]), helper.make_node("Div", ["c", "std"], ["z"]),
         helper.make_node("MatMul", ["z", "w1"], ["h"]), helper.make_node("Add", ["h", "b1"], ["hb"]),
         helper.make_node("Relu", ["hb"], ["r"]), helper.make_node("MatMul", ["r", "w2"], ["o"]),
         helper.make_node("Sigmoid", ["o"], ["y"])]
graph = helper.make_graph(nodes, "foreign", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 8])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 2])], inits)
model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)], ir_version=9)
onnx.checker.check_model(model, full_check=True)
onnx.save(model, sys.argv[1])
"""#, [path])
        let bytes = try Data(contentsOf: URL(fileURLWithPath: path))
        XCTAssertThrowsError(try ModelLoader.convert(bytes: bytes, options: ConversionOptions(fileName: path))) { error in
            XCTAssertEqual((error as? ClipSafetyError)?.kind, .usage, "\(error)")
        }
        let stated = StatedMeaning(task: .regression, labels: ["a", "b"])
        let model = try ModelLoader.convert(bytes: bytes, options: ConversionOptions(fileName: path, stated: stated)).model
        XCTAssertEqual(model.graph.map(\.opName), ["normalize", "dense", "relu", "dense", "sigmoid"])
        XCTAssertEqual(model.source.sourceFormat, "onnx")
        XCTAssertEqual(model.card.outputColumns, ["a", "b"])
        // The same rows through onnxruntime and through clipsafety.
        var rows = (0..<64 * 8).map { Float(sin(Double($0) * 0.37)) }
        let ours = try rows.withUnsafeMutableBytes { raw in
            try Scorer(model: model).score(EmbeddingBatch(base: raw.baseAddress!, rows: 64, columns: 8, elementType: .float32))
        }
        let input = try scratch.write(rows.withUnsafeBytes { Data($0) }, to: "x.f32")
        let output = try PythonEnv.run(#"""
import sys, numpy as np, onnxruntime as ort
x = np.fromfile(sys.argv[2], dtype="<f4").reshape(64, 8)
y = ort.InferenceSession(sys.argv[1], providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
sys.stdout.write(y.astype("<f4").tobytes().hex())
"""#, [path, input])
        let theirs = stride(from: 0, to: output.count, by: 8).map { i -> Float in
            let hex = output.dropFirst(i).prefix(8)
            let bits = UInt32(hex, radix: 16).map { UInt32(bigEndian: $0) } ?? 0
            return Float(bitPattern: bits)
        }
        XCTAssertEqual(theirs.count, ours.scores.count)
        let worst = zip(theirs, ours.scores).map { abs($0 - $1) }.max() ?? .nan
        XCTAssertLessThanOrEqual(worst, 1e-6)
    }

    // MARK: hostile files

    static func model(_ graph: Onnx_GraphProto) -> Data {
        var m = Onnx_ModelProto()
        m.irVersion = 8
        var opset = Onnx_OperatorSetIdProto()
        opset.version = 17
        m.opsetImport = [opset]
        m.graph = graph
        return (try? m.serializedBytes()) ?? Data()
    }

    static func input(_ name: String = "embedding", width: Int = 4) -> Onnx_ValueInfoProto {
        ONNXExport.valueInfo(name, ONNXDataType.float, [nil, width], doc: "")
    }

    /// The four hostile files of the issue, each with the error kind it must give.
    static func hostile() throws -> [(name: String, bytes: Data, kind: ClipSafetyError.Kind, says: String)] {
        let exported = try ONNXExport.serialized(HandBuilt.binaryModel())
        var huge = Onnx_TensorProto()
        huge.name = "huge"
        huge.dataType = ONNXDataType.float
        huge.dims = [1 << 31]
        huge.rawData = Data(count: 16)
        var external = Onnx_TensorProto()
        external.name = "passwd"
        external.dataType = ONNXDataType.float
        external.dims = [4]
        external.dataLocation = .external
        var location = Onnx_StringStringEntryProto()
        location.key = "location"
        location.value = "/etc/passwd"
        external.externalData = [location]
        var g = Onnx_GraphProto()
        g.input = [input()]
        g.initializer = [huge]
        let hugeModel = model(g)
        g.initializer = [external]
        let externalModel = model(g)
        var a = Onnx_NodeProto(), b = Onnx_NodeProto()
        a.opType = "Relu"; a.name = "first"; a.input = ["embedding", "back"]; a.output = ["forth"]
        b.opType = "Relu"; b.name = "second"; b.input = ["forth"]; b.output = ["back"]
        g.initializer = []
        g.node = [a, b]
        let cycle = model(g)
        return [
            ("truncated.onnx", exported.prefix(exported.count / 2), .truncated, "cut short"),
            ("huge-initializer.onnx", hugeModel, .limitExceeded, "2147483648"),
            ("external-passwd.onnx", externalModel, .unsafe, "/etc/passwd"),
            ("cycle.onnx", cycle, .malformed, "cycle"),
        ]
    }

    func testHostileFilesAreRefusedWithTheRightKind() throws {
        for (name, bytes, kind, says) in try Self.hostile() {
            XCTAssertEqual(try FormatRegistry.identify(bytes), .onnx, name)
            XCTAssertThrowsError(try ModelLoader.convert(bytes: bytes, options: ConversionOptions(fileName: name, stated: StatedMeaning(task: .unknown)))) { error in
                XCTAssertEqual((error as? ClipSafetyError)?.kind, kind, "\(name): \(error)")
                XCTAssertTrue("\(error)".contains(says), "\(name): \(error)")
            }
        }
    }

    func testDescriptionRefusesWhatImportRefusesExceptTheCycle() throws {
        for (name, bytes, kind, _) in try Self.hostile() {
            if kind == .malformed {
                XCTAssertEqual(try FormatRegistry.describe(bytes).layers.map(\.name), ["first", "second"], "a cycle is described")
            } else {
                XCTAssertThrowsError(try FormatRegistry.describe(bytes), name) { XCTAssertEqual(($0 as? ClipSafetyError)?.kind, kind, name) }
            }
        }
    }

    func testDeclaredSizesMustMatchTheBytes() throws {
        var t = Onnx_TensorProto()
        t.name = "short"
        t.dataType = ONNXDataType.float
        t.dims = [3]
        t.rawData = Data(count: 8)
        var g = Onnx_GraphProto()
        g.input = [Self.input()]
        g.initializer = [t]
        XCTAssertThrowsError(try FormatRegistry.describe(Self.model(g))) { error in
            XCTAssertEqual((error as? ClipSafetyError)?.kind, .malformed)
            XCTAssertTrue("\(error)".contains("(12 bytes) and holds 8"), "\(error)")
        }
        t.clearRawData()
        t.floatData = [1, 2]
        g.initializer = [t]
        XCTAssertThrowsError(try FormatRegistry.describe(Self.model(g)))
    }

    func testEveryLimitIsHonoured() throws {
        let onnx = try ONNXExport.serialized(try ModelLoader.load(path: try Fixtures.modelFile("clip_ViT-B-32_openai_binary_nsfw_head.pth")))
        var tooFewElements = ReaderLimits(), tooFewBytes = ReaderLimits(), tooShallow = ReaderLimits(), tooSmallFile = ReaderLimits()
        tooFewElements.maxTensorElements = 1000
        tooFewBytes.maxUncompressedBytes = 10_000
        tooShallow.maxDepth = 2
        tooSmallFile.maxFileBytes = onnx.count - 1
        for limits in [tooFewElements, tooFewBytes, tooShallow, tooSmallFile] {
            XCTAssertThrowsError(try FormatRegistry.describe(onnx, limits: limits)) { error in
                XCTAssertEqual((error as? ClipSafetyError)?.kind, .limitExceeded, "\(error)")
            }
            XCTAssertThrowsError(try ModelLoader.convert(bytes: onnx, options: ConversionOptions(fileName: "b32.onnx", limits: limits)))
        }
        XCTAssertNoThrow(try ModelLoader.convert(bytes: onnx, options: ConversionOptions(fileName: "b32.onnx")))
    }

    func testSubgraphNestingIsBounded() throws {
        var inner = Onnx_GraphProto()
        inner.name = "leaf"
        for depth in 0..<12 {
            var node = Onnx_NodeProto()
            node.opType = "If"
            node.name = "if\(depth)"
            var attribute = Onnx_AttributeProto()
            attribute.name = "then_branch"
            attribute.type = .graph
            attribute.g = inner
            node.attribute = [attribute]
            var outer = Onnx_GraphProto()
            outer.node = [node]
            inner = outer
        }
        inner.input = [Self.input()]
        var limits = ReaderLimits()
        limits.maxDepth = 8
        XCTAssertThrowsError(try FormatRegistry.describe(Self.model(inner), limits: limits)) { error in
            XCTAssertEqual((error as? ClipSafetyError)?.kind, .limitExceeded, "\(error)")
        }
        let described = try FormatRegistry.describe(Self.model(inner))
        XCTAssertTrue(described.notes.contains { $0.hasPrefix("12 nodes (subgraphs included): If ×12") }, "\(described.notes)")
    }
}
