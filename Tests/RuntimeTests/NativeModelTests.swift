import Foundation
import XCTest
@testable import Runtime
import TestSupport

final class NativeModelTests: XCTestCase {
    func testNativeRoundTripKeepsEveryField() throws {
        let model = HandBuilt.binaryModel()
        let bytes = try model.serialized()
        let read = try NativeModel(bytes: bytes)
        XCTAssertEqual(sortedTensors(read), sortedTensors(model))
        XCTAssertEqual(try read.serialized(), bytes, "rewrite is byte-identical")
    }

    func testMetadataUsesDocumentedKeysAndSnakeCase() throws {
        let meta = try HandBuilt.binaryModel().metadata()
        XCTAssertEqual(Set(meta.keys), ["format", "graph", "model", "source"])
        XCTAssertEqual(meta["format"], "clipsafety/1")
        let card = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(meta["model"]!.utf8)) as? [String: Any])
        XCTAssertEqual(card["embedding_dim"] as? Int, 4)
        XCTAssertEqual(card["output_kind"] as? String, "probability")
        XCTAssertEqual(card["task"] as? String, "binary-nsfw")
        let graph = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(meta["graph"]!.utf8)) as? [[String: Any]])
        XCTAssertEqual(graph.map { $0["op"] as? String }, ["normalize", "dense", "relu", "dense", "sigmoid"])
        XCTAssertEqual(graph[0]["denominator"] as? String, "max(sqrt(variance),epsilon)")
        let source = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(meta["source"]!.utf8)) as? [String: Any])
        XCTAssertEqual(source["source_format"] as? String, "hand-built")
    }

    /// The model with tensors in name order (files store them in dtype-then-name order).
    func sortedTensors(_ m: NativeModel) -> NativeModel {
        var m = m
        m.tensors.sort { $0.name < $1.name }
        return m
    }

    func withMetadata(_ change: (inout [String: String]) -> Void) throws -> Data {
        let model = HandBuilt.binaryModel()
        var meta = try model.metadata()
        change(&meta)
        return try SafetensorsFile(metadata: meta, tensors: model.tensors).serialized()
    }

    func assertRefused(_ bytes: Data, _ kind: ClipSafetyError.Kind, containing text: String, line: UInt = #line) {
        XCTAssertThrowsError(try NativeModel(bytes: bytes), line: line) { error in
            guard let e = error as? ClipSafetyError else { return XCTFail("\(error)", line: line) }
            XCTAssertEqual(e.kind, kind, e.message, line: line)
            XCTAssertTrue(e.message.contains(text), "'\(e.message)' lacks '\(text)'", line: line)
        }
    }

    func testRefusesNewerMajorVersion() throws {
        assertRefused(try withMetadata { $0["format"] = "clipsafety/2" }, .unsupported, containing: "clipsafety/2")
    }

    func testAcceptsNewerMinorVersion() throws {
        XCTAssertNoThrow(try NativeModel(bytes: try withMetadata { $0["format"] = "clipsafety/1.3" }))
    }

    func testRefusesForeignFormatTag() throws {
        assertRefused(try withMetadata { $0["format"] = "other/1" }, .malformed, containing: "other/1")
    }

    func testRefusesPlainSafetensors() throws {
        assertRefused(try withMetadata { $0 = [:] }, .malformed, containing: "format")
    }

    func testRefusesCardMissingField() throws {
        let bytes = try withMetadata { $0["model"] = #"{"name":"x","task":"binary-nsfw"}"# }
        assertRefused(bytes, .malformed, containing: "missing field")
    }

    func testRefusesUnknownTask() throws {
        let bytes = try withMetadata { $0["model"] = $0["model"]!.replacingOccurrences(of: "binary-nsfw", with: "astrology") }
        assertRefused(bytes, .malformed, containing: "model")
    }

    func testRefusesUnknownOp() throws {
        assertRefused(try withMetadata { $0["graph"] = #"[{"op":"softmax"}]"# }, .unsupported, containing: "softmax")
    }

    func testIgnoresUnknownCardFields() throws {
        let bytes = try withMetadata { $0["model"] = $0["model"]!.replacingOccurrences(of: "{", with: #"{"future_field":1,"#) }
        XCTAssertEqual(try NativeModel(bytes: bytes).card, HandBuilt.binaryModel().card)
    }

    func testWriteIsAtomicAndLeavesNoTemporaryFile() throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        try HandBuilt.binaryModel().write(to: dir.file("m.safetensors"))
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir.path), ["m.safetensors"])
        XCTAssertEqual(sortedTensors(try NativeModel(contentsOf: dir.file("m.safetensors"))), sortedTensors(HandBuilt.binaryModel()))
    }

    func testMissingFileIsReportedAsMissing() {
        XCTAssertThrowsError(try NativeModel(contentsOf: "/nonexistent/m.safetensors")) { error in
            XCTAssertEqual((error as? ClipSafetyError)?.kind, .missingFile)
        }
    }
}
