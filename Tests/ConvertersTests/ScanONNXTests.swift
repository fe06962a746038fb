@testable import Converters
import Foundation
import Runtime
import TestSupport
import XCTest

/// `scan` of ONNX files: our exports and plain graphs are safe; operators outside the standard
/// domains (wherever they sit: graph, subgraph, local function, training graph) and external
/// data that leaves the model's folder are unsafe and located; damaged files are unreadable.
final class ScanONNXTests: XCTestCase {
    func unsafe(_ s: FileScan) -> [ScanFinding] { s.findings.filter { !$0.allowed } }

    static func node(_ op: String, domain: String = "", name: String, inputs: [String] = ["embedding"], outputs: [String] = ["y"]) -> Onnx_NodeProto {
        var n = Onnx_NodeProto()
        n.opType = op
        n.domain = domain
        n.name = name
        n.input = inputs
        n.output = outputs
        return n
    }

    static func graph(_ nodes: [Onnx_NodeProto], initializers: [Onnx_TensorProto] = []) -> Onnx_GraphProto {
        var g = Onnx_GraphProto()
        g.input = [ONNXImportTests.input()]
        g.node = nodes
        g.initializer = initializers
        return g
    }

    static func external(_ location: String, name: String = "w") -> Onnx_TensorProto {
        var t = Onnx_TensorProto()
        t.name = name
        t.dataType = ONNXDataType.float
        t.dims = [4]
        t.dataLocation = .external
        var entry = Onnx_StringStringEntryProto()
        entry.key = "location"
        entry.value = location
        t.externalData = [entry]
        return t
    }

    func scan(_ model: Onnx_ModelProto) throws -> FileScan {
        let bytes: Data = try model.serializedBytes()
        return ModelScanner.scan(bytes: bytes, path: "m.onnx")
    }

    func model(_ graph: Onnx_GraphProto) throws -> Onnx_ModelProto {
        try Onnx_ModelProto(serializedBytes: ONNXImportTests.model(graph))
    }

    func testExportsOfTheCatalogAreSafe() throws {
        for file in ["clip_autokeras_nsfw_b32.zip", "clip_ViT-L-14_openai_binary_nsfw_head.pth", "violence_detection_vit_b_32.npy"] {
            let native = try ModelLoader.load(path: try Fixtures.modelFile(file))
            let s = ModelScanner.scan(bytes: try ONNXExport.serialized(native), path: "export.onnx")
            XCTAssertEqual(s.format, "onnx", file)
            XCTAssertEqual(s.verdict, .safe, "\(file): \(s.findings) \(s.problem ?? "")")
            XCTAssertTrue(s.notes.contains { $0.contains("nodes checked") }, "\(s.notes)")
        }
    }

    func testACustomDomainOperatorIsUnsafeWhereverItSits() throws {
        let evil = Self.node("RunShell", domain: "com.evil", name: "payload")
        // In the main graph.
        var s = try scan(try model(Self.graph([Self.node("Relu", name: "ok", outputs: ["r"]), evil])))
        XCTAssertEqual(s.verdict, .unsafe)
        XCTAssertEqual(unsafe(s).map(\.target), ["com.evil.RunShell"])
        XCTAssertEqual(unsafe(s).first?.kind, .op)
        XCTAssertTrue(unsafe(s).first?.locations.first?.text.contains("node 'payload'") ?? false, "\(unsafe(s))")

        // In the then-branch of an If.
        var branch = Onnx_AttributeProto()
        branch.name = "then_branch"
        branch.type = .graph
        branch.g = Self.graph([evil])
        var ifNode = Self.node("If", name: "choice", inputs: ["cond"])
        ifNode.attribute = [branch]
        s = try scan(try model(Self.graph([ifNode])))
        XCTAssertEqual(unsafe(s).map(\.target), ["com.evil.RunShell"])
        XCTAssertTrue(unsafe(s)[0].locations[0].text.contains("node 'choice' attribute then_branch"), "\(unsafe(s)[0].locations)")

        // In a training graph, which inference ignores but a training runtime runs.
        var m = try model(Self.graph([Self.node("Relu", name: "ok")]))
        var training = Onnx_TrainingInfoProto()
        training.algorithm = Self.graph([evil])
        m.trainingInfo = [training]
        s = try scan(m)
        XCTAssertEqual(unsafe(s).map(\.target), ["com.evil.RunShell"])
        XCTAssertTrue(unsafe(s)[0].locations[0].text.contains("training_info[0].algorithm"))
    }

    func testALocalFunctionIsAllowedButItsBodyIsChecked() throws {
        var function = Onnx_FunctionProto()
        function.domain = "my.functions"
        function.name = "Scale"
        function.input = ["x"]
        function.output = ["y"]
        function.node = [Self.node("Relu", name: "inner", inputs: ["x"])]
        var m = try model(Self.graph([Self.node("Scale", domain: "my.functions", name: "call")]))
        m.functions = [function]
        var s = try scan(m)
        XCTAssertEqual(s.verdict, .safe, "\(s.findings)")
        XCTAssertEqual(s.findings.map(\.target), ["my.functions.Scale"])
        XCTAssertEqual(s.findings.first?.allowed, true)

        function.node.append(Self.node("Exec", domain: "com.evil", name: "hidden", inputs: ["x"], outputs: ["z"]))
        m.functions = [function]
        s = try scan(m)
        XCTAssertEqual(unsafe(s).map(\.target), ["com.evil.Exec"])
        XCTAssertTrue(unsafe(s)[0].locations[0].text.contains("function my.functions.Scale"), "\(unsafe(s)[0].locations)")
    }

    func testExternalDataIsListedAndUnsafeWhenItLeavesTheFolder() throws {
        var s = try scan(try model(Self.graph([], initializers: [Self.external("weights.bin")])))
        XCTAssertEqual(s.verdict, .safe, "\(s.findings)")
        XCTAssertEqual(s.findings.map(\.kind), [.externalData])
        XCTAssertEqual(s.findings.map(\.target), ["weights.bin"])

        for location in ["/etc/passwd", "../../home/user/.ssh/id_rsa", "data/../../x", "C:\\Windows\\win.ini", ""] {
            s = try scan(try model(Self.graph([], initializers: [Self.external(location)])))
            XCTAssertEqual(s.verdict, .unsafe, location)
            XCTAssertEqual(unsafe(s).first?.kind, .externalData, location)
        }

        // Inside a sparse initializer and inside a Constant node's tensor attribute.
        var sparse = Onnx_SparseTensorProto()
        sparse.values = Self.external("/etc/shadow", name: "values")
        sparse.dims = [10]
        var g = Self.graph([])
        g.sparseInitializer = [sparse]
        s = try scan(try model(g))
        XCTAssertEqual(unsafe(s).map(\.target), ["/etc/shadow"])
        var value = Onnx_AttributeProto()
        value.name = "value"
        value.type = .tensor
        value.t = Self.external("/proc/self/environ", name: "c")
        var constant = Self.node("Constant", name: "k", inputs: [])
        constant.attribute = [value]
        s = try scan(try model(Self.graph([constant])))
        XCTAssertEqual(unsafe(s).map(\.target), ["/proc/self/environ"])
    }

    func testDamagedOrTooDeepFilesAreUnreadable() throws {
        let exported = try ONNXExport.serialized(HandBuilt.binaryModel())
        let truncated = ModelScanner.scan(bytes: exported.prefix(exported.count / 2), path: "cut.onnx")
        XCTAssertEqual(truncated.format, "onnx")
        XCTAssertEqual(truncated.verdict, .unreadable)

        var inner = Self.graph([Self.node("Relu", name: "leaf")])
        for depth in 0..<12 {
            var attribute = Onnx_AttributeProto()
            attribute.name = "body"
            attribute.type = .graph
            attribute.g = inner
            var loop = Self.node("Loop", name: "loop\(depth)")
            loop.attribute = [attribute]
            inner = Self.graph([loop])
        }
        var limits = ReaderLimits()
        limits.maxDepth = 8
        let deepBytes: Data = try (try model(inner)).serializedBytes()
        let deep = ModelScanner.scan(bytes: deepBytes, path: "deep.onnx", limits: limits)
        XCTAssertEqual(deep.verdict, .unreadable)
        XCTAssertTrue(deep.problem?.contains("deeper than 8") ?? false, deep.problem ?? "")
    }

    func testAnONNXMemberOfAZipIsScanned() throws {
        let bytes: Data = try (try model(Self.graph([Self.node("Evil", domain: "x.y", name: "n")]))).serializedBytes()
        let zip = try ScanFixtures.zip([("bundle/model.onnx", Array(bytes))])
        let s = ModelScanner.scan(bytes: zip, path: "bundle.zip")
        XCTAssertEqual(s.verdict, .unsafe)
        XCTAssertEqual(unsafe(s).map(\.target), ["x.y.Evil"])
        XCTAssertTrue(unsafe(s).first?.locations.first?.text.hasPrefix("bundle/model.onnx: ") ?? false, "\(unsafe(s))")
    }

    /// Files written by the real `onnx` library: a contrib operator and external data saved by
    /// `onnx.save_model(save_as_external_data=True)`.
    func testFilesWrittenByTheOnnxLibrary() throws {
        let scratch = try TemporaryDirectory()
        defer { scratch.remove() }
        try PythonEnv.run(#"""
import sys, os, numpy as np, onnx
from onnx import helper, numpy_helper, TensorProto
folder = sys.argv[1]
w = numpy_helper.from_array(np.ones((8, 2), np.float32), "w")
x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 8])
y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 2])
plain = helper.make_model(helper.make_graph([helper.make_node("MatMul", ["x", "w"], ["y"])], "g", [x], [y], [w]),
                          opset_imports=[helper.make_opsetid("", 18)])
onnx.save_model(plain, os.path.join(folder, "external.onnx"), save_as_external_data=True,
                all_tensors_to_one_file=True, location="external.data", size_threshold=0)
contrib = helper.make_model(helper.make_graph([helper.make_node("FusedMatMul", ["x", "w"], ["y"], domain="com.microsoft")],
                                              "g", [x], [y], [w]),
                            opset_imports=[helper.make_opsetid("", 18), helper.make_opsetid("com.microsoft", 1)])
onnx.save(contrib, os.path.join(folder, "contrib.onnx"))
"""#, [scratch.path])
        let external = ModelScanner.scan(file: scratch.file("external.onnx"))
        XCTAssertEqual(external.format, "onnx")
        XCTAssertEqual(external.verdict, .safe, "\(external.findings) \(external.problem ?? "")")
        XCTAssertEqual(external.findings.map(\.target), ["external.data"])
        let contrib = ModelScanner.scan(file: scratch.file("contrib.onnx"))
        XCTAssertEqual(contrib.verdict, .unsafe)
        XCTAssertEqual(unsafe(contrib).map(\.target), ["com.microsoft.FusedMatMul"])
    }
}
