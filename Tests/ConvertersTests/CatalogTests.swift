import Foundation
import XCTest
@testable import Converters
import Runtime
import TestSupport

final class CatalogTests: XCTestCase {
    func catalogJSON() throws -> [[String: Any]] {
        let data = try Data(contentsOf: URL(fileURLWithPath: Fixtures.repoRoot + "/models/catalog.json"))
        let object = try XCTUnwrap(JSONSerialization.jsonObject(with: data) as? [String: Any])
        return try XCTUnwrap(object["models"] as? [[String: Any]])
    }

    func testSwiftCatalogEqualsCatalogJSON() throws {
        let entries = try catalogJSON()
        XCTAssertEqual(entries.count, Catalog.models.count)
        for entry in entries {
            let name = entry["name"] as? String
            let known = try XCTUnwrap(Catalog.models.first { $0.name == name }, "\(name ?? "?") missing in Catalog.swift")
            XCTAssertEqual(known.file, entry["file"] as? String)
            XCTAssertEqual(known.sha256, entry["sha256"] as? String)
            XCTAssertEqual(known.mirrorSHA256, entry["mirror_sha256"] as? String)
            XCTAssertEqual(known.gitBlob, entry["git_blob"] as? String)
            XCTAssertEqual(known.format, entry["format"] as? String)
            XCTAssertEqual(known.backbone, entry["backbone"] as? String)
            XCTAssertEqual(known.embeddingDim, entry["embedding_dim"] as? Int)
            XCTAssertEqual(known.task.rawValue, entry["task"] as? String)
        }
    }

    func testEveryFetchedFileMatchesItsCatalogChecksum() throws {
        for entry in try catalogJSON() {
            let file = try XCTUnwrap(entry["file"] as? String)
            let bytes = try Data(contentsOf: URL(fileURLWithPath: try Fixtures.modelFile(file)))
            let expected = (entry["mirror_sha256"] as? String) ?? (entry["sha256"] as? String)
            XCTAssertEqual(sha256Hex(bytes), expected, file)
        }
    }

    func testLooksUpUpstreamFilesByContentNotName() throws {
        let bytes = try Data(contentsOf: URL(fileURLWithPath: try Fixtures.modelFile("violence_detection_vit_l_14.npy")))
        let known = try XCTUnwrap(Catalog.lookup(bytes: bytes))
        XCTAssertEqual(known.name, "violence_detection_vit_l_14")
        XCTAssertEqual(known.card.embeddingDim, 768)
        XCTAssertNil(Catalog.lookup(bytes: bytes + Data([0])), "one extra byte is another file")
    }

    func testGitBlobIDMatchesGit() {
        // `printf 'hello\n' | git hash-object --stdin`
        XCTAssertEqual(Catalog.gitBlobID(Data("hello\n".utf8)), "ce013625030ba8dba906f756967f9e9ca394464a")
    }

    func testMirrorStandInIsKnownByItsOwnDigest() throws {
        let bytes = try Data(contentsOf: URL(fileURLWithPath: try Fixtures.modelFile("h14_nsfw.pth")))
        XCTAssertEqual(Catalog.identify(bytes: bytes)?.model.name, "h14_nsfw")
        XCTAssertEqual(Catalog.identify(bytes: bytes)?.match, .sha256)
    }

    func testH14CardSaysRawUnboundedScore() {
        let card = Catalog.models.first { $0.name == "h14_nsfw" }!.card
        XCTAssertEqual(card.outputKind, .score)
        XCTAssertNil(card.outputRange)
        XCTAssertEqual(card.threshold, 0.5)
    }
}
