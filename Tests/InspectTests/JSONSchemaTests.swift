import Foundation
import XCTest
import Converters
import Inspect
import Runtime
import TestSupport

/// Real `inspect --json` outputs against the schema documented in docs/INSPECT-JSON.md.
final class JSONSchemaTests: XCTestCase {
    func json(_ report: InspectReport) throws -> Any {
        try JSONSerialization.jsonObject(with: Data(try report.json().utf8))
    }

    func testEveryRealFileMatchesTheDocumentedSchema() throws {
        let schema = try JSONSchema.documented("clipsafety-inspect/2")
        var paths = try ["clip_autokeras_nsfw_b32.zip", "clip_autokeras_binary_nsfw.zip", "clip_ViT-B-32_openai_binary_nsfw_head.pth",
                         "h14_nsfw_legacy.pth", "violence_detection_vit_b_32.npy", "clip_autokeras_nsfw_b32_dense.h5",
                         "clip_autokeras_nsfw_b32_dense.keras"].map { try Fixtures.modelFile($0) }
        paths += ["clip_autokeras_nsfw_b32.npz", "violence_detection_vit_b_32.npz"].map(Fixtures.reference)
        for path in paths {
            for tensors in [false, true] {
                let value = try json(try FileSummary.inspect(path: path, options: .init(tensors: tensors)))
                XCTAssertEqual(schema.violations(of: value), [], path)
            }
        }
    }

    func testNativeAndPlainSafetensorsMatchTheSchema() throws {
        let schema = try JSONSchema.documented("clipsafety-inspect/2")
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let native = dir.file("p.safetensors")
        try HandBuilt.promptModel().write(to: native)
        let plain = try dir.write(try SafetensorsFile(metadata: [:], tensors: [Tensor(name: "x", shape: [1], floats: [.nan])]).serialized(), to: "x.safetensors")
        for path in [native, plain] {
            for tensors in [false, true] {
                XCTAssertEqual(schema.violations(of: try json(try FileSummary.inspect(path: path, options: .init(tensors: tensors)))), [], path)
            }
        }
    }

    func testEveryKeyIsPresentEvenWhenNull() throws {
        let r = try FileSummary.inspect(path: Fixtures.reference("h14_nsfw.npz"))
        let object = try XCTUnwrap(try json(r) as? [String: Any])
        XCTAssertEqual(Set(object.keys), ["schema", "file", "format", "model", "model_problem", "structure", "tensors"])
        XCTAssertTrue(object["model"] is NSNull)
        XCTAssertEqual(object["schema"] as? String, "clipsafety-inspect/2")
    }

    func testTheCheckerCatchesViolations() throws {
        let schema = try JSONSchema.documented("clipsafety-inspect/2")
        var object = try XCTUnwrap(try json(try FileSummary.inspect(path: Fixtures.reference("h14_nsfw.npz"))) as? [String: Any])
        object["extra"] = 1
        object["schema"] = "clipsafety-inspect/1"
        object.removeValue(forKey: "format")
        let v = schema.violations(of: object)
        XCTAssertTrue(v.contains { $0.contains("extra") })
        XCTAssertTrue(v.contains { $0.contains("constant") })
        XCTAssertTrue(v.contains { $0.contains("format") })
    }
}
