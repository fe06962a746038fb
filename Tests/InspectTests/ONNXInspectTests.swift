import Foundation
import XCTest
import Converters
import Inspect
import Runtime
import TestSupport

/// `inspect` on ONNX files: the description (initializers, nodes, opsets, typed inputs and
/// outputs, op histogram) in the documented JSON schema; the model when the graph is a chain
/// clipsafety runs, the reason otherwise.
final class ONNXInspectTests: XCTestCase {
    func testExportsAreInspectedInTheDocumentedSchema() throws {
        let schema = try JSONSchema.documented("clipsafety-inspect/2")
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        var reports: [String: [String: Any]] = [:]
        for file in ["clip_autokeras_nsfw_b32.zip", "clip_ViT-B-32_openai_binary_nsfw_head.pth", "violence_detection_vit_b_32.npy"] {
            let model = try ModelLoader.load(path: try Fixtures.modelFile(file))
            let path = try dir.write(try ONNXExport.serialized(model), to: file + ".onnx")
            for tensors in [false, true] {
                let report = try FileSummary.inspect(path: path, options: .init(tensors: tensors))
                let value = try JSONSerialization.jsonObject(with: Data(try report.json().utf8))
                XCTAssertEqual(schema.violations(of: value), [], file)
                reports[file] = value as? [String: Any]
            }
            let text = InspectText.render(try FileSummary.inspect(path: path))
            XCTAssertTrue(text.contains("ONNX"), text)
        }
        let autokeras = try XCTUnwrap(reports["clip_autokeras_nsfw_b32.zip"])
        XCTAssertEqual((autokeras["format"] as? [String: Any])?["id"] as? String, "onnx")
        XCTAssertTrue((autokeras["model_problem"] as? String)?.contains("IsNaN") == true, "\(autokeras["model_problem"] ?? "")")
        let port = try XCTUnwrap(reports["clip_ViT-B-32_openai_binary_nsfw_head.pth"])
        let card = (port["model"] as? [String: Any])?["card"] as? [String: Any]
        XCTAssertEqual(card?["name"] as? String, "clip_ViT-B-32_openai_binary_nsfw_head", "the card read back from metadata_props")
    }
}
