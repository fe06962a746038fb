import Foundation
import XCTest
@testable import Converters
import Runtime
import TestSupport

/// `convert` to and from ONNX through the binary: the format follows the extension or `--to`,
/// the round trip gives the same native bytes, a foreign ONNX needs a stated card, and hostile
/// ONNX files end with exit 65, one stderr line and nothing written.
final class ONNXCLITests: XCTestCase {
    var dir: TemporaryDirectory!

    override func setUpWithError() throws { dir = try TemporaryDirectory() }
    override func tearDown() { dir.remove() }

    func testConvertWritesONNXByExtensionOrFlagAndReadsItBack() throws {
        let source = try Fixtures.modelFile("clip_ViT-B-32_openai_binary_nsfw_head.pth")
        let onnx = dir.file("b32.onnx"), forced = dir.file("b32.model"), native = dir.file("b32.safetensors"), back = dir.file("back.safetensors")
        let run = try CLI.run(["convert", source, "-o", onnx])
        XCTAssertEqual(run.status, 0, run.stderr)
        XCTAssertTrue(run.stdout.contains("ONNX opset 17"), run.stdout)
        XCTAssertEqual(try CLI.run(["convert", source, "-o", forced, "--to", "onnx"]).status, 0)
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: onnx)), try Data(contentsOf: URL(fileURLWithPath: forced)))
        XCTAssertEqual(try FormatRegistry.identify(try Data(contentsOf: URL(fileURLWithPath: onnx))), .onnx)
        XCTAssertEqual(try CLI.run(["convert", source, "-o", native]).status, 0)
        let readBack = try CLI.run(["convert", onnx, "-o", back])
        XCTAssertEqual(readBack.status, 0, readBack.stderr)
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: back)), try Data(contentsOf: URL(fileURLWithPath: native)),
                       "native → ONNX → native changed the bytes")
        // An exported chain is a model every command opens.
        let verify = try CLI.run(["verify", onnx, "--reference", Fixtures.reference("clip_ViT-B-32_openai_binary_nsfw_head.npz"), "--atol", "2e-6"])
        XCTAssertEqual(verify.status, 0, verify.stdout + verify.stderr)
        // From a native file too, and the ONNX is the same as from the original.
        let fromNative = dir.file("from-native.onnx")
        XCTAssertEqual(try CLI.run(["convert", native, "-o", fromNative]).status, 0)
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: fromNative)), try Data(contentsOf: URL(fileURLWithPath: onnx)))
    }

    func testAnONNXWithoutACardNeedsOneStated() throws {
        var proto = try Onnx_ModelProto(serializedBytes: try ONNXExport.serialized(HandBuilt.binaryModel()))
        proto.metadataProps = []
        let path = dir.file("anonymous.onnx")
        try Data(try proto.serializedBytes() as [UInt8]).write(to: URL(fileURLWithPath: path))
        let refused = try CLI.run(["convert", path, "-o", dir.file("a.safetensors")])
        XCTAssertEqual(refused.status, 64, refused.stderr)
        XCTAssertTrue(refused.stderr.contains("--task"), refused.stderr)
        let stated = try CLI.run(["convert", path, "-o", dir.file("a.safetensors"), "--task", "binary-nsfw", "--threshold", "0.4"])
        XCTAssertEqual(stated.status, 0, stated.stderr)
        let model = try NativeModel(contentsOf: dir.file("a.safetensors"))
        XCTAssertEqual(model.card.task, .binaryNSFW)
        XCTAssertEqual(model.card.threshold, 0.4)
        XCTAssertEqual(model.source.sourceFormat, "onnx")
    }

    func testUnsupportedGraphIsRefusedNamingItsFirstNode() throws {
        let path = dir.file("b32.onnx")
        XCTAssertEqual(try CLI.run(["convert", try Fixtures.modelFile("clip_autokeras_nsfw_b32.zip"), "-o", path]).status, 0)
        let run = try CLI.run(["convert", path, "-o", dir.file("x.safetensors")])
        XCTAssertEqual(run.status, 65)
        XCTAssertTrue(run.stderr.contains("'0.impute_nan.is_nan' (IsNaN)"), run.stderr)
    }

    func testHostileONNXFilesExit65WithOneLineAndNoOutput() throws {
        let outputs = dir.file("out")
        try FileManager.default.createDirectory(atPath: outputs, withIntermediateDirectories: false)
        let exported = try ONNXExport.serialized(HandBuilt.binaryModel())
        var files: [(String, Data)] = [("truncated.onnx", exported.prefix(exported.count / 2))]
        var huge = tensor("huge", dims: [1 << 31])
        huge.rawData = Data(count: 16)
        files.append(("huge.onnx", model(initializers: [huge])))
        var external = tensor("passwd", dims: [4])
        external.dataLocation = .external
        var location = Onnx_StringStringEntryProto()
        location.key = "location"
        location.value = "/etc/passwd"
        external.externalData = [location]
        files.append(("external.onnx", model(initializers: [external])))
        var a = Onnx_NodeProto(), b = Onnx_NodeProto()
        a.opType = "Relu"; a.input = ["embedding", "back"]; a.output = ["forth"]
        b.opType = "Relu"; b.input = ["forth"]; b.output = ["back"]
        files.append(("cycle.onnx", model(nodes: [a, b])))
        for (name, bytes) in files {
            let path = dir.file(name)
            try bytes.write(to: URL(fileURLWithPath: path))
            let run = try CLI.run(["convert", path, "-o", outputs + "/x.safetensors", "--task", "unknown"])
            XCTAssertEqual(run.status, 65, "\(name): \(run.stderr)")
            XCTAssertEqual(run.stderr.split(separator: "\n").count, 1, "\(name): \(run.stderr)")
            XCTAssertTrue(run.stderr.hasPrefix("clipsafety: \(path): ONNX"), "\(name): \(run.stderr)")
            XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: outputs), [], name)
        }
    }

    private func tensor(_ name: String, dims: [Int64]) -> Onnx_TensorProto {
        var t = Onnx_TensorProto()
        t.name = name
        t.dataType = ONNXDataType.float
        t.dims = dims
        return t
    }

    private func model(initializers: [Onnx_TensorProto] = [], nodes: [Onnx_NodeProto] = []) -> Data {
        var g = Onnx_GraphProto()
        g.input = [ONNXExport.valueInfo("embedding", ONNXDataType.float, [nil, 4], doc: "")]
        g.initializer = initializers
        g.node = nodes
        var m = Onnx_ModelProto()
        m.irVersion = 8
        var opset = Onnx_OperatorSetIdProto()
        opset.version = 17
        m.opsetImport = [opset]
        m.graph = g
        return (try? m.serializedBytes()) ?? Data()
    }
}
