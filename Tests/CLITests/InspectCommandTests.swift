import Foundation
import XCTest
import Converters
import Runtime
import TestSupport

final class InspectCommandTests: XCTestCase {
    func testInspectsTheB32ZipForPeople() throws {
        let run = try CLI.run(["inspect", try Fixtures.modelFile("clip_autokeras_nsfw_b32.zip")])
        XCTAssertEqual(run.status, 0, run.stderr)
        let lines = run.stdout.split(separator: "\n", omittingEmptySubsequences: false)
        XCTAssertTrue(lines[0].hasPrefix("  clip_autokeras_nsfw_b32: ViT-B/32 embeddings (512, L2-normalised)"), String(lines[0]))
        XCTAssertTrue(run.stdout.contains("sha256    78715ab9d64485167e8c9ade3b8e6761a17a16c24d114bd47431ac1dab46462b"))
        XCTAssertTrue(run.stdout.contains("size      231,831 bytes"))
        XCTAssertTrue(run.stdout.contains("categorical columns 92, 133, 312 (vocabularies 1566/747/745)"))
        XCTAssertTrue(run.stdout.contains("dropout: inactive at inference (rate 0.5)"))
        XCTAssertTrue(run.stdout.contains("input_1: float64 (N, 512)"))
        XCTAssertTrue(run.stdout.contains("18,529 parameters"))
        XCTAssertTrue(lines.allSatisfy { $0.count <= 80 })
        XCTAssertFalse(run.stdout.contains("\u{1B}["), "no colour into a pipe")
    }

    func testJSONMatchesTheDocumentedSchema() throws {
        let schema = try JSONSchema.documented("clipsafety-inspect/2")
        for file in ["clip_ViT-L-14_openai_binary_nsfw_head.pth", "violence_detection_vit_l_14.npy"] {
            let run = try CLI.run(["inspect", try Fixtures.modelFile(file), "--json", "--tensors"])
            XCTAssertEqual(run.status, 0, run.stderr)
            let value = try JSONSerialization.jsonObject(with: Data(run.stdout.utf8))
            XCTAssertEqual(schema.violations(of: value), [], file)
            let object = try XCTUnwrap(value as? [String: Any])
            XCTAssertEqual((object["tensors"] as? [Any])?.isEmpty, false)
        }
    }

    func testTensorsFlagListsStatistics() throws {
        let run = try CLI.run(["inspect", try Fixtures.modelFile("clip_ViT-B-32_openai_binary_nsfw_head.pth"), "--tensors"])
        XCTAssertEqual(run.status, 0, run.stderr)
        XCTAssertTrue(run.stdout.contains("Tensors (8)"), run.stdout)
        XCTAssertTrue(run.stdout.contains("Statistics"))
        XCTAssertTrue(run.stdout.contains("linear_1.weight  F32    [32, 512]"), run.stdout)
    }

    func testReferenceArchive() throws {
        let run = try CLI.run(["inspect", Fixtures.reference("clip_autokeras_nsfw_b32.npz")])
        XCTAssertEqual(run.status, 0, run.stderr)
        XCTAssertTrue(run.stdout.contains("Arrays (2)"))
        XCTAssertTrue(run.stdout.contains("inputs   F64    [128, 512]"), run.stdout)
    }

    func testUnknownFileExits65WithAClearMessage() throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let path = try dir.write(Data("not a model\n".utf8), to: "model.pth")
        let run = try CLI.run(["inspect", path])
        XCTAssertEqual(run.status, 65)
        XCTAssertEqual(run.stdout, "")
        XCTAssertTrue(run.stderr.hasPrefix("clipsafety: \(path): unrecognised file format (first bytes: 6e 6f 74"), run.stderr)
    }

    func testMissingFileExits66() throws {
        let run = try CLI.run(["inspect", "/nonexistent/model.safetensors"])
        XCTAssertEqual(run.status, 66)
    }

    func testNativeFileShowsProvenance() throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let out = dir.file("h14.safetensors")
        XCTAssertEqual(try CLI.run(["convert", try Fixtures.modelFile("h14_nsfw_legacy.pth"), "-o", out]).status, 0)
        let run = try CLI.run(["inspect", out])
        XCTAssertEqual(run.status, 0, run.stderr)
        XCTAssertTrue(run.stdout.contains("clipsafety-native"))
        XCTAssertTrue(run.stdout.contains("original  h14_nsfw_legacy.pth"), run.stdout)
        XCTAssertTrue(run.stdout.contains("from      torch-legacy"))
        let words = run.stdout.split(whereSeparator: { $0 == " " || $0 == "\n" }).joined(separator: " ")
        XCTAssertTrue(words.contains("NSFW score: raw, unbounded, not a probability"), run.stdout)
    }
}
